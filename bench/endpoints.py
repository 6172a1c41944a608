"""What the benchmark sends: one Endpoint per route, with the events it cycles through,
or, for the lifecycle actions, a Supply of deliveries that each request uses up."""

import math
import time
from dataclasses import dataclass, field
from typing import Any

from bench import dataset
from bench.events import rest_event

DEEP_PAGE = "sender list, page 100"
FRAMEWORK = "GET / (no SQL)"
REVENUE = "revenue, one year"
FIRST_CURSOR = "sender list, cursor, start"
DEEP_CURSOR = "sender list, cursor, deep"
DEEP_PAGE_MODE = "sender list, page, deep"
# How deep the deep pages are: this far into sender 1's list when it is long
# enough (at 1M), else half of it.
DEPTH = 500_000
PER_PAGE = 10
# Couriers the assign benchmark rotates deliveries among (see _assign_events).
ROTATION_COURIERS = range(11, dataset.COURIERS + 1)
ROTATION_DELIVERIES = 4
NOOP_COURIER = 3
# Deliveries of a Supply are made this many at a time at most per second of the
# slice ahead (more than any write here reaches; a slice that uses them all up
# ends early, its rate still true).
SUPPLY_RATE = 5000
SUPPLY_DESCRIPTION = "bench supply"
CREATE_DESCRIPTION = "bench create"
FEED_PAGE = 50


class Supply:
    """Fresh deliveries in the status an action starts from, made in bulk (with their
    history) between the measured slices, one per request: pickup, deliver, fail,
    cancel and unassign can each happen once to a delivery (a picked-up delivery is
    never assigned again, a final one never changes), so no rotation of a few
    deliveries can repeat them, and a request that met an already-moved delivery
    would measure the no-op path or a 409 instead.

    The requests through the Lambda entry point and the SQL replayed directly draw
    from separate deliveries: `events` maps a Lambda position to its event, `direct`
    a direct position to its statement (the statement captured on the wire with the
    delivery id replaced). Each entry is taken out when used."""

    def __init__(self, db: Any, status: str, sender_id: int, courier_id: int,
                 build: Any) -> None:
        self.db, self.status = db, status
        self.sender_id, self.courier_id = sender_id, courier_id
        self.build = build  # delivery id -> event
        self.events: dict[int, dict[str, Any]] = {}
        self.direct: dict[int, str] = {}
        self.template: str | None = None  # the wire statement, "{did}" for the id
        self.made = 0

    def _make(self, n: int) -> list[int]:
        with self.db.cursor() as cur:
            cur.execute(_SUPPLY, {"n": n, "status": self.status, "sender": self.sender_id,
                                  "courier": self.courier_id,
                                  "description": SUPPLY_DESCRIPTION})
            ids = [row[0] for row in cur.fetchall()]
            cur.execute(dataset.EVENTS, {"after_id": ids[0] - 1})
        self.made += n
        return ids

    def ready(self, start: int, count: int) -> int:
        """Events for Lambda positions start .. start+count-1; returns count."""
        missing = [p for p in range(start, start + count) if p not in self.events]
        if missing:
            for pos, did in zip(missing, self._make(len(missing)), strict=True):
                self.events[pos] = self.build(did)
        return count

    def ready_direct(self, start: int, count: int) -> int:
        """Statements for direct positions start .. start+count-1; returns count."""
        assert self.template is not None
        missing = [p for p in range(start, start + count) if p not in self.direct]
        if missing:
            for pos, did in zip(missing, self._make(len(missing)), strict=True):
                self.direct[pos] = self.template.replace("{did}", str(did))
        return count

    def learn_statement(self, statements: list[str], did: int) -> None:
        """The direct replay's template: the one statement a request on `did` sent."""
        needle = f", {did}, "
        if len(statements) == 1 and statements[0].count(needle) == 1:
            self.template = statements[0].replace(needle, ", {did}, ")

    def chunk(self, seconds: float) -> int:
        return max(20, math.ceil(seconds * SUPPLY_RATE))

    def clean(self) -> int:
        """Deletes every supplied delivery (and with it its events): the data set stays
        as generated for the next endpoint and size. Returns how many were made."""
        self.events.clear()
        self.direct.clear()
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM deliveries WHERE sender_id = %s AND description = %s",
                        (self.sender_id, SUPPLY_DESCRIPTION))
        made, self.made = self.made, 0
        return made


