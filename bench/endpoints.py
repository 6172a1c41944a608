"""What the benchmark sends: one Endpoint per route, with the events it cycles through."""

import math
import time
from dataclasses import dataclass, field
from typing import Any

from bench import dataset
from bench.events import rest_event

DEEP_PAGE = "sender list, page 100"
FRAMEWORK = "GET / (no SQL)"
REVENUE = "revenue, one year"
# Couriers the assign benchmark rotates deliveries among (see _assign_events).
ROTATION_COURIERS = range(11, dataset.COURIERS + 1)
ROTATION_DELIVERIES = 4
NOOP_COURIER = 3


@dataclass
class Endpoint:
    name: str
    kind: str  # "read", "write", "login" or "framework"
    events: list[dict[str, Any]]
    status: int
    note: str = ""
    # Filled by the counting pass: the statements each request sent.
    wire: list[list[str]] = field(default_factory=list)
    lambda_pos: int = 0
    direct_pos: int = 0


def prepare_fixed(db: Any) -> dict[str, Any]:
    """Deliveries that the assign benchmarks use, fixed for the whole run."""
    with db.cursor() as cur:
        cur.execute("SELECT id FROM deliveries WHERE sender_id = 1 ORDER BY id LIMIT %s",
                    (ROTATION_DELIVERIES + 1,))
        ids = [row[0] for row in cur.fetchall()]
        cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigint GENERATED ALWAYS AS"
                    " IDENTITY PRIMARY KEY, v integer NOT NULL)")
    return {"rotation": ids[:ROTATION_DELIVERIES], "noop_delivery": ids[ROTATION_DELIVERIES]}


def _assign_events(token: str, deliveries: list[int]) -> list[dict[str, Any]]:
    """Real reassignments that never meet the daily limit.

    Step t moves delivery t mod 4 to courier t mod 490 (+11). A delivery's
    previous courier (step t-4) is always another one, so every request changes
    the assignment; and since only these four deliveries are assigned today, no
    courier ever holds more than four of today's: never the 409 path.
    """
    couriers = list(ROTATION_COURIERS)
    steps = math.lcm(len(deliveries), len(couriers))
    events = []
    for t in range(steps):
        did, cid = deliveries[t % len(deliveries)], couriers[t % len(couriers)]
        events.append(rest_event("PUT", f"/assign/{did}/{cid}", token=token))
    return events


def build_endpoints(db: Any, fixed: dict[str, Any]) -> list[Endpoint]:
    sender = dataset.token_for(dataset.sender_user(1))
    courier = dataset.token_for(dataset.courier_user(1))
    with db.cursor() as cur:
        # Deliveries of the big sender, spread over the whole table, for GET /deliveries/{did}.
        cur.execute("SELECT id FROM deliveries TABLESAMPLE SYSTEM (5) REPEATABLE (7)"
                    " WHERE sender_id = 1 LIMIT 256")
        one = [row[0] for row in cur.fetchall()] or [fixed["noop_delivery"]]
    now = int(time.time())
    year_ago = now - 365 * 86400

    def get(path: str, token: str, **kw: Any) -> dict[str, Any]:
        return rest_event("GET", path, token=token, **kw)

    return [
        Endpoint(FRAMEWORK, "framework", [rest_event("GET", "/")], 200,
                 note="GET / answers OK without the database: Chalice and the middleware"),
        Endpoint("sender list, page 0", "read", [get("/deliveries/sender/1", sender)], 200),
        Endpoint(DEEP_PAGE, "read", [get("/deliveries/sender/1", sender, query={"page": "100"})],
                 200, note="OFFSET 1000"),
        Endpoint("courier list", "read", [get("/deliveries/courier/1", courier)], 200,
                 note="the courier's own, page 0"),
        Endpoint("couriers (directory)", "read", [get("/couriers", sender)], 200,
                 note="GET /couriers, with today's counts"),
        Endpoint("one delivery", "read", [get(f"/deliveries/{did}", sender) for did in one], 200,
                 note=f"{len(one)} ids spread over the table"),
        Endpoint("/me", "read", [get("/me", sender)], 200),
        Endpoint(REVENUE, "read", [get(f"/revenue/{year_ago}/{now}", courier)], 200,
                 note="the last 365 days to the second: all of the courier's deliveries"),
        Endpoint("assign", "write", _assign_events(sender, fixed["rotation"]), 200,
                 note="a real reassignment every request"),
        Endpoint("assign, same courier (no-op)", "write", [rest_event(
            "PUT", f"/assign/{fixed['noop_delivery']}/{NOOP_COURIER}", token=sender)], 200,
                 note="already assigned: read-only path"),
        Endpoint("create", "write", [rest_event(
            "POST", "/deliveries", token=sender,
            body={"size": "20x30x40", "cost": "12.50", "description": "bench create"})], 201),
        Endpoint("login", "login", [rest_event(
            "POST", "/auth",
            body={"username": dataset.LOGIN_USERNAME, "password": dataset.LOGIN_PASSWORD})], 200,
            note="scrypt N=2^14 r=8 p=5"),
    ]
