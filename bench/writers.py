"""`make bench-writers` (and a section of `make bench`): concurrent writers.

Each writer is a thread with a connection of its own and a sender of its own
with two couriers, running a dispatcher's write mix through the stored
functions (the statement each API request sends): create, assign, reassign,
the courier declines (unassign), assign again, cancel. Three designs of
record_event, in alternating slices on the same data:

- after: the schema as it is (a feed key per event, no lock);
- lock: the former design, a transaction advisory lock that every event took
  until its commit (so that ids followed commit order);
- nolock: the former design with that lock line removed (a feed that could
  skip events: the ceiling of these cores, not a design to run).

The two former ones are installed as copies of record_event in schemas of their
own, found first on their connections' search_path. Reported per design and
number of writers: writes/s, server CPU per write (the backends' schedstat),
and the 40P01 (deadlock) and 40001 (serialization) counts. Then the feed's
latency from a write's commit to its event's first appearance in event_feed,
at 1 and 8 writers.

    .venv/bin/python -m bench.writers [--rounds 4] [--seconds 1.0] [--writers 1,2,4,8,16]
"""

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

import psycopg2

from bench.database import database
from bench.measure import backend_cpu_ns, percentile
from tools import devdb

DESIGNS = ("after", "lock", "nolock")
FEED = "SELECT body::text FROM event_feed(%s, %s, 100, NULL)"


def log(message: str) -> None:
    print(f"[bench-writers] {message}", file=sys.stderr, flush=True)


def install_former_designs(url: str) -> None:
    """bench_lock.record_event and bench_nolock.record_event: today's function
    as the former design wrote it (no feed key; with and without its lock)."""
    with psycopg2.connect(url) as db, db.cursor() as cur:
        cur.execute("SELECT pg_get_functiondef('public.record_event(text, deliveries, bigint,"
                    " text, bigint, text)'::regprocedure)")
        (source,) = cur.fetchone()
        assert "feed_key_now()" in source, "record_event no longer computes a feed key"
        for schema, lock in (("bench_lock", "PERFORM pg_advisory_xact_lock(724002);\n"),
                             ("bench_nolock", "")):
            text = source.replace("FUNCTION public.record_event", f"FUNCTION {schema}.record_event")
            text = text.replace("feed_key_now()", "0")
            text = text.replace("BEGIN\n", "BEGIN\n" + lock, 1)
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cur.execute(text)


def make_cast(url: str, count: int) -> list[dict[str, Any]]:
    """`count` senders with two couriers each and a session apiece (token
    digests made here: no scrypt)."""
    cast = []
    with psycopg2.connect(url) as db, db.cursor() as cur:
        for n in range(count):
            people = {}
            for role in ("sender", "courier_a", "courier_b"):
                digest = os.urandom(32)
                name = f"bw{n}{role[-1]}{digest.hex()[:8]}"
                if role == "sender":
                    cur.execute("SELECT signup_sender(%s, 'scrypt$bench', %s)", (name, name))
                    key = "sender_id"
                else:
                    cur.execute("SELECT signup_courier(%s, 'scrypt$bench', 'Bench', 'Writer',"
                                " %s, 'van')", (name, "+1" + str(int.from_bytes(digest[:5]))[:11]
                                                .zfill(11)))
                    key = "courier_id"
                made = cur.fetchone()[0]
                cur.execute("INSERT INTO sessions (token_sha256, user_id, expires_at)"
                            " VALUES (%s, %s, now() + interval '1 day')",
                            (digest, made["user_id"]))
                people[role] = {"digest": digest, "id": made[key]}
            cast.append(people)
    return cast


