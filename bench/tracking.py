"""`make bench-tracking`: what the recipient's side costs.

1. `PUT /me/location` from `--couriers` (8) concurrent couriers for `--seconds`
   (10) through the Lambda entry point (one thread and one connection per
   courier), against the floor of the same threads each sending a one-row
   INSERT, in alternating slices: positions/s (per thread too) and CPU per
   position (this process and the backends); then courier_positions' relation
   sizes before and after, and how many of its updates were HOT. With
   --processes each courier is a process of its own, as Lambda instances are.
2. `GET /track/{token}/status` against `GET /deliveries/{did}` of the same
   picked-up delivery (a fresh position, both stops), CPU per request in
   alternating slices (goal: at most 1.2x).

    .venv/bin/python -m bench.tracking [--couriers 8] [--seconds 10] [--slices 5] [--processes]
"""

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

import psycopg2

from bench.database import database
from bench.events import LambdaContext, rest_event
from bench.measure import backend_cpu_ns, two_in_slices
from bench.run import quiet_access_log
from tools import devdb


def log(message: str) -> None:
    print(f"[bench-tracking] {message}", file=sys.stderr, flush=True)


def _call(app: Any, event: dict[str, Any], status: int) -> dict[str, Any]:
    reply = app.app(event, LambdaContext())
    assert reply["statusCode"] == status, reply
    return json.loads(reply["body"]) if reply["body"] else {}


def _user(app: Any, name: str, role: str) -> dict[str, Any]:
    extra = {"company_name": name} if role == "sender" else {
        "first_name": "Bo", "last_name": "Ek", "vehicle": "bicycle",
        "phone": f"+1555{abs(hash(name)) % 10**7:07d}"}
    _call(app, rest_event("POST", "/signup", body={"username": name, "password": "bench-pass",
                                                   "role": role, **extra}), 201)
    token = _call(app, rest_event("POST", "/auth", body={"username": name,
                                                        "password": "bench-pass"}), 200)["token"]
    me = _call(app, rest_event("GET", "/me", token=token), 200)
    return {"token": token, **(me["sender"] or me["courier"])}


def sizes(cur: Any) -> dict[str, int]:
    cur.execute("SELECT pg_relation_size('courier_positions'),"
                " pg_relation_size('courier_positions_pkey'),"
                " pg_total_relation_size('courier_positions')")
    heap, index, total = cur.fetchone()
    return {"heap": heap, "index": index, "total": total}


def hot_share(cur: Any) -> tuple[int, int]:
    cur.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.6)  # the statistics of other backends reach the view within 0.5 s
    cur.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE relname = 'courier_positions'")
    return cur.fetchone()


class Courier(threading.Thread):
    """One courier's thread, kept for the whole run (so its connection, and
    the floor's, stay open): runs a slice of `kind` until a deadline when
    told, and reports how many requests it made."""

    def __init__(self, app: Any, url: str, courier: dict[str, Any], index: int) -> None:
        super().__init__(daemon=True)
        self.app, self.courier, self.index = app, courier, index
        self.floor = psycopg2.connect(url)
        self.floor.autocommit = True
        self.orders: list[tuple[str, float]] = []
        self.ready, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.count, self.backend = 0, None

    def order(self, kind: str, deadline: float) -> None:
        self.orders.append((kind, deadline))
        self.ready.release()

    def run(self) -> None:
        from chalicelib import conn

        lat = 52.5 + self.index / 100
        # the events are made before any clock runs (building one costs more
        # than some requests)
        events = [rest_event("PUT", "/me/location", token=self.courier["token"],
                             body={"lat": lat, "lng": 13.4 + n / 10**5}) for n in range(500)]
        while True:
            self.ready.acquire()
            kind, deadline = self.orders.pop()
            if kind == "stop":
                return
            n = 0
            if kind == "put":
                context = LambdaContext()
                while time.perf_counter() < deadline:
                    reply = self.app.app(events[n % 500], context)
                    assert reply["statusCode"] == 204, reply
                    n += 1
                self.backend = conn.connection()
            else:
                with self.floor.cursor() as cur:
                    while time.perf_counter() < deadline:
                        cur.execute("INSERT INTO bench_floor (v) VALUES (1)")
                        n += 1
            self.count = n
            self.done.release()


