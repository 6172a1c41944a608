"""`make bench-keys`: what an API key costs a request.

Through the Lambda entry point, in alternating slices, CPU per request of this
process and of the database backend:

1. `GET /deliveries/{did}` and `POST /deliveries` with a write key against the
   same with a login token of the same sender (goal: at most 1.05x). The key's
   last_used_at is refreshed at most once a minute, as in production.
2. `GET /me` with a key whose refresh is due (a key this process has not used:
   each request writes last_used_at in its statement) against `GET /me` with a
   key whose refresh is not due: what a request costs the minute it refreshes.

    .venv/bin/python -m bench.keys [--slices 10] [--per-slice 300]
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import psycopg2

from bench.database import database
from bench.events import LambdaContext, rest_event
from bench.measure import two_in_slices
from bench.run import quiet_access_log
from tools import devdb


def log(message: str) -> None:
    print(f"[bench-keys] {message}", file=sys.stderr, flush=True)


def _call(app: Any, method: str, path: str, token: str | None = None,
          body: Any = None) -> dict[str, Any]:
    reply = app.app(rest_event(method, path, body=body, token=token), LambdaContext())
    assert reply["statusCode"] in (200, 201), reply
    return json.loads(reply["body"])


def token_against_key(app: Any, slices: int, per_slice: int) -> dict[str, dict[str, float]]:
    name = f"keys{int(time.time())}"
    _call(app, "POST", "/signup", body={"username": name, "password": "bench-pass",
                                         "role": "sender", "company_name": name})
    token = _call(app, "POST", "/auth", body={"username": name, "password": "bench-pass"})["token"]
    key = _call(app, "POST", "/api-keys", token, {"name": "bench"})["key"]
    body = {"size": "10x20x30", "cost": "12.50", "description": "bench"}
    did = _call(app, "POST", "/deliveries", token, body)["id"]
    cases = {
        "get": (lambda credential: rest_event("GET", f"/deliveries/{did}", token=credential),
                200),
        "create": (lambda credential: rest_event("POST", "/deliveries", body=body,
                                                 token=credential), 201),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (make, status) in cases.items():
        events = {"token": make(token), "key": make(key)}
        figures = two_in_slices(app, ("token", "key"),
                                lambda kind, events=events: [events[kind]] * per_slice,
                                slices, status)
        out[name] = {**{f"{kind}_{m}": v for kind in ("token", "key")
                        for m, v in figures[kind].items()},
                     "cpu_ratio": figures["cpu_ratio"]}
        log(f"{name}: {out[name]['cpu_ratio']:.3f}x")
    return out


def refresh_cost(app: Any, url: str, slices: int, per_slice: int) -> dict[str, float]:
    """Keys made behind the API's back, one per request of the refreshing
    slices (at most 20 per user: as many users as that takes)."""
    from chalicelib import credentials

    needed = slices * per_slice + 1  # every slice of "due" takes fresh keys; one steady
    users = (needed + 19) // 20
    db = psycopg2.connect(url)
    db.autocommit = True
    fresh: list[str] = []
    with db.cursor() as cur:
        stamp = int(time.time())
        cur.execute("INSERT INTO users (username, password_hash, role) "
                    "SELECT 'kb' || %s || '_' || i, 'scrypt$unusable', 'courier' "
                    "FROM generate_series(1, %s) i RETURNING id", (stamp, users))
        user_ids = [row[0] for row in cur.fetchall()]
        rows = []
        for n in range(needed):
            key = credentials.new_api_key()
            fresh.append(key)
            rows.append((user_ids[n // 20], credentials.api_key_sha256(key), key[:10]))
        cur.executemany("INSERT INTO api_keys (user_id, key_sha256, prefix, name, scope) "
                        "VALUES (%s, %s, %s, 'bench', 'read')", rows)
        cur.execute("VACUUM ANALYZE api_keys")
    db.close()
    steady = fresh.pop()
    _call(app, "GET", "/me", steady)  # touched now: not due again within the run
    given = iter(fresh)

    def events(kind: str) -> list[dict[str, Any]]:
        if kind == "not_due":
            return [rest_event("GET", "/me", token=steady)] * per_slice
        return [rest_event("GET", "/me", token=next(given)) for _ in range(per_slice)]

    figures = two_in_slices(app, ("not_due", "due"), events, slices, 200)
    out = {**{f"{kind}_{m}": v for kind in ("not_due", "due") for m, v in figures[kind].items()},
           "cpu_ratio": figures["cpu_ratio"]}
    log(f"refresh: {out['cpu_ratio']:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--per-slice", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ["AUTH_RATE_PER_MINUTE"] = "0"
    with database() as (url, where):
        devdb.apply_sql(url, devdb.SCHEME)
        os.environ["DATABASE_URL"] = url
        import app

        quiet_access_log()  # after the import, which sets the access log up

        log(f"key against token: {args.slices} alternating slices of {args.per_slice} "
            f"({where})")
        measured = token_against_key(app, args.slices, args.per_slice)
        refresh = refresh_cost(app, url, args.slices, args.per_slice)
    print("| request | login token: req/s, Python µs, Postgres µs | write key |"
          " CPU key / token | goal |\n|---|---|---|---:|---:|")
    names = {"get": "GET /deliveries/{did}", "create": "POST /deliveries"}
    for name, m in measured.items():
        print(f"| {names[name]} | {m['token_req_per_s']:.0f}, {m['token_python_us']:.0f}, "
              f"{m['token_postgres_us']:.0f} | {m['key_req_per_s']:.0f}, "
              f"{m['key_python_us']:.0f}, {m['key_postgres_us']:.0f} | "
              f"{m['cpu_ratio']:.3f}x | 1.05x |")
    r = refresh
    print(f"\nGET /me with a key, refresh not due: {r['not_due_req_per_s']:.0f} req/s, "
          f"{r['not_due_python_us']:.0f} + {r['not_due_postgres_us']:.0f} µs CPU; "
          f"refresh due (last_used_at written in the statement): {r['due_req_per_s']:.0f} "
          f"req/s, {r['due_python_us']:.0f} + {r['due_postgres_us']:.0f} µs CPU "
          f"({r['cpu_ratio']:.2f}x).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