class Writer:
    """One writer: a connection per design, the write mix, its counts."""

    def __init__(self, url: str, people: dict[str, Any]):
        self.people = people
        self.connections = {}
        for design in DESIGNS:
            connection = psycopg2.connect(url)
            connection.autocommit = True
            if design != "after":
                with connection.cursor() as cur:
                    cur.execute(f"SET search_path = bench_{design}, public")
            self.connections[design] = connection
        self.writes = 0
        self.codes: Counter[str] = Counter()
        self.latest: list[tuple[float, int]] = []  # (commit time, newest event id)

    def cpu_ns(self, design: str) -> int:
        return backend_cpu_ns(self.connections[design]) or 0

    def one_mix(self, design: str, note_latest: bool = False) -> None:
        s, a, b = (self.people[k] for k in ("sender", "courier_a", "courier_b"))
        cur = self.connections[design].cursor()
        try:
            cur.execute("SELECT body::text FROM create_delivery(%s, 1, 2, 3, 4.5, NULL, NULL,"
                        " NULL, NULL, NULL, NULL)", (s["digest"],))
            did = json.loads(cur.fetchone()[0])["id"]
            steps = (("SELECT 1 FROM assign_delivery(%s, %s, %s, NULL, NULL)",
                      (s["digest"], did, a["id"])),
                     ("SELECT 1 FROM assign_delivery(%s, %s, %s, NULL, NULL)",
                      (s["digest"], did, b["id"])),
                     ("SELECT 1 FROM delivery_action(%s, %s, 'unassign', NULL, NULL, NULL,"
                      " NULL, NULL, NULL)", (b["digest"], did)),
                     ("SELECT 1 FROM assign_delivery(%s, %s, %s, NULL, NULL)",
                      (s["digest"], did, a["id"])),
                     ("SELECT 1 FROM delivery_action(%s, %s, 'cancel', NULL, NULL, NULL,"
                      " NULL, NULL, NULL)", (s["digest"], did)))
            self.writes += 1
            self._latest(cur, note_latest)
            for sql, args in steps:
                cur.execute(sql, args)
                self.writes += 1
                self._latest(cur, note_latest)
        except psycopg2.Error as exc:
            self.codes[exc.pgcode or "?"] += 1
        finally:
            cur.close()

    def _latest(self, cur: Any, note: bool) -> None:
        if note:
            committed = time.perf_counter()
            cur.execute("SELECT max(id) FROM delivery_events WHERE sender_id = %s",
                        (self.people["sender"]["id"],))
            self.latest.append((committed, cur.fetchone()[0]))

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def one_slice(writers: list[Writer], design: str, seconds: float) -> dict[str, Any]:
    before = [(w.writes, w.cpu_ns(design), sum(w.codes.values())) for w in writers]
    codes_before = [Counter(w.codes) for w in writers]
    stop_at = time.perf_counter() + seconds

    def loop(writer: Writer) -> None:
        while time.perf_counter() < stop_at:
            writer.one_mix(design)

    threads = [threading.Thread(target=loop, args=(w,)) for w in writers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    writes = sum(w.writes - b[0] for w, b in zip(writers, before, strict=True))
    cpu = sum(w.cpu_ns(design) - b[1] for w, b in zip(writers, before, strict=True))
    codes: Counter[str] = Counter()
    for w, old in zip(writers, codes_before, strict=True):
        codes.update(w.codes - old)
    return {"writes": writes, "seconds": elapsed, "cpu_ns": cpu, "codes": codes}


def throughput(writers: list[Writer], counts: list[int], rounds: int,
               seconds: float) -> dict[str, dict[int, dict[str, Any]]]:
    totals: dict[str, dict[int, dict[str, Any]]] = {
        d: {n: {"writes": 0, "seconds": 0.0, "cpu_ns": 0, "codes": Counter()} for n in counts}
        for d in DESIGNS}
    for round_ in range(rounds):
        order = DESIGNS if round_ % 2 == 0 else DESIGNS[::-1]
        for n in counts:
            for design in order:
                got = one_slice(writers[:n], design, seconds)
                total = totals[design][n]
                for key in ("writes", "seconds", "cpu_ns"):
                    total[key] += got[key]
                total["codes"].update(got["codes"])
        log(f"round {round_ + 1}/{rounds} done")
    return totals


def feed_latency(url: str, writers: list[Writer], seconds: float) -> dict[str, float]:
    """Writer 0 notes when each of its writes committed and the newest event
    id then; a follower reads writer 0's sender's feed (event_feed, as the API
    does) as fast as it can and notes when each id first appears. The others
    write meanwhile."""
    first = writers[0]
    first.latest = []
    seen: dict[int, float] = {}
    stop, stop_following = threading.Event(), threading.Event()
    digest = first.people["sender"]["digest"]

    def follow() -> None:
        db = psycopg2.connect(url)
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM delivery_events")
            after = cur.fetchone()[0]
            while not stop_following.is_set():
                cur.execute(FEED, (digest, after))
                page = json.loads(cur.fetchone()[0])
                now = time.perf_counter()
                for event in page["items"]:
                    seen.setdefault(event["id"], now)
                after = page["next_after"]
        db.close()

    def write(writer: Writer, note: bool) -> None:
        while not stop.is_set():
            writer.one_mix("after", note_latest=note)

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.2)
    threads = [threading.Thread(target=write, args=(w, w is first)) for w in writers]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    time.sleep(0.5)
    stop_following.set()
    follower.join()
    delays = sorted(seen[event] - committed for committed, event in first.latest
                    if event in seen)
    return {"p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000,
            "events": len(delays), "missing": sum(e not in seen for _, e in first.latest)}


