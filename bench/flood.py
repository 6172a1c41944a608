"""`python -m bench.flood`: the login flood of the "hostile clients" issue.

The API as `make run` serves it (the embedded PostgreSQL in a throwaway data
directory, scheme.sql and demo.sql, tools/local_server.py), then:

1. GET / latency while nothing else runs (a few hundred sequential requests);
2. a flood: 40 threads (in a process of their own) POST /auth with usernames
   that do not exist, for about 10 s, all from 127.0.0.1 (as the local server
   reports every client), while GET / keeps being timed from this process.

Printed (Markdown): GET / p50/p99 idle and during the flood, how many logins
got 401 (ran scrypt) and how many 429 (refused before any hashing by the
per-address limit, AUTH_RATE_PER_MINUTE, default 20), the latencies of each,
and the CPU per request of the server process (and of PostgreSQL) during the
flood, from /proc/<pid>/stat. Everything started is stopped and its folders
removed afterwards.

    .venv/bin/python -m bench.flood [--threads 40] [--seconds 10] [--idle-requests 300]
"""

import argparse
import contextlib
import datetime as dt
import http.client
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.measure import percentile
from tools import devdb, local_process

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench-flood] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (all its threads), plus, with children, what its
    reaped children used (cutime + cstime): for the postmaster, the backends
    that have exited."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its exited
    children, and its live ones (backends, checkpointer, walwriter, ...)."""
    total = cpu_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(entry.name))
    return total


@contextlib.contextmanager
def api_server(auth_rate: str) -> Iterator[tuple[str, int, int, int, str]]:
    """(host, port, server pid, postmaster pid, database url) of `make run`'s stack on
    a throwaway data directory; stopped and removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="delivery-flood-"))
    server = process = None
    try:
        server = devdb.start_embedded(tmp / "pgdata", keep=False)
        url = server.get_uri()
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        postmaster = int((tmp / "pgdata" / "postmaster.pid").read_text().split()[0])
        env = {**os.environ, "DATABASE_URL": url, "AUTH_RATE_PER_MINUTE": auth_rate}
        process, base = local_process.start_local_server(env)
        port = int(base.rsplit(":", 1)[1])
        yield "127.0.0.1", port, process.pid, postmaster, url
    finally:
        if process is not None:
            local_process.stop_process(process)
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- clients


class Client:
    """One keep-alive HTTP connection; reconnects when the server closed it.

    quick_ack: acknowledge each answer at once (TCP_QUICKACK before reading it). The
    local server (Python's http.server under Chalice's handler) sends the headers and
    the body of an answer in two writes; were Nagle's algorithm on (the local server
    sets TCP_NODELAY), the body would wait for the client's ACK of the headers, which
    a client that delays its ACKs, as Linux does on an established keep-alive
    connection, sends about 40 ms later. The prober acks at once so that it times the
    server; the delayed-ACK row times a client that does not."""

    def __init__(self, host: str, port: int, quick_ack: bool = False):
        self.host, self.port, self.quick_ack = host, port, quick_ack
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                if self.quick_ack and self.conn.sock is not None:
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def time_get(client: Client, count: int | None = None,
             stop: threading.Event | None = None) -> list[float]:
    """Sequential GET / latencies (seconds): `count` of them, or until `stop`."""
    latencies = []
    while (count is None or len(latencies) < count) and not (stop and stop.is_set()):
        t0 = time.perf_counter()
        status, _ = client.request("GET", "/")
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET / answered {status}")
    return latencies