# n deliveries of the supply sender in `status` (created, assigned or picked_up),
# created yesterday and, when assigned, assigned to the supply courier an hour
# later (so that they hold none of today's slots), picked up an hour after that.
# Their history comes from dataset.EVENTS.
_SUPPLY = """
INSERT INTO deliveries (sender_id, courier_id, length_cm, width_cm, height_cm, cost,
                        description, status, created_at, assigned_at, picked_up_at, updated_at)
SELECT %(sender)s, CASE WHEN %(status)s <> 'created' THEN %(courier)s::bigint END,
       20, 30, 40, 12.50, %(description)s, %(status)s, t.created,
       CASE WHEN %(status)s <> 'created' THEN t.created + interval '1 hour' END,
       CASE WHEN %(status)s = 'picked_up' THEN t.created + interval '2 hours' END,
       t.created + CASE %(status)s WHEN 'created' THEN interval '0'
                                   WHEN 'assigned' THEN interval '1 hour'
                                   ELSE interval '2 hours' END
  FROM generate_series(1, %(n)s) g
 CROSS JOIN (SELECT utc_today() - interval '1 day' AS created) t
 ORDER BY g
RETURNING id
"""


@dataclass
class Endpoint:
    name: str
    kind: str  # "read", "write", "login" or "framework"
    events: list[dict[str, Any]]
    status: int
    note: str = ""
    supply: Supply | None = None
    # Run after the endpoint is measured: removes what it added to the data set.
    cleanup: str | None = None
    # Filled by the counting pass: the statements each request sent.
    wire: list[list[str]] = field(default_factory=list)
    lambda_pos: int = 0
    direct_pos: int = 0


def prepare_fixed(db: Any) -> dict[str, Any]:
    """Deliveries that the assign benchmarks use, fixed for the whole run: sender 1's
    oldest that may still be assigned (created or assigned)."""
    with db.cursor() as cur:
        cur.execute("SELECT id FROM deliveries WHERE sender_id = 1"
                    " AND status IN ('created', 'assigned') ORDER BY id LIMIT %s",
                    (ROTATION_DELIVERIES + 1,))
        ids = [row[0] for row in cur.fetchall()]
        # The rotation reassigns these few deliveries thousands of times: far
        # past the 20 assignments one delivery may have (max_assignments).
        # Their count starts low enough never to reach it, so that every
        # request measured is a real reassignment, not the 409.
        cur.execute("UPDATE deliveries SET assignments = -1000000000 WHERE id = ANY (%s)",
                    (ids,))
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


def list_depth(db: Any) -> int:
    """How deep the deep pages of sender 1's list are at the loaded size."""
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE sender_id = 1")
        (count,) = cur.fetchone()
    if count > DEPTH + 2 * PER_PAGE:
        return DEPTH
    return count // 2 // PER_PAGE * PER_PAGE


def sender_cursor(db: Any, offset: int) -> str:
    """The `after` cursor that starts sender 1's list (as sender 1 reads it) at
    `offset`: cursor_make over the row before it, with the scope that
    list_sender_deliveries uses ('sender:<sender id>:<caller's user id>')."""
    scope = f"sender:1:{dataset.sender_user(1)}"
    with db.cursor() as cur:
        cur.execute("SELECT translate(encode(cursor_make(%s, created_at, id), 'base64'),"
                    "                 '+/=', '-_')"
                    "  FROM deliveries WHERE sender_id = 1"
                    " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
                    (scope, offset - 1))
        (cursor,) = cur.fetchone()
    return cursor