def markdown(result: dict[str, Any]) -> str:
    rows = result["throughput"]
    lines = ["| writers | design | writes/s | server CPU µs/write | 40P01 | 40001 |",
             "|---:|---|---:|---:|---:|---:|"]
    for n in result["counts"]:
        for design in DESIGNS:
            r = rows[design][n]
            lines.append(f"| {n} | {design} | {r['writes'] / r['seconds']:,.0f} | "
                         f"{r['cpu_ns'] / max(1, r['writes']) / 1000:.0f} | "
                         f"{r['codes'].get('40P01', 0)} | {r['codes'].get('40001', 0)} |")
    lines.append("")
    for n in result["counts"]:
        rate = {d: rows[d][n]["writes"] / rows[d][n]["seconds"] for d in DESIGNS}
        cpu = {d: rows[d][n]["cpu_ns"] / max(1, rows[d][n]["writes"]) for d in DESIGNS}
        lines.append(f"- {n} writers: after/nolock {rate['after'] / rate['nolock']:.2f}x, "
                     f"after/lock {rate['after'] / rate['lock']:.2f}x writes/s; server CPU "
                     f"per write after/lock {cpu['after'] / cpu['lock']:.2f}x, after/nolock "
                     f"{cpu['after'] / cpu['nolock']:.2f}x")
    lines.append("")
    for n, figures in result["latency"].items():
        lines.append(f"- feed latency at {n} writer(s), commit to first seen in event_feed: "
                     f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms "
                     f"({figures['events']} events, {figures['missing']} never seen)")
    return "\n".join(lines)


def measure(url: str, counts: list[int], rounds: int, seconds: float) -> dict[str, Any]:
    install_former_designs(url)
    cast = make_cast(url, max(counts))
    writers = [Writer(url, people) for people in cast]
    try:
        log(f"throughput: {rounds} rounds of {len(DESIGNS)} designs x {counts} writers, "
            f"{seconds:g} s slices")
        result = {"counts": counts, "rounds": rounds, "seconds": seconds,
                  "throughput": throughput(writers, counts, rounds, seconds),
                  "latency": {}}
        for n in (1, 8):
            log(f"feed latency at {n} writer(s)")
            result["latency"][n] = feed_latency(url, writers[:n], 3.0)
        return result
    finally:
        for writer in writers:
            writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--writers", default="1,2,4,8,16")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.writers.split(",")]
    with database() as (url, where):
        devdb.apply_sql(url, devdb.SCHEME)
        log(f"on {where}, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        result = measure(url, counts, args.rounds, args.seconds)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
