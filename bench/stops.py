"""`make bench-stops`: what the stops cost.

1. Through the Lambda entry point, in alternating slices, CPU per request of
   this process and of the database backend: a create with both stops (full
   contact and window) against one without (goal: at most 1.25x);
   `GET /deliveries/{did}` and a sender's list page of 10 with stops against the
   same without (goal: at most 1.15x).
2. The retention sweep on a table of `--rows` deliveries with stops (default
   1,000,000): one sweep with nothing due, then per erased delivery.

    .venv/bin/python -m bench.stops [--slices 10] [--per-slice 300] [--rows 1000000]
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2

from bench.database import database
from bench.events import LambdaContext, rest_event
from bench.measure import two_in_slices
from bench.run import quiet_access_log
from tools import devdb


def log(message: str) -> None:
    print(f"[bench-stops] {message}", file=sys.stderr, flush=True)


def stops_body() -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    window = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {
        "pickup": {"address": {"line1": "Alexanderplatz 1", "line2": "Hof 2", "city": "Berlin",
                               "state": "Berlin", "postal_code": "10178", "country": "DE"},
                   "location": {"lat": 52.521918, "lng": 13.413215},
                   "contact": {"name": "acme dock", "phone": "+49 30 901820"},
                   "instructions": "Gate B, ring twice", "window": window},
        "dropoff": {"address": {"line1": "Kastanienallee 12", "line2": "2. OG links",
                                "city": "Berlin", "state": "Berlin", "postal_code": "10435",
                                "country": "DE"},
                    "location": {"lat": 52.538214, "lng": 13.409651},
                    "contact": {"name": "Ann Lee", "phone": "+49 30 123456"},
                    "instructions": "Leave with the neighbour", "window": window,
                    "requires_pin": True},
    }


def _login(app: Any, username: str, password: str) -> str:
    reply = app.app(rest_event("POST", "/auth", body={"username": username,
                                                      "password": password}), LambdaContext())
    return json.loads(reply["body"])["token"]


def _sender(app: Any, name: str) -> tuple[str, int]:
    app.app(rest_event("POST", "/signup", body={
        "username": name, "password": "bench-pass", "role": "sender", "company_name": name}),
        LambdaContext())
    token = _login(app, name, "bench-pass")
    me = json.loads(app.app(rest_event("GET", "/me", token=token), LambdaContext())["body"])
    return token, me["sender"]["id"]


def pairs(slices: int, per_slice: int) -> dict[str, dict[str, float]]:
    import app

    quiet_access_log()  # after the import, which sets the access log up

    plain_token, plain_id = _sender(app, f"plain{int(time.time())}")
    stops_token, stops_id = _sender(app, f"stops{int(time.time())}")
    base = {"size": "10x20x30", "cost": "12.50", "description": "bench"}
    for token, extra in ((plain_token, {}), (stops_token, stops_body())):
        for _ in range(20):  # a list page's worth and more
            reply = app.app(rest_event("POST", "/deliveries", body={**base, **extra},
                                       token=token), LambdaContext())
            assert reply["statusCode"] == 201, reply
    one = {kind: json.loads(app.app(rest_event("POST", "/deliveries", body={**base, **extra},
                                               token=token), LambdaContext())["body"])["id"]
           for kind, token, extra in (("plain", plain_token, {}),
                                      ("stops", stops_token, stops_body()))}
    cases = {
        "create": {"plain": rest_event("POST", "/deliveries", body=base, token=plain_token),
                   "stops": rest_event("POST", "/deliveries", body={**base, **stops_body()},
                                       token=stops_token), "status": 201},
        "get": {"plain": rest_event("GET", f"/deliveries/{one['plain']}", token=plain_token),
                "stops": rest_event("GET", f"/deliveries/{one['stops']}", token=stops_token),
                "status": 200},
        "list": {"plain": rest_event("GET", f"/deliveries/sender/{plain_id}",
                                     token=plain_token),
                 "stops": rest_event("GET", f"/deliveries/sender/{stops_id}",
                                     token=stops_token), "status": 200},
    }
    out: dict[str, dict[str, float]] = {}
    for name, case in cases.items():
        figures = two_in_slices(app, ("plain", "stops"),
                                lambda kind, case=case: [case[kind]] * per_slice,
                                slices, case["status"])
        out[name] = {**{f"{kind}_{m}": v for kind in ("plain", "stops")
                        for m, v in figures[kind].items()},
                     "cpu_ratio": figures["cpu_ratio"]}
        log(f"{name}: {out[name]['cpu_ratio']:.2f}x")
    return out


def sweep_at_scale(url: str, rows: int, due: int) -> dict[str, float]:
    """`rows` deliveries with both stops (a contact each), none due; one sweep;
    then `due` of them final for 31 days, erased in batches of 1,000."""
    db = psycopg2.connect(url)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("SELECT id FROM senders ORDER BY id LIMIT 1")
        (sender,) = cur.fetchone()
        log(f"loading {rows:,} deliveries with stops ...")
        started = time.perf_counter()
        cur.execute("""
            INSERT INTO deliveries (sender_id, length_cm, width_cm, height_cm, cost, status,
                pickup_line1, pickup_city, pickup_country, pickup_contact_name,
                pickup_contact_phone, pickup_instructions, dropoff_line1, dropoff_city,
                dropoff_country, dropoff_contact_name, dropoff_contact_phone,
                dropoff_instructions, created_at, updated_at)
            SELECT %s, 1, 1, 1, 1, CASE WHEN i %% 2 = 0 THEN 'cancelled' ELSE 'created' END,
                   'Street ' || i, 'Berlin', 'DE', 'Name ' || i, '+4930' || (100000 + i %% 800000),
                   'Ring', 'Road ' || i, 'Berlin', 'DE', 'Other ' || i,
                   '+4940' || (100000 + i %% 800000), 'Knock',
                   now() - interval '1 day', now() - interval '1 day'
              FROM generate_series(1, %s) i""", (sender, rows))
        log(f"loaded in {time.perf_counter() - started:.1f} s")
        cur.execute("VACUUM ANALYZE deliveries")

        def timed(sql: str, *args: Any) -> tuple[float, Any]:
            t0 = time.perf_counter()
            cur.execute(sql, args)
            return time.perf_counter() - t0, cur.fetchone()[0]

        idle = sorted(timed("SELECT erase_contacts(30, 1000)")[0] for _ in range(50))
        cur.execute("UPDATE deliveries SET updated_at = now() - interval '31 days'"
                    " WHERE id IN (SELECT id FROM deliveries WHERE status = 'cancelled'"
                    " ORDER BY id LIMIT %s)", (due,))
        cur.execute("VACUUM ANALYZE deliveries")
        erased, seconds = 0, 0.0
        while True:
            took, n = timed("SELECT erase_contacts(30, 1000)")
            if not n:
                break
            erased += n
            seconds += took
    db.close()
    return {"rows": rows, "idle_ms_p50": idle[len(idle) // 2] * 1000,
            "idle_ms_max": idle[-1] * 1000, "erased": erased,
            "per_erased_us": seconds / max(1, erased) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--per-slice", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=20_000)
    args = parser.parse_args(argv)
    os.environ["AUTH_RATE_PER_MINUTE"] = "0"
    with database() as (url, where):
        devdb.apply_sql(url, devdb.SCHEME)
        os.environ["DATABASE_URL"] = url
        log(f"stops against none: {args.slices} alternating slices of {args.per_slice} "
            f"({where})")
        measured = pairs(args.slices, args.per_slice)
        from chalicelib import conn

        conn.drop()
        sweep = sweep_at_scale(url, args.rows, args.due)
    print("| request | without stops: req/s, Python µs, Postgres µs | with both stops |"
          " CPU with / without | goal |\n|---|---|---|---:|---:|")
    goals = {"create": 1.25, "get": 1.15, "list": 1.15}
    names = {"create": "POST /deliveries", "get": "GET /deliveries/{did}",
             "list": "GET /deliveries/sender/{sid} (10 items)"}
    for name, m in measured.items():
        print(f"| {names[name]} | {m['plain_req_per_s']:.0f}, {m['plain_python_us']:.0f}, "
              f"{m['plain_postgres_us']:.0f} | {m['stops_req_per_s']:.0f}, "
              f"{m['stops_python_us']:.0f}, {m['stops_postgres_us']:.0f} | "
              f"{m['cpu_ratio']:.2f}x | {goals[name]:.2f}x |")
    print(f"\nRetention sweep on {sweep['rows']:,} deliveries with stops: nothing due "
          f"p50 {sweep['idle_ms_p50']:.2f} ms (max {sweep['idle_ms_max']:.2f} ms); "
          f"{sweep['erased']:,} due erased at {sweep['per_erased_us']:.0f} µs each.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
