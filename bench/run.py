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
- Statements per request: counted on the wire (tools/wirecount.py) in a
  separate pass.
- Cold start (fresh interpreters) and the size of the `chalice package` zip.

Figures go to bench/results/<timestamp>.json (and latest.json, latest.md); the
Markdown printed at the end is what docs/benchmark.md shows.
"""

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import chart, dataset, writers
from bench.database import connect, database, machine
from bench.endpoints import (
    DEEP_CURSOR,
    DEEP_PAGE_MODE,
    REVENUE,
    Endpoint,
    build_endpoints,
    list_depth,
    prepare_fixed,
)
from bench.events import LambdaContext
from bench.explain import revenue_plan
from bench.measure import Rig, measure
from bench.report import markdown, num, published_run, targets
from bench.startup import cold_start, package_size
from bench.wire import count_statements
from tools import devdb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PUBLISHED = ROOT / "docs" / "benchmark.md"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet_access_log() -> None:
    """The access log still formats every line, but writes it to /dev/null."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger("delivery_api.access").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--writer-rounds", type=int, default=4,
                        help="alternating rounds of the concurrent-writers section "
                             "(bench/writers.py; 0 skips it)")
    parser.add_argument("--no-package", action="store_true",
                        help="skip `chalice package`")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--compare", type=Path, default=PUBLISHED,
                        help="the published run to compare the reads with (default "
                             "docs/benchmark.md, read before it is replaced)")
    return parser.parse_args(argv)


def one_size(db: Any, rig: Rig, fixed: dict[str, Any], args: argparse.Namespace,
             result: dict[str, Any]) -> dict[str, Any]:
    """Statements, figures and the revenue plan of every endpoint at the loaded size."""
    only = set(args.only)
    endpoints = [ep for ep in build_endpoints(db, fixed) if not only or ep.name in only]
    depth = list_depth(db)
    deep = same_page(rig, endpoints, DEEP_CURSOR, DEEP_PAGE_MODE)
    if deep is not None:
        log(f"  deep pages ({depth:,} in): cursor and page mode show the same items: {deep}")
    log("  counting statements on the wire ...")
    wire = count_statements(rig, endpoints)
    result.setdefault("statements", wire)
    figures: dict[str, Any] = {}
    for ep in endpoints:
        seconds = args.login_seconds if ep.kind == "login" else args.seconds
        r = measure(rig, ep, seconds, args.rounds)
        r["kind"], r["note"] = ep.kind, ep.note
        if ep.supply is not None:
            r["deliveries_supplied"] = ep.supply.clean()
        if ep.cleanup:
            with db.cursor() as cur:
                cur.execute(ep.cleanup)
                r["rows_cleaned_up"] = cur.rowcount
        figures[ep.name] = r
        log(f"  {ep.name:32} {num(r['rps'], 0):>8}/s  p50 {r['p50_ms']:7.3f} ms  "
            f"p99 {r['p99_ms']:7.3f} ms  x floor {num(r['ratio_to_floor'], 3):>6}  "
            f"Lambda/direct {num(r['python_share'], 2):>5}  cpu us py/pg "
            f"{num(r['cpu_lambda']['python_us'], 0)}/"
            f"{num(r['cpu_lambda']['postgres_us'], 0)}")
    entry: dict[str, Any] = {"endpoints": figures, "list_depth": depth,
                             "deep_pages_agree": deep}
    revenue = next((ep for ep in endpoints if ep.name == REVENUE), None)
    if revenue is not None:
        entry["explain_revenue"] = explain = revenue_plan(db, rig, revenue)
        log(f"  revenue plan: index scans only {explain['index_scan']}, rollup index "
            f"{explain['rollup_index']}, same as the endpoint {explain['same_as_endpoint']}")
    return entry


def same_page(rig: Rig, endpoints: list[Endpoint], cursor_name: str,
              page_name: str) -> bool | None:
    """Whether the two endpoints answer the same items (None when one is not run)."""
    by_name = {ep.name: ep for ep in endpoints}
    if cursor_name not in by_name or page_name not in by_name:
        return None
    items = []
    for name in (cursor_name, page_name):
        response = rig.app(by_name[name].events[0], rig.context)
        items.append([item["id"] for item in json.loads(response["body"])["items"]])
    return bool(items[0]) and items[0] == items[1]