def positions(app: Any, url: str, couriers: list[dict[str, Any]], seconds: float,
              slices: int) -> dict[str, Any]:
    """The endpoint and the floor, each in `slices` alternating slices of
    seconds / slices, all couriers at once."""
    workers = [Courier(app, url, courier, i) for i, courier in enumerate(couriers)]
    with workers[0].floor.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (v integer)")
    for worker in workers:
        worker.start()

    def run(kind: str, length: float) -> tuple[int, float, int, float]:
        connections = [w.backend for w in workers] if kind == "put" else [w.floor for w in workers]
        server0 = sum(backend_cpu_ns(c) or 0 for c in connections) if kind != "warm" else 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for worker in workers:
            worker.order("put" if kind == "warm" else kind, wall0 + length)
        for worker in workers:
            worker.done.acquire()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        server = sum(backend_cpu_ns(c) or 0 for c in connections) - server0 \
            if kind != "warm" else 0
        return sum(w.count for w in workers), wall, server, cpu

    run("warm", 0.3)  # every courier's connection open before the clocks start
    totals = {"put": [0, 0.0, 0, 0.0], "floor": [0, 0.0, 0, 0.0]}  # n, wall, backend ns, cpu
    for round_ in range(slices):
        for kind in ("put", "floor") if round_ % 2 == 0 else ("floor", "put"):
            for k, value in enumerate(run(kind, seconds / slices)):
                totals[kind][k] += value
    for worker in workers:
        worker.order("stop", 0)
        worker.join()
        worker.floor.close()
    out = {}
    for kind, (n, wall, ns, cpu) in totals.items():
        out[kind] = {"per_s": n / wall, "per_thread_s": n / wall / len(couriers),
                     "python_us": cpu / n * 1e6, "postgres_us": ns / n / 1e3, "count": n}
    return out


def _courier_process(url: str, token: str, index: int, orders: Any, results: Any) -> None:
    """One courier as its own process (as separate Lambda instances are): its
    own interpreter, app and connection, and a floor connection. Runs each
    ordered slice from its start to its deadline (perf_counter is the
    system's monotonic clock, shared by the processes) and reports the count,
    its own CPU and its backend's."""
    os.environ["DATABASE_URL"] = url
    import app
    from chalicelib import conn

    quiet_access_log()
    floor = psycopg2.connect(url)
    floor.autocommit = True
    lat = 52.5 + index / 100
    events = [rest_event("PUT", "/me/location", token=token,
                         body={"lat": lat, "lng": 13.4 + n / 10**5}) for n in range(500)]
    context = LambdaContext()
    _call(app, events[0], 204)  # the connection is open before any clock runs
    while True:
        kind, start, deadline = orders.get()
        if kind == "stop":
            floor.close()
            return
        backend = conn.connection() if kind == "put" else floor
        server0, cpu0 = backend_cpu_ns(backend) or 0, time.process_time()
        while time.perf_counter() < start:
            time.sleep(0.001)
        n = 0
        if kind == "put":
            while time.perf_counter() < deadline:
                reply = app.app(events[n % 500], context)
                assert reply["statusCode"] == 204, reply
                n += 1
        else:
            with floor.cursor() as cur:
                while time.perf_counter() < deadline:
                    cur.execute("INSERT INTO bench_floor (v) VALUES (1)")
                    n += 1
        results.put((n, time.process_time() - cpu0, (backend_cpu_ns(backend) or 0) - server0))


