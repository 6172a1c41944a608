"""Soak: a mixed workload over HTTP against `chalice local` for SOAK_SECONDS (30).

Several client threads sign up, log in, create deliveries, assign them (to a small
pool of shared couriers, so the daily limit is hit all the time and under
contention), list, and ask for revenue. Afterwards, in the database:
- no request got a 5xx (or any status the operation does not document);
- every acknowledged create is there, with the sender and cost it was acknowledged with;
- every delivery is assigned to the courier of its last acknowledged assignment;
- no courier holds more than 5 deliveries assigned in one UTC day.
The requests per second it held are printed in the test output.
"""

import json
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from tests.conftest import start_chalice_local, stop, unique, unique_phone
from tools import devdb

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "8"))
INITIAL_COURIERS = 4
DAILY_LIMIT = 5
PASSWORD = "soak password"

# The statuses each kind of request may get in this workload.
ALLOWED = {
    "signup": {201},
    "login": {200},
    "create": {201},
    "assign": {200, 409},
    "get": {200},
    "list_sender": {200},
    "list_courier": {200},
    "list_couriers": {200},
    "revenue": {200},
    "me": {200},
}


@pytest.fixture(scope="module")
def soak_target(server_url: str) -> Iterator[dict[str, Any]]:
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        process, base, log_path = start_chalice_local(url)
        try:
            yield {"base": base, "url": url, "log": log_path}
        finally:
            stop(process)


class Soak:
    """Shared state of the run: what was acknowledged, and what was seen."""

    def __init__(self, base: str, deadline: float) -> None:
        self.base = base
        self.deadline = deadline
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.unexpected: list[str] = []
        self.couriers: list[dict[str, Any]] = []  # {"courier_id", "token"}
        self.created: dict[int, tuple[int, str]] = {}  # delivery id -> (sender id, cost)
        self.last_assign: dict[int, int] = {}  # delivery id -> courier id
        self.requests = 0

    def send(self, session: Any, kind: str, method: str, path: str,
             token: str | None = None, body: Any = None) -> requests.Response | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = session.request(method, self.base + path, json=body, headers=headers,
                                       timeout=30)
        except requests.RequestException as exc:
            with self.lock:
                self.requests += 1
                self.unexpected.append(f"{kind} {method} {path}: {exc!r}")
            return None
        with self.lock:
            self.requests += 1
            self.statuses[(kind, response.status_code)] += 1
            if response.status_code not in ALLOWED[kind]:
                self.unexpected.append(
                    f"{kind} {method} {path}: {response.status_code} {response.text[:200]}")
        return response if response.status_code in ALLOWED[kind] else None

    def sign_up(self, session: Any, role: str) -> dict[str, Any] | None:
        username = unique("soak")
        body: dict[str, Any] = {"username": username, "password": PASSWORD, "role": role}
        if role == "sender":
            body["company_name"] = unique("Soak Co ")
        else:
            body.update(first_name="Sam", last_name="Soak", phone=unique_phone(),
                        vehicle="bicycle")
        created = self.send(session, "signup", "POST", "/signup", body=body)
        if created is None:
            return None
        login = self.send(session, "login", "POST", "/auth",
                          body={"username": username, "password": PASSWORD})
        if login is None:
            return None
        return {**created.json(), "token": login.json()["token"], "username": username}


