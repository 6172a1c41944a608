"""`make bench-webhooks`: what idempotency keys and webhooks cost.

1. A keyed create against an unkeyed one: POST /deliveries through the Lambda
   entry point, in alternating slices, with CPU per request of this process
   and of the database backend (goal: the keyed one within 20 %).
2. The webhook sender as `make run` runs it (the local server and
   tools.webhook_sender beside it) delivering to a local receiver: the delay
   from the write's answer to receipt (p50, p99) at a steady trickle of writes,
   and how many events per second it delivers from a backlog.

    .venv/bin/python -m bench.webhooks [--slices 10] [--per-slice 200] [--backlog 2000]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import requests

from bench.database import database
from bench.events import LambdaContext, rest_event
from bench.measure import percentile, two_in_slices
from tools import devdb, local_process
from tools.black_hole import BlackHole

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[bench-webhooks] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- keyed writes


def keyed_against_unkeyed(slices: int, per_slice: int) -> dict:
    import app

    login = app.app(rest_event("POST", "/auth", body={"username": "sender", "password": "pass"}),
                    LambdaContext())
    token = json.loads(login["body"])["token"]
    body = {"size": "10x20x30", "cost": "12.50", "description": "bench"}
    plain = rest_event("POST", "/deliveries", body=body, token=token)
    serial = iter(range(1, 2**62))

    def keyed() -> dict:
        event = rest_event("POST", "/deliveries", body=body, token=token)
        key = f"bench-{next(serial)}"
        event["headers"]["Idempotency-Key"] = key
        event["multiValueHeaders"]["Idempotency-Key"] = [key]
        return event

    return two_in_slices(app, ("unkeyed", "keyed"), lambda kind: [
        keyed() if kind == "keyed" else plain for _ in range(per_slice)], slices, 201)


# ---------------------------------------------------------------- the sender


class Receipts:
    """A local receiver answering 204, noting when each delivery's event came."""

    def __init__(self):
        self.at: dict[int, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        receipts = self

        class Handler(BaseHTTPRequestHandler):
            # The answer's lines go out at once, as a production server's do
            # (not held back for the sender's delayed ACK).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                delivery = json.loads(body)["data"]["delivery_id"]
                with receipts.lock:
                    receipts.at.setdefault(delivery, now)
                    receipts.count += 1
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _start(module: str, args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _delays(session: requests.Session, base: str, auth: dict, receipts: Receipts,
            trickle: int) -> list[float]:
    """Seconds from each write's answer to its event's receipt, for `trickle`
    creates at about 20 a second."""
    answered: dict[int, float] = {}
    for _ in range(trickle):
        made = session.post(base + "/deliveries", json={"size": "1x1x1", "cost": 1},
                            headers=auth, timeout=10)
        answered[made.json()["id"]] = time.perf_counter()
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    while len(set(answered) & set(receipts.at)) < trickle and time.monotonic() < deadline:
        time.sleep(0.1)
    return sorted(receipts.at[d] - t for d, t in answered.items() if d in receipts.at)


def _black_hole_backlog(session: requests.Session, base: str, hole: BlackHole,
                        writes: int) -> int:
    """Another user with 10 subscriptions to a black hole and `writes` creates:
    a backlog of 10 rows a write. Returns the rows made."""
    name = f"hole{int(time.time() * 1000) % 10**9}"
    session.post(base + "/signup", json={"username": name, "password": "black hole",
                                         "role": "sender", "company_name": name}, timeout=10)
    token = session.post(base + "/auth", json={"username": name, "password": "black hole"},
                         timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(10):
        reply = session.post(base + "/webhooks", json={"url": hole.url, "events": ["*"]},
                             headers=auth, timeout=10)
        assert reply.status_code == 201, reply.text
    for _ in range(writes):
        session.post(base + "/deliveries", json={"size": "1x1x1", "cost": 1}, headers=auth,
                     timeout=10)
    return 10 * writes


def sender_figures(url: str, trickle: int, backlog: int) -> dict:
    env = {**os.environ, "DATABASE_URL": url, "WEBHOOK_ALLOW_HTTP": "true",
           "WEBHOOK_SIGNING_KEY": os.environ.get("WEBHOOK_SIGNING_KEY") or "b" * 40,
           "AUTH_RATE_PER_MINUTE": "0"}
    server, base = local_process.start_local_server(env)
    sender = _start("tools.webhook_sender", [], env)
    receipts, hole = Receipts(), BlackHole()
    session = requests.Session()
    try:
        token = session.post(base + "/auth", json={"username": "sender", "password": "pass"},
                             timeout=10).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        reply = session.post(base + "/webhooks", json={"url": receipts.url,
                                                       "events": ["delivery.created"]},
                             headers=auth, timeout=10)
        assert reply.status_code == 201, reply.text
        log(f"delay: {trickle} writes at about 20 a second")
        delays = _delays(session, base, auth, receipts, trickle)
        rows = _black_hole_backlog(session, base, hole, 100)
        log(f"delay beside a black hole: another user's 10 subscriptions to a receiver "
            f"that never answers, {rows} rows due; {trickle} writes again")
        beside = _delays(session, base, auth, receipts, trickle)
        log(f"throughput: a backlog of {backlog} events, sender stopped meanwhile")
        local_process.stop_process(sender, 15)
        hole.close()
        with psycopg2.connect(url) as db, db.cursor() as cur:  # the black hole's rows: out
            cur.execute("UPDATE webhook_deliveries SET state = 'given_up' WHERE subscription_id"
                        " IN (SELECT id FROM webhook_subscriptions WHERE url = %s)", (hole.url,))
        for _ in range(backlog):
            session.post(base + "/deliveries", json={"size": "1x1x1", "cost": 1},
                         headers=auth, timeout=10)
        before = receipts.count
        started = time.perf_counter()
        sender = _start("tools.webhook_sender", [], env)
        deadline = time.monotonic() + 120
        while receipts.count - before < backlog and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.perf_counter() - started
        return {"delay_p50_ms": percentile(delays, 0.5) * 1000,
                "delay_p99_ms": percentile(delays, 0.99) * 1000,
                "delay_max_ms": delays[-1] * 1000, "received": len(delays),
                "beside_p50_ms": percentile(beside, 0.5) * 1000,
                "beside_p99_ms": percentile(beside, 0.99) * 1000,
                "beside_max_ms": beside[-1] * 1000, "beside_received": len(beside),
                "hole_rows": rows,
                "trickle": trickle, "backlog": backlog,
                "delivered": receipts.count - before,
                "events_per_s": (receipts.count - before) / took, "seconds": took}
    finally:
        local_process.stop_process(sender, 15)
        local_process.stop_process(server)
        receipts.close()
        hole.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--per-slice", type=int, default=200)
    parser.add_argument("--trickle", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args(argv)
    os.environ.setdefault("WEBHOOK_SIGNING_KEY", "bench-" + "k" * 40)
    import logging

    logging.getLogger("delivery_api.access").setLevel(logging.WARNING)
    with database() as (url, where):
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        os.environ["DATABASE_URL"] = url
        log(f"keyed against unkeyed creates: {args.slices} alternating slices of "
            f"{args.per_slice} ({where})")
        keyed = keyed_against_unkeyed(args.slices, args.per_slice)
        from chalicelib import conn

        conn.drop()
        sent = sender_figures(url, args.trickle, args.backlog)
    print("| create | req/s | Python µs/req | Postgres µs/req |\n|---|---|---|---|")
    for kind in ("unkeyed", "keyed"):
        k = keyed[kind]
        print(f"| {kind} | {k['req_per_s']:.0f} | {k['python_us']:.0f} | {k['postgres_us']:.0f} |")
    print(f"\nKeyed over unkeyed, CPU per request (Python + Postgres): "
          f"{keyed['cpu_ratio']:.2f}x (goal: at most 1.20x)\n")
    print(f"Webhook sender under make run's arrangement: delay from the write's answer to "
          f"receipt p50 {sent['delay_p50_ms']:.0f} ms, p99 {sent['delay_p99_ms']:.0f} ms, "
          f"max {sent['delay_max_ms']:.0f} ms ({sent['received']} of {sent['trickle']} "
          f"writes at ~20/s); a backlog of {sent['backlog']} delivered at "
          f"{sent['events_per_s']:.0f} events/s ({sent['delivered']} in "
          f"{sent['seconds']:.1f} s).")
    print(f"\nFairness: the same writes while another user's 10 subscriptions to a receiver "
          f"that never answers have {sent['hole_rows']} rows due: p50 "
          f"{sent['beside_p50_ms']:.0f} ms, p99 {sent['beside_p99_ms']:.0f} ms, max "
          f"{sent['beside_max_ms']:.0f} ms ({sent['beside_received']} of {sent['trickle']}); "
          f"p99 {(sent['beside_p99_ms'] - sent['delay_p99_ms']) / 1000:+.2f} s against idle "
          f"(goal: within 2 s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