def flood(host: str, port: int, threads: int, seconds: float, start_at: float,
          out: Any) -> None:
    """Child process: `threads` threads POST /auth with unknown usernames from
    start_at (time.time()) for `seconds`; sends [(status, seconds), ...] to out."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = Client(host, port)
        mine = []
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = start_at + seconds
        i = 0
        while time.time() < deadline:
            i += 1
            body = json.dumps({"username": f"nobody-{n}-{i}-{secrets.token_hex(3)}",
                               "password": "not the password"}).encode()
            t0 = time.perf_counter()
            try:
                status, _ = client.request("POST", "/auth", body)
            except OSError:
                status = 0
            mine.append((status, time.perf_counter() - t0))
        client.close()
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    out.send(results)
    out.close()


# ---------------------------------------------------------------- the measurement


def ms(values: list[float], q: float) -> float:
    return percentile(sorted(values), q) * 1e3


def measure(threads: int, seconds: float, idle_requests: int, auth_rate: str) -> dict[str, Any]:
    with api_server(auth_rate) as (host, port, server_pid, postmaster, url):
        plain = Client(host, port)
        time_get(plain, 20)  # warm
        delayed = time_get(plain, min(idle_requests, 100))
        plain.close()
        prober = Client(host, port, quick_ack=True)
        time_get(prober, 50)  # warm
        idle = time_get(prober, idle_requests)
        log(f"idle GET /: p50 {ms(idle, 0.5):.2f} ms, p99 {ms(idle, 0.99):.2f} ms "
            f"(without quick ACKs: p50 {ms(delayed, 0.5):.2f} ms)")

        receive, send = multiprocessing.Pipe(duplex=False)
        start_at = time.time() + 1.0  # the flood's threads start together
        child = multiprocessing.get_context("fork").Process(
            target=flood, args=(host, port, threads, seconds, start_at, send))
        child.start()
        while time.time() < start_at:
            time.sleep(0.001)
        sessions0 = sessions(url)
        cpu0, pg0, t0 = cpu_seconds(server_pid), postgres_cpu(postmaster), time.perf_counter()
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        during = time_get(prober, stop=stop)
        cpu1, pg1, t1 = cpu_seconds(server_pid), postgres_cpu(postmaster), time.perf_counter()
        logins = receive.recv()
        child.join()
        opened = sessions(url) - sessions0 - 1  # less this count's own
        prober.close()
    window = t1 - t0
    statuses: dict[int, list[float]] = {}
    for status, took in logins:
        statuses.setdefault(status, []).append(took)
    served = len(logins) + len(during)
    result = {
        "started": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        .replace("+00:00", "Z"),
        "threads": threads, "seconds": round(window, 2), "auth_rate_per_minute": auth_rate,
        "idle": {"requests": len(idle), "p50_ms": ms(idle, 0.5), "p99_ms": ms(idle, 0.99)},
        "idle_delayed_ack": {"requests": len(delayed), "p50_ms": ms(delayed, 0.5),
                             "p99_ms": ms(delayed, 0.99)},
        "during": {"requests": len(during), "p50_ms": ms(during, 0.5),
                   "p99_ms": ms(during, 0.99)},
        "logins": {str(k): {"count": len(v), "p50_ms": ms(v, 0.5), "p99_ms": ms(v, 0.99)}
                   for k, v in sorted(statuses.items())},
        "server_cpu_s": cpu1 - cpu0,
        "postgres_cpu_s": pg1 - pg0,
        "requests_in_window": served,
        "database_sessions_opened": opened,
        "server_cpu_us_per_request": (cpu1 - cpu0) / served * 1e6 if served else None,
        "postgres_cpu_us_per_request": (pg1 - pg0) / served * 1e6 if served else None,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    return result


def sessions(url: str) -> int:
    """Sessions opened on the server so far (pg_stat_database.sessions), this one included."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")
            cur.execute("SELECT sum(sessions) FROM pg_stat_database")
            return int(cur.fetchone()[0] or 0)
    finally:
        conn.close()


def markdown(r: dict[str, Any]) -> str:
    idle, during, logins = r["idle"], r["during"], r["logins"]
    delayed = r["idle_delayed_ack"]

    def count(status: str) -> int:
        return logins.get(status, {}).get("count", 0)

    def lat(status: str, q: str) -> str:
        v = logins.get(status, {}).get(q)
        return "-" if v is None else f"{v:.1f}"

    other = {k: v["count"] for k, v in logins.items() if k not in ("401", "429")}
    total = sum(v["count"] for v in logins.values())
    lines = [
        f"Run {r['started']}: `python -m bench.flood`, {r['threads']} threads POSTing /auth "
        f"with unknown usernames for {r['seconds']:.1f} s from 127.0.0.1 "
        f"(AUTH_RATE_PER_MINUTE={r['auth_rate_per_minute']}) against the local server "
        f"(`make run`'s), load average {r['load']} at the end.",
        "",
        "| | requests | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| GET /, idle | {idle['requests']:,} | {idle['p50_ms']:.2f} | {idle['p99_ms']:.2f} |",
        f"| GET /, during the flood | {during['requests']:,} | {during['p50_ms']:.2f} | "
        f"{during['p99_ms']:.2f} |",
        f"| during / idle | | {during['p50_ms'] / idle['p50_ms']:.1f}x | "
        f"{during['p99_ms'] / idle['p99_ms']:.1f}x |",
        f"| GET /, idle, client with delayed ACKs | {delayed['requests']:,} | "
        f"{delayed['p50_ms']:.2f} | {delayed['p99_ms']:.2f} |",
        f"| POST /auth, 401 (scrypt ran) | {count('401'):,} | {lat('401', 'p50_ms')} | "
        f"{lat('401', 'p99_ms')} |",
        f"| POST /auth, 429 (refused before hashing) | {count('429'):,} | "
        f"{lat('429', 'p50_ms')} | {lat('429', 'p99_ms')} |",
    ]
    if other:
        lines.append(f"| POST /auth, other answers | {sum(other.values()):,} "
                     f"({', '.join(f'{k}: {v}' for k, v in other.items())}) | | |")
    lines += [
        "",
        f"{total:,} logins and {during['requests']:,} GET / in {r['seconds']:.1f} s. CPU "
        f"during the flood: the server process {r['server_cpu_s']:.2f} s "
        f"({r['server_cpu_us_per_request']:,.0f} µs per request served), PostgreSQL "
        f"{r['postgres_cpu_s']:.2f} s ({r['postgres_cpu_us_per_request']:,.0f} µs per "
        f"request; the app opened {r['database_sessions_opened']:,} database sessions "
        "meanwhile), from /proc/<pid>/stat. GET / is timed by a client that acknowledges "
        "each answer at once (TCP_QUICKACK); the delayed-ACK row by one that delays its "
        "ACKs, as Linux does on a keep-alive connection (about 40 ms per answer if the "
        "server held a body back for the ACK of its headers).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle-requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    auth_rate = os.environ.get("AUTH_RATE_PER_MINUTE", "20")
    result = measure(args.threads, args.seconds, args.idle_requests, auth_rate)
    text = markdown(result)
    result["markdown"] = text
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