def _worker(soak: Soak, seed: int, keep_alive: bool) -> None:
    rng = random.Random(seed)
    # Half the workers keep one connection (one server thread, one database
    # connection); the others open a new one for every request.
    session: Any = requests.Session() if keep_alive else requests
    me = soak.sign_up(session, "sender")
    if me is None:
        return
    token, sender_id = me["token"], me["sender_id"]
    mine: list[int] = []
    kinds = ["create", "assign", "get", "list_sender", "list_courier", "list_couriers",
             "revenue", "me", "login", "signup"]
    weights = [25, 25, 10, 8, 8, 6, 6, 6, 1, 0.3]
    while time.monotonic() < soak.deadline:
        kind = rng.choices(kinds, weights)[0]
        if kind == "create" or (kind in ("assign", "get") and not mine):
            cost = f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"
            size = "x".join(str(rng.randint(1, 1000)) for _ in range(3))
            reply = soak.send(session, "create", "POST", "/deliveries", token,
                              {"size": size, "cost": cost, "description": secrets.token_hex(8)})
            if reply is not None:
                delivery = reply.json()
                mine.append(delivery["id"])
                with soak.lock:
                    soak.created[delivery["id"]] = (sender_id, delivery["cost"])
        elif kind == "assign":
            did, courier = rng.choice(mine), rng.choice(soak.couriers)
            reply = soak.send(session, "assign", "PUT", f"/assign/{did}/{courier['courier_id']}",
                              token)
            if reply is not None and reply.status_code == 200:
                with soak.lock:  # this worker alone assigns its deliveries: order is known
                    soak.last_assign[did] = courier["courier_id"]
        elif kind == "get":
            soak.send(session, "get", "GET", f"/deliveries/{rng.choice(mine)}", token)
        elif kind == "list_sender":
            soak.send(session, "list_sender", "GET",
                      f"/deliveries/sender/{sender_id}?per_page={rng.randint(1, 100)}", token)
        elif kind == "list_courier":
            courier = rng.choice(soak.couriers)
            soak.send(session, "list_courier", "GET",
                      f"/deliveries/courier/{courier['courier_id']}", courier["token"])
        elif kind == "list_couriers":
            soak.send(session, "list_couriers", "GET", "/couriers?per_page=50", token)
        elif kind == "revenue":
            soak.send(session, "revenue", "GET", "/revenue/0/4102444800",
                      rng.choice(soak.couriers)["token"])
        elif kind == "me":
            soak.send(session, "me", "GET", "/me", token)
        elif kind == "login":
            soak.send(session, "login", "POST", "/auth",
                      body={"username": me["username"], "password": PASSWORD})
        else:
            courier = soak.sign_up(session, "courier")
            if courier is not None:
                with soak.lock:
                    soak.couriers.append(courier)


def _server_latencies(log_path: Path) -> list[float]:
    """Latencies from the app's access log lines, one JSON object each
    ({"logger": "delivery_api.access", ..., "duration_ms": 3.1, ...}, docs/logs.md)."""
    latencies = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"delivery_api.access"' in line:
            try:
                entry = json.loads(line)
            except ValueError:  # the server's last line, still being written
                continue
            if entry.get("logger") == "delivery_api.access":
                latencies.append(float(entry["duration_ms"]))
    return sorted(latencies)


def _pct(values: list[float], percent: float) -> float:
    return values[min(len(values) - 1, int(len(values) * percent / 100))] if values else 0.0


def test_soak_mixed_workload_holds_its_invariants(soak_target, capsys):
    setup = Soak(soak_target["base"], deadline=float("inf"))
    session = requests.Session()
    couriers = [setup.sign_up(session, "courier") for _ in range(INITIAL_COURIERS)]
    assert all(couriers), setup.unexpected

    started = time.monotonic()
    soak = Soak(soak_target["base"], deadline=started + SOAK_SECONDS)
    soak.couriers = list(couriers)
    threads = [threading.Thread(target=_worker, args=(soak, n, n % 2 == 0), daemon=True)
               for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SOAK_SECONDS + 60)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a worker hung"

    by_status = Counter()
    for (_, status), n in soak.statuses.items():
        by_status[status] += n
    summary = ", ".join(f"{status}: {n}" for status, n in sorted(by_status.items()))
    latencies = _server_latencies(soak_target["log"])
    with capsys.disabled():
        print(f"\nsoak: {soak.requests} requests in {elapsed:.1f}s from {WORKERS} threads = "
              f"{soak.requests / elapsed:.0f} requests/s; {len(soak.created)} deliveries "
              f"created, {len(soak.last_assign)} assigned, {len(soak.couriers)} couriers; "
              f"statuses {summary}; server-side latency p50 {_pct(latencies, 50):.1f} ms, "
              f"p95 {_pct(latencies, 95):.1f} ms, p99 {_pct(latencies, 99):.1f} ms "
              f"(scrypt logins and signups included)")

    assert not soak.unexpected, soak.unexpected[:20]
    assert not any(status >= 500 for status in by_status)
    assert soak.created and soak.last_assign and by_status[409] > 0

    conn = psycopg2.connect(soak_target["url"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, sender_id, cost::text, courier_id FROM deliveries")
            stored = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute("""
                SELECT courier_id, (assigned_at AT TIME ZONE 'UTC')::date, count(*)
                  FROM deliveries WHERE courier_id IS NOT NULL
                 GROUP BY 1, 2 HAVING count(*) > %s""", (DAILY_LIMIT,))
            over_limit = cur.fetchall()
    finally:
        conn.close()
    missing = [did for did in soak.created if did not in stored]
    assert not missing, f"acknowledged creates missing from the database: {missing[:20]}"
    for did, (sender_id, cost) in soak.created.items():
        assert stored[did][:2] == (sender_id, cost), did
    for did, courier_id in soak.last_assign.items():
        assert stored[did][2] == courier_id, did
    assert not over_limit, f"couriers above {DAILY_LIMIT} a day: {over_limit}"
