"""Timing and CPU metering: an endpoint through the Lambda entry point, interleaved with
its floor and with its own SQL replayed directly, in alternating slices."""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from bench import dataset
from bench.endpoints import Endpoint
from bench.events import LambdaContext


@dataclass
class Rig:
    """What the measurements run on."""

    app: Any
    url: str
    floor: Any  # connection for the floors
    direct: Any  # connection for the replayed SQL
    context: LambdaContext
    errors: list[str] = field(default_factory=list)


def timed(seconds: float, call: Callable[[int], None], start_at: int = 0,
          latencies: list[float] | None = None, limit: int | None = None) -> tuple[int, float]:
    """Calls call(i) for i = start_at, ... until `seconds` have passed, or `limit`
    calls were made: (calls, elapsed)."""
    clock = time.perf_counter
    count = 0
    started = last = clock()
    deadline = started + seconds
    stop = limit if limit is not None else -1
    if latencies is None:
        while last < deadline and count != stop:
            call(start_at + count)
            count += 1
            last = clock()
    else:
        append = latencies.append
        while last < deadline and count != stop:
            call(start_at + count)
            count += 1
            now = clock()
            append(now - last)
            last = now
    return count, last - started


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def lambda_call(rig: Rig, ep: Endpoint) -> Callable[[int], None]:
    """Request i through the Lambda entry point: the endpoint's events in turn, or
    the event of position i of its supply (made beforehand by supply.ready)."""
    handler, context, expected = rig.app, rig.context, ep.status

    def check(response: dict[str, Any]) -> None:
        rig.errors.append(f"{ep.name}: {response['statusCode']} {response['body'][:200]}")
        if len(rig.errors) > 20:
            raise SystemExit("too many unexpected responses:\n" + "\n".join(rig.errors))

    if ep.supply is not None:
        take = ep.supply.events.pop

        def call(i: int) -> None:
            response = handler(take(i), context)
            if response["statusCode"] != expected:
                check(response)

        return call

    events = ep.events
    n = len(events)

    def call(i: int) -> None:
        response = handler(events[i % n], context)
        if response["statusCode"] != expected:
            check(response)

    return call


def direct_call(rig: Rig, ep: Endpoint) -> Callable[[int], None] | None:
    """The statements the endpoint sent on the wire, replayed with psycopg2 (for a
    supply: its statement on fresh deliveries, made beforehand by supply.ready_direct)."""
    if ep.kind == "login" or not ep.wire or not all(ep.wire):
        return None
    cur = rig.direct.cursor()
    if ep.supply is not None:
        if ep.supply.template is None:
            return None
        take = ep.supply.direct.pop

        def call(i: int) -> None:
            cur.execute(take(i))
            cur.fetchall()

        return call

    requests = ep.wire
    n = len(requests)

    def call(i: int) -> None:
        for sql in requests[i % n]:
            cur.execute(sql)
            cur.fetchall()

    return call


def floor_call(rig: Rig, kind: str) -> Callable[[int], None]:
    cur = rig.floor.cursor()
    if kind in ("read", "framework"):
        def call(i: int) -> None:
            cur.execute("SELECT 1")
            cur.fetchone()
    else:
        def call(i: int) -> None:
            cur.execute("INSERT INTO bench_floor (v) VALUES (1)")
    return call


def hash_call() -> Callable[[int], None]:
    from chalicelib import credentials

    stored = credentials.hash_password(dataset.LOGIN_PASSWORD)

    def call(i: int) -> None:
        credentials.verify_password(dataset.LOGIN_PASSWORD, stored)

    return call