def data_shape(db: Any) -> dict[str, Any]:
    """What the loaded data set holds: deliveries by status, sender 1's, events."""
    with db.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM deliveries GROUP BY 1 ORDER BY 1")
        statuses = dict(cur.fetchall())
        cur.execute("SELECT count(*) FILTER (WHERE sender_id = 1), count(*) FROM deliveries")
        sender_1, total = cur.fetchone()
        cur.execute("SELECT count(*) FROM delivery_events")
        (events,) = cur.fetchone()
        cur.execute("SELECT pg_total_relation_size('deliveries'),"
                    "       pg_total_relation_size('delivery_events')")
        deliveries_bytes, events_bytes = cur.fetchone()
    return {"deliveries": total, "sender_1": sender_1, "statuses": statuses, "events": events,
            "deliveries_mb": round(deliveries_bytes / 2**20),
            "events_mb": round(events_bytes / 2**20)}


def code_state() -> dict[str, Any]:
    """The commit measured, and the files changed since (the bench runs the working tree)."""
    def git(*argv: str) -> str:
        try:
            out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed_files": changed}


def run_sizes(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Loads each size in turn into a scratch database and measures it."""
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    with database() as (url, where):
        log(f"database: {where}")
        os.environ["DATABASE_URL"] = url
        devdb.apply_sql(url, devdb.SCHEME)
        from chalicelib import credentials

        db = connect(url)
        dataset.load_people(db, credentials.hash_password(dataset.LOGIN_PASSWORD))
        result["machine"] = machine(db, where)

        import app as app_module

        quiet_access_log()
        rig = Rig(app=app_module.app, url=url, floor=connect(url), direct=connect(url),
                  context=LambdaContext())
        fixed: dict[str, Any] | None = None
        for size in sizes:
            log(f"loading {size:,} deliveries ...")
            t0 = time.perf_counter()
            grown = dataset.grow_deliveries(db, size)
            load_seconds = time.perf_counter() - t0
            if fixed is None:
                fixed = prepare_fixed(db)
            log(f"{size:,} deliveries loaded in {load_seconds:.1f} s: {grown}")
            data = data_shape(db)
            entry = one_size(db, rig, fixed, args, result)
            result["sizes"][str(size)] = {"load_seconds": round(load_seconds, 1),
                                          "load": grown, "data": data, **entry}
        if rig.errors:
            result["unexpected_responses"] = rig.errors[:20]
        for conn_ in (db, rig.floor, rig.direct):
            conn_.close()
        from chalicelib import conn as app_conn

        app_conn.drop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
        "code": code_state(),
        "previous": published_run(args.compare) if args.compare else None,
        "sizes": {},
    }
    outer_url = os.environ.get("DATABASE_URL")
    run_sizes(args, result)
    # run_sizes pointed DATABASE_URL at its scratch database, gone now.
    if outer_url is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = outer_url
    if args.writer_rounds > 0:
        log("concurrent writers ...")
        with database() as (url, _):
            devdb.apply_sql(url, devdb.SCHEME)
            result["writers"] = writers.measure(url, [1, 2, 4, 8, 16], args.writer_rounds, 1.0)
    if args.cold_runs > 0:
        log("cold start ...")
        result["cold_start"] = cold_start(args.cold_runs)
    if not args.no_package:
        log("chalice package ...")
        result["package"] = package_size()
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result["targets"] = targets(result)
    text = markdown(result)
    if "writers" in result:
        text += ("\n\n## Concurrent writers (bench/writers.py)\n\n"
                 + writers.markdown(result["writers"]) + "\n")
    result["markdown"] = text

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "latest.json").write_text(out.read_text())
    (RESULTS / "latest.md").write_text(text)
    if args.only:  # the published chart shows a whole run
        log("chart: not drawn for a run of some endpoints (--only)")
    else:
        log(f"chart: {chart.write(result)}")
    print(text)
    log(f"figures: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