def positions_in_processes(url: str, couriers: list[dict[str, Any]], seconds: float,
                           slices: int) -> dict[str, Any]:
    """positions(), with each courier a process of its own instead of a thread
    (no interpreter lock shared between couriers)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    orders = [spawn.Queue() for _ in couriers]
    workers = [spawn.Process(target=_courier_process, daemon=True,
                             args=(url, courier["token"], i, orders[i], results))
               for i, courier in enumerate(couriers)]
    with psycopg2.connect(url) as db, db.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (v integer)")
    for worker in workers:
        worker.start()

    def run(kind: str, length: float) -> tuple[int, float, int, float]:
        start = time.perf_counter() + 0.2  # every process has its order by then
        for queue in orders:
            queue.put((kind, start, start + length))
        reports = [results.get(timeout=120) for _ in workers]
        return (sum(r[0] for r in reports), length, sum(r[2] for r in reports),
                sum(r[1] for r in reports))

    run("put", 0.3)  # warm
    totals = {"put": [0, 0.0, 0, 0.0], "floor": [0, 0.0, 0, 0.0]}
    for round_ in range(slices):
        for kind in ("put", "floor") if round_ % 2 == 0 else ("floor", "put"):
            for k, value in enumerate(run(kind, seconds / slices)):
                totals[kind][k] += value
    for queue in orders:
        queue.put(("stop", 0, 0))
    for worker in workers:
        worker.join(timeout=30)
    out = {}
    for kind, (n, wall, ns, cpu) in totals.items():
        out[kind] = {"per_s": n / wall, "per_thread_s": n / wall / len(couriers),
                     "python_us": cpu / n * 1e6, "postgres_us": ns / n / 1e3, "count": n}
    return out


def track_against_get(app: Any, slices: int, per_slice: int) -> dict[str, Any]:
    from chalicelib import tracking

    sender = _user(app, f"tsender{int(time.time())}", "sender")
    courier = _user(app, f"tcourier{int(time.time())}", "courier")
    from bench.stops import stops_body

    made = _call(app, rest_event("POST", "/deliveries", token=sender["token"], body={
        "size": "1x2x3", "cost": "4.50", **stops_body()}), 201)
    _call(app, rest_event("PUT", f"/assign/{made['id']}/{courier['id']}",
                          token=sender["token"]), 200)
    _call(app, rest_event("POST", f"/deliveries/{made['id']}/pickup",
                          token=courier["token"]), 200)
    _call(app, rest_event("PUT", "/me/location", token=courier["token"],
                          body={"lat": 52.53, "lng": 13.41}), 204)
    token = tracking.token(made["id"])
    events = {"get": rest_event("GET", f"/deliveries/{made['id']}", token=sender["token"]),
              "track": rest_event("GET", f"/track/{token}/status")}
    return two_in_slices(app, ("get", "track"), lambda kind: [events[kind]] * per_slice,
                         slices, 200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--couriers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--per-slice", type=int, default=400)
    parser.add_argument("--processes", action="store_true",
                        help="each courier a process of its own (as Lambda instances are), "
                             "not a thread")
    args = parser.parse_args(argv)
    os.environ["AUTH_RATE_PER_MINUTE"] = "0"
    os.environ.setdefault("WEBHOOK_SIGNING_KEY", "bench-" + "k" * 40)
    with database() as (url, where):
        devdb.apply_sql(url, devdb.SCHEME)
        os.environ["DATABASE_URL"] = url
        import app

        quiet_access_log()  # after the import, which sets the access log up
        log(f"{args.couriers} couriers ({where})")
        couriers = [_user(app, f"courier{i}x{int(time.time())}", "courier")
                    for i in range(args.couriers)]
        admin = psycopg2.connect(url)
        admin.autocommit = True
        cur = admin.cursor()
        for courier in couriers:
            _call(app, rest_event("PUT", "/me/location", token=courier["token"],
                                  body={"lat": 52.5, "lng": 13.4}), 204)
        before, (upd0, hot0) = sizes(cur), hot_share(cur)
        log(f"PUT /me/location against a one-row INSERT: {args.slices} alternating slices, "
            f"{args.seconds:g} s each side")
        measured = (positions_in_processes(url, couriers, args.seconds, args.slices)
                    if args.processes else
                    positions(app, url, couriers, args.seconds, args.slices))
        after, (upd1, hot1) = sizes(cur), hot_share(cur)
        log("GET /track/{token}/status against GET /deliveries/{did}")
        track = track_against_get(app, 10, args.per_slice)
        admin.close()
    put, floor = measured["put"], measured["floor"]
    print("| " + " | ".join(("", "requests/s", "per thread /s", "Python µs", "Postgres µs")) + " |")
    print("|---|---:|---:|---:|---:|")
    for name, m in (("PUT /me/location", put), ("one-row INSERT (floor)", floor)):
        print(f"| {name} | {m['per_s']:.0f} | {m['per_thread_s']:.0f} | {m['python_us']:.0f} | "
              f"{m['postgres_us']:.0f} |")
    print(f"\nPer {'process' if args.processes else 'thread'}, PUT /me/location over the floor: "
          f"{put['per_thread_s'] / floor['per_thread_s']:.2f} (goal: at least 0.5), "
          f"{args.couriers} couriers, {put['count']:,} positions.")
    print(f"courier_positions after {upd1 - upd0:,} updates ({hot1 - hot0:,} HOT): heap "
          f"{before['heap']:,} -> {after['heap']:,} bytes, primary key {before['index']:,} -> "
          f"{after['index']:,} bytes, total {before['total']:,} -> {after['total']:,} bytes.")
    print(f"\nGET /track/{{token}}/status against GET /deliveries/{{did}}: "
          f"{track['track']['req_per_s']:.0f} against {track['get']['req_per_s']:.0f} req/s, "
          f"Python {track['track']['python_us']:.0f} against {track['get']['python_us']:.0f} µs,"
          f" Postgres {track['track']['postgres_us']:.0f} against "
          f"{track['get']['postgres_us']:.0f} µs: CPU {track['cpu_ratio']:.2f}x (goal: at most "
          "1.2x).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