def backend_cpu_ns(conn: Any) -> int | None:
    """CPU time used so far by the server process behind a connection (same machine only)."""
    try:
        with open(f"/proc/{conn.get_backend_pid()}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, psycopg2.Error):
        return None


def two_in_slices(app: Any, kinds: tuple[str, str], events: Callable[[str], list],
                  slices: int, status: int) -> dict[str, Any]:
    """Two kinds of request through the Lambda entry point (app.app) in
    alternating slices; events(kind) gives one slice's events, made before its
    clocks start. Per kind: req/s, and CPU per request of this process and of
    the database backend; cpu_ratio is the second kind's CPU over the first's."""
    from chalicelib import conn

    totals = {kind: [0.0, 0, 0.0, 0] for kind in kinds}  # wall, backend ns, cpu, requests
    for round_ in range(slices):
        for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
            batch = events(kind)
            backend = conn.connection()
            server0, cpu0, wall0 = backend_cpu_ns(backend), time.process_time(), time.perf_counter()
            for event in batch:
                reply = app.app(event, LambdaContext())
                assert reply["statusCode"] == status, reply
            total = totals[kind]
            total[0] += time.perf_counter() - wall0
            total[2] += time.process_time() - cpu0
            total[3] += len(batch)
            server1 = backend_cpu_ns(backend)
            if server0 is not None and server1 is not None:
                total[1] += server1 - server0
    out: dict[str, Any] = {
        kind: {"req_per_s": n / wall, "python_us": cpu / n * 1e6, "postgres_us": ns / n / 1e3}
        for kind, (wall, ns, cpu, n) in totals.items()}
    cpu = {kind: out[kind]["python_us"] + out[kind]["postgres_us"] for kind in kinds}
    out["cpu_ratio"] = cpu[kinds[1]] / cpu[kinds[0]]
    return out


class CpuMeter:
    """CPU per request of this process and of one server backend, over the slices."""

    def __init__(self, conn: Any):
        self.conn, self.client, self.server, self.count = conn, 0.0, 0, 0
        self.server_ok = backend_cpu_ns(conn) is not None

    @contextlib.contextmanager
    def slice(self) -> Iterator[None]:
        client0 = time.process_time()
        server0 = backend_cpu_ns(self.conn) if self.server_ok else None
        yield
        self.client += time.process_time() - client0
        if server0 is not None:
            server1 = backend_cpu_ns(self.conn)
            if server1 is not None:
                self.server += server1 - server0

    def per_request(self) -> dict[str, float | None]:
        if not self.count:
            return {"python_us": None, "postgres_us": None}
        return {"python_us": self.client / self.count * 1e6,
                "postgres_us": self.server / self.count / 1e3 if self.server_ok else None}


def _lambda_limit(ep: Endpoint, seconds: float) -> int | None:
    """For an endpoint with a supply: makes the deliveries of the slice ahead (outside
    its clock) and returns how many requests it may send."""
    if ep.supply is None:
        return None
    return ep.supply.ready(ep.lambda_pos, ep.supply.chunk(seconds))


def _direct_limit(ep: Endpoint, seconds: float) -> int | None:
    if ep.supply is None:
        return None
    return ep.supply.ready_direct(ep.direct_pos, ep.supply.chunk(seconds))


def measure(rig: Rig, ep: Endpoint, seconds: float, rounds: int) -> dict[str, Any]:
    """Interleaves floor, endpoint and direct SQL in `rounds` slices."""
    from chalicelib import conn as app_conn

    through_lambda = lambda_call(rig, ep)
    direct = direct_call(rig, ep)
    floor = hash_call() if ep.kind == "login" else floor_call(rig, ep.kind)
    if ep.kind == "login":
        rounds = 1
    warm = min(0.3, seconds / 4)
    n, _ = timed(warm, through_lambda, ep.lambda_pos, limit=_lambda_limit(ep, warm))
    ep.lambda_pos += n
    timed(warm / 3, floor)
    if direct is not None:
        n, _ = timed(warm / 3, direct, ep.direct_pos, limit=_direct_limit(ep, warm / 3))
        ep.direct_pos += n
    latencies: list[float] = []
    totals = {"lambda": [0, 0.0], "floor": [0, 0.0], "direct": [0, 0.0]}
    cpu_lambda, cpu_direct = CpuMeter(app_conn.connection()), CpuMeter(rig.direct)
    cpu_floor = CpuMeter(rig.floor)
    errors_before = len(rig.errors)
    for _ in range(rounds):
        with cpu_floor.slice():
            n, took = timed(seconds / rounds / 2, floor)
        cpu_floor.count += n
        totals["floor"][0] += n
        totals["floor"][1] += took
        limit = _lambda_limit(ep, seconds / rounds)
        with cpu_lambda.slice():
            n, took = timed(seconds / rounds, through_lambda, ep.lambda_pos, latencies, limit)
        cpu_lambda.count += n
        ep.lambda_pos += n
        totals["lambda"][0] += n
        totals["lambda"][1] += took
        if direct is not None:
            limit = _direct_limit(ep, seconds / rounds / 2)
            with cpu_direct.slice():
                n, took = timed(seconds / rounds / 2, direct, ep.direct_pos, limit=limit)
            cpu_direct.count += n
            ep.direct_pos += n
            totals["direct"][0] += n
            totals["direct"][1] += took
    latencies.sort()

    def rate(kind: str) -> float | None:
        n, took = totals[kind]
        return n / took if n else None

    rps, floor_rps, direct_rps = rate("lambda"), rate("floor"), rate("direct")
    return {
        "requests": len(latencies),
        "rps": rps,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "floor": {"read": "SELECT 1", "framework": "SELECT 1", "write": "one-row INSERT",
                  "login": "scrypt verify"}[ep.kind],
        "floor_rps": floor_rps,
        "ratio_to_floor": rps / floor_rps if rps and floor_rps else None,
        "direct_sql_rps": direct_rps,
        "python_share": rps / direct_rps if rps and direct_rps else None,
        "unexpected_responses": len(rig.errors) - errors_before,
        # CPU per request: of this (Python) process, and of the Postgres backend
        # serving it (embedded server only), through Lambda and direct.
        "cpu_lambda": cpu_lambda.per_request(),
        "cpu_direct": cpu_direct.per_request(),
        "cpu_floor": cpu_floor.per_request(),
    }