def feed_after(cur: Any, column: str) -> int:
    """An `after` for the feed of sender 1 or courier 1 (column sender_id or
    courier_id): the middle of their events, or earlier when fewer than a full
    page (50) would follow."""
    cur.execute(f"SELECT count(*) FROM delivery_events WHERE {column} = 1")
    (count,) = cur.fetchone()
    skip = min(count // 2, max(count - FEED_PAGE, 0))
    if skip == 0:
        return 0
    cur.execute(f"SELECT id FROM delivery_events WHERE {column} = 1 ORDER BY id"
                " OFFSET %s LIMIT 1", (skip - 1,))
    return cur.fetchone()[0]


def build_endpoints(db: Any, fixed: dict[str, Any]) -> list[Endpoint]:
    sender = dataset.token_for(dataset.sender_user(1))
    courier = dataset.token_for(dataset.courier_user(1))
    supply_sender = dataset.token_for(dataset.sender_user(dataset.SUPPLY_SENDER))
    supply_courier = dataset.token_for(dataset.courier_user(dataset.SUPPLY_COURIER))
    with db.cursor() as cur:
        # Deliveries of the big sender, spread over the whole table, for GET /deliveries/{did}.
        cur.execute("SELECT id FROM deliveries TABLESAMPLE SYSTEM (5) REPEATABLE (7)"
                    " WHERE sender_id = 1 LIMIT 256")
        one = [row[0] for row in cur.fetchall()] or [fixed["noop_delivery"]]
        feed_sender = feed_after(cur, "sender_id")
        feed_courier = feed_after(cur, "courier_id")
    depth = list_depth(db)
    start_cursor, deep_cursor = sender_cursor(db, PER_PAGE), sender_cursor(db, depth)
    now = int(time.time())
    year_ago = now - 365 * 86400

    def get(path: str, token: str, **kw: Any) -> dict[str, Any]:
        return rest_event("GET", path, token=token, **kw)

    def action(name: str, status: str, token: str, body: dict[str, str] | None = None,
               note: str = "") -> Endpoint:
        def build(did: int) -> dict[str, Any]:
            return rest_event("POST", f"/deliveries/{did}/{name}", token=token, body=body)

        supply = Supply(db, status, dataset.SUPPLY_SENDER, dataset.SUPPLY_COURIER, build)
        return Endpoint(name, "write", [], 200, note=note, supply=supply)

    deep = f"{depth:,} items in"
    return [
        Endpoint(FRAMEWORK, "framework", [rest_event("GET", "/")], 200,
                 note="GET / answers OK without the database: Chalice and the middleware"),
        Endpoint("sender list, page 0", "read", [get("/deliveries/sender/1", sender)], 200),
        Endpoint(DEEP_PAGE, "read", [get("/deliveries/sender/1", sender, query={"page": "100"})],
                 200, note="OFFSET 1000"),
        Endpoint(FIRST_CURSOR, "read", [get("/deliveries/sender/1", sender,
                                            query={"after": start_cursor})], 200,
                 note="after = next_cursor of page 0 (items 10-19)"),
        Endpoint(DEEP_CURSOR, "read", [get("/deliveries/sender/1", sender,
                                           query={"after": deep_cursor})], 200,
                 note=f"after = the cursor of item {depth - 1:,}: {deep}"),
        Endpoint(DEEP_PAGE_MODE, "read", [get("/deliveries/sender/1", sender,
                                              query={"page": str(depth // PER_PAGE)})], 200,
                 note=f"page {depth // PER_PAGE:,}: OFFSET {depth:,}"),
        Endpoint("sender list, status=delivered", "read",
                 [get("/deliveries/sender/1", sender, query={"status": "delivered"})], 200,
                 note="page 0 of the delivered ones"),
        Endpoint("courier list", "read", [get("/deliveries/courier/1", courier)], 200,
                 note="the courier's own, page 0"),
        Endpoint("couriers (directory)", "read", [get("/couriers", sender)], 200,
                 note="GET /couriers, with today's counts"),
        Endpoint("one delivery", "read", [get(f"/deliveries/{did}", sender) for did in one], 200,
                 note=f"{len(one)} ids spread over the table"),
        Endpoint("delivery history", "read",
                 [get(f"/deliveries/{did}/events", sender) for did in one], 200,
                 note="GET /deliveries/{did}/events over the same ids"),
        Endpoint("event feed, sender", "read",
                 [get("/events", sender, query={"after": str(feed_sender)})], 200,
                 note="GET /events, 50 events from the middle of sender 1's feed"),
        Endpoint("event feed, courier", "read",
                 [get("/events", courier, query={"after": str(feed_courier)})], 200,
                 note="the same for courier 1"),
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
            body={"size": "20x30x40", "cost": "12.50", "description": CREATE_DESCRIPTION})],
                 201, cleanup=f"DELETE FROM deliveries WHERE description = '{CREATE_DESCRIPTION}'"),
        action("pickup", "assigned", supply_courier, note="assigned -> picked_up, by the courier"),
        action("deliver", "picked_up", supply_courier, {"recipient_name": "R. Receiver"},
               note="picked_up -> delivered, by the courier; keeps the revenue rollup"),
        action("fail", "picked_up", supply_courier, {"reason": "recipient_unavailable"},
               note="picked_up -> failed, by the courier"),
        action("cancel", "assigned", supply_sender, {"reason": "no longer needed"},
               note="assigned -> cancelled, by the sender"),
        action("unassign", "assigned", supply_sender, note="assigned -> created, by the sender"),
        Endpoint("login", "login", [rest_event(
            "POST", "/auth",
            body={"username": dataset.LOGIN_USERNAME, "password": dataset.LOGIN_PASSWORD})], 200,
            note="scrypt N=2^14 r=8 p=5"),
    ]
