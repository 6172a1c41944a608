"""Writes that scale out: no lock that every write takes, no deadlock from the
functions' own lock order, and a feed that still never skips, duplicates or
reorders an event while transactions commit in any order.

The stored functions are called directly, from threads with connections of
their own, so that transactions can hold several writes, sleep before their
commit and roll back."""

import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg2
import pytest

from chalicelib import credentials

pytestmark = pytest.mark.slow

CREATE = ("SELECT * FROM create_delivery(%s, 1, 2, 3, 4.5, NULL, NULL, NULL, NULL, NULL,"
          " NULL)")
ASSIGN = "SELECT * FROM assign_delivery(%s, %s, %s, NULL, NULL)"
ACTION = "SELECT * FROM delivery_action(%s, %s, %s, NULL, NULL, NULL, NULL, NULL, NULL)"
FEED = "SELECT body::text FROM event_feed(%s, %s, %s, NULL)"


def _digest(who: dict) -> bytes:
    return credentials.token_digest(who["token"])


def _new_id(cur) -> int:
    """The id of the delivery a write function answered (psycopg2 reads its
    json column as a dict)."""
    return cur.fetchone()[1]["id"]


class Writers:
    """Threads that run `work(cur, rng, n)` in transactions until told to stop,
    counting commits, rollbacks and the SQLSTATEs of refusals."""

    def __init__(self, url: str, count: int, work, seconds: float):
        self.url, self.work, self.seconds = url, work, seconds
        self.codes: Counter[str] = Counter()
        self.commits = self.rollbacks = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.pids: list[int] = []
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(count)]

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        db = psycopg2.connect(self.url)
        try:
            with db.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                self.pids.append(cur.fetchone()[0])
            db.commit()
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                try:
                    with db.cursor() as cur:
                        keep = self.work(cur, rng, n)
                    if keep:
                        db.commit()
                    else:
                        db.rollback()
                    with self.lock:
                        self.commits += bool(keep)
                        self.rollbacks += not keep
                except psycopg2.Error as exc:
                    db.rollback()
                    with self.lock:
                        self.codes[exc.pgcode or "?"] += 1
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            db.close()

    def run(self, during=None) -> None:
        for thread in self.threads:
            thread.start()
        if during is not None:
            during(self)
        for thread in self.threads:
            thread.join()
        assert not self.errors, self.errors


def _waits(url: str, writers: Writers) -> int:
    """Samples pg_locks while the writers run: how many times one of them was
    seen waiting for a lock."""
    seen = 0
    db = psycopg2.connect(url)
    db.autocommit = True
    try:
        with db.cursor() as cur:
            while any(thread.is_alive() for thread in writers.threads):
                # Waits on another writer (a row, a transaction, an advisory
                # lock); not the relation-extension lock of a growing table.
                cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = ANY (%s)"
                            " AND locktype IN ('transactionid', 'tuple', 'advisory')",
                            (writers.pids,))
                seen += cur.fetchone()[0]
                time.sleep(0.005)
    finally:
        db.close()
    return seen


def test_writers_of_different_senders_never_wait_on_each_other(api, database_url):
    """Eight writers, each with its own sender and courier, run transactions of
    several writes (create, assign, pick up, deliver, another create, cancel):
    none waits for a lock another holds (with the former lock that every
    event took, they queued on it), and none deadlocks."""
    cast = [(api.new_sender(), api.new_courier()) for _ in range(8)]

    def work(cur, rng: random.Random, n: int) -> bool:
        sender, courier = cast[n]
        s, c = _digest(sender), _digest(courier)
        cur.execute(CREATE, (s,))
        did = _new_id(cur)
        cur.execute(ASSIGN, (s, did, courier["courier_id"]))
        cur.execute(ACTION, (c, did, "pickup"))
        cur.execute(ACTION, (c, did, "deliver"))
        cur.execute(CREATE, (s,))
        cur.execute(ACTION, (s, _new_id(cur), "cancel"))
        # The next round may assign again today: the slot's day moves back.
        cur.execute("UPDATE deliveries SET assigned_at = assigned_at - interval '2 days'"
                    " WHERE id = %s", (did,))
        time.sleep(rng.random() * 0.004)
        return True

    writers = Writers(database_url, 8, work, seconds=4)
    waited: list[int] = []
    writers.run(during=lambda w: waited.append(_waits(database_url, w)))
    assert writers.commits > 40, writers.commits
    assert writers.codes == Counter(), writers.codes  # no 40P01, no refusal
    assert waited == [0], f"writers of different senders waited for a lock {waited[0]} times"


def test_several_writes_a_transaction_touching_shared_deliveries_never_deadlock(
        api, database_url):
    """Each transaction writes its own delivery and one delivery of a pool the
    writers share, in either order, and sometimes assigns to a shared courier:
    they wait on the shared rows (as they must) but no cycle forms, since
    every function takes its locks in the documented order and none takes a
    lock that every write takes. The former lock formed one: a transaction
    held it from its first event while waiting for a shared delivery's row,
    which another held while waiting for the lock."""
    owner = api.new_sender()
    couriers = [api.new_courier() for _ in range(3)]
    s = _digest(owner)
    pool = [api.new_delivery(owner["token"])["id"] for _ in range(4)]

    def work(cur, rng: random.Random, n: int) -> bool:
        shared = rng.choice(pool)
        steps = [lambda: cur.execute(CREATE, (s,)),
                 lambda: cur.execute(ASSIGN, (s, shared, rng.choice(couriers)["courier_id"]))
                 if rng.random() < 0.5 else cur.execute(ACTION, (s, shared, "unassign"))]
        rng.shuffle(steps)
        for step in steps:
            step()
            time.sleep(rng.random() * 0.003)
        cur.execute("UPDATE deliveries SET assigned_at = assigned_at - interval '2 days',"
                    " assignments = 0 WHERE id = %s", (shared,))
        return True

    writers = Writers(database_url, 8, work, seconds=4)
    writers.run()
    assert writers.commits > 40, (writers.commits, writers.codes)
    assert writers.codes["40P01"] == 0, writers.codes
    # The refusals there are: unassigning a delivery that is not assigned (409).
    assert set(writers.codes) <= {"DL409"}, writers.codes


def _feed_order(db, sender_id: int, start: int) -> list[tuple[int, int]]:
    """(event id, delivery id) of the sender's committed events after `start`,
    in feed order."""
    with db.cursor() as cur:
        cur.execute("SELECT id, delivery_id FROM delivery_events WHERE sender_id = %s"
                    " AND id > %s ORDER BY feed_key, id", (sender_id, start))
        return cur.fetchall()


def _check(seen: list[tuple[int, int]], committed: list[tuple[int, int]]) -> dict[str, int]:
    """What a follower got wrong: events it skipped, saw twice, or saw out of
    their delivery's order (a delivery's events happen in id order)."""
    counts = Counter(event for event, _ in seen)
    last_of_delivery: dict[int, int] = {}
    reordered = 0
    for event, delivery in seen:
        if event < last_of_delivery.get(delivery, 0):
            reordered += 1
        last_of_delivery[delivery] = max(event, last_of_delivery.get(delivery, 0))
    return {"skipped": len({e for e, _ in committed} - set(counts)),
            "duplicated": sum(n - 1 for n in counts.values()),
            "reordered": reordered}


def test_a_live_follower_sees_every_committed_event_once_in_order_under_a_mixed_load(
        api, database_url):
    """Eight writers create, assign, reassign, unassign and cancel deliveries of
    one sender, shared among them, several writes a transaction with random
    delays between them and before the commit; one transaction in ten rolls
    back. One follower reads the feed as the API does
    (event_feed) as fast as it can; a second follows ids alone (what a feed
    without the former lock and without the horizon would answer). At the end
    the first has seen exactly the committed events, each once, each
    delivery's in order; the second has skipped some (so the check can fail)."""
    owner = api.new_sender()
    couriers = [api.new_courier() for _ in range(6)]
    s = _digest(owner)
    pool: list[int] = []
    pool_lock = threading.Lock()
    db = psycopg2.connect(database_url)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM delivery_events")
        start = cur.fetchone()[0]

    def work(cur, rng: random.Random, n: int) -> bool:
        # Creates, and one write on a shared delivery (its row and a shared
        # courier's are the only shared locks a transaction takes: two such
        # writes in one transaction could wait on each other in a cycle of
        # the client's own making).
        keep = rng.random() >= 0.1
        made: list[int] = []
        steps = ["create"] * rng.randint(0, 2) + ["shared"]
        rng.shuffle(steps)
        for step in steps:
            with pool_lock:
                did = rng.choice(pool) if pool else None
            if step == "create" or did is None:
                cur.execute(CREATE, (s,))
                made.append(_new_id(cur))
            elif (move := rng.random()) < 0.5:
                cur.execute(ASSIGN, (s, did, rng.choice(couriers)["courier_id"]))
                cur.execute("UPDATE deliveries SET assigned_at = assigned_at - interval"
                            " '2 days', assignments = 0 WHERE id = %s", (did,))
            elif move < 0.8:
                cur.execute(ACTION, (s, did, "unassign"))
            else:
                cur.execute(ACTION, (s, did, "cancel"))
                with pool_lock:
                    if did in pool and keep:
                        pool.remove(did)
            time.sleep(rng.random() * 0.01)
        if keep:
            with pool_lock:
                pool.extend(made)  # committed next (a rolled back one never was)
        return keep

    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def follow() -> None:
        import json

        reader = psycopg2.connect(database_url)
        reader.autocommit = True
        after = start
        try:
            with reader.cursor() as cur:
                while True:
                    done = stop.is_set()
                    cur.execute(FEED, (s, after, 20))
                    page = json.loads(cur.fetchone()[0])
                    seen.extend((e["id"], e["delivery_id"]) for e in page["items"])
                    after = page["next_after"]
                    if done and not page["items"]:
                        return
        finally:
            reader.close()

    follower = threading.Thread(target=follow)
    follower.start()
    writers = Writers(database_url, 8, work, seconds=6)
    writers.run()
    stop.set()
    follower.join(60)
    assert not follower.is_alive()
    committed = _feed_order(db, owner["sender_id"], start)
    db.close()
    assert writers.commits > 50 and writers.rollbacks > 3, (writers.commits, writers.rollbacks)
    assert writers.codes["40P01"] == 0, writers.codes
    assert len(committed) > 100
    assert _check(seen, committed) == {"skipped": 0, "duplicated": 0, "reordered": 0}
    assert seen == committed  # and in feed order


def test_a_late_commit_is_skipped_by_ids_alone_but_not_by_the_feed(api, database_url):
    """The pitfall the feed key and horizon exist for, made to happen: an
    event commits after a later id was read. A follower of ids alone (the
    feed without the former lock and without the horizon) passes over it for
    good; the feed holds the later one back until the earlier commits, then
    answers both, in order. The same check as the live test's (_check)."""
    import json

    owner = api.new_sender()
    s = _digest(owner)
    api.new_delivery(owner["token"])
    db = psycopg2.connect(database_url)
    db.autocommit = True
    late = psycopg2.connect(database_url)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT max(id) FROM delivery_events WHERE sender_id = %s",
                        (owner["sender_id"],))
            start = cur.fetchone()[0]

            def by_ids(after: int) -> list[tuple[int, int]]:
                cur.execute("SELECT id, delivery_id FROM delivery_events WHERE sender_id = %s"
                            " AND id > %s ORDER BY id", (owner["sender_id"], after))
                return cur.fetchall()

            def by_feed(after: int) -> list[tuple[int, int]]:
                cur.execute(FEED, (s, after, 100))
                return [(e["id"], e["delivery_id"])
                        for e in json.loads(cur.fetchone()[0])["items"]]

            with late.cursor() as open_cur:  # takes the smaller id, commits last
                open_cur.execute(CREATE, (s,))
            api.new_delivery(owner["token"])  # a larger id, committed first
            naive, feed = by_ids(start), by_feed(start)
            assert len(naive) == 1 and feed == []  # the feed holds it back
            late.commit()
            naive += by_ids(naive[-1][0])
            feed += by_feed(start)
            committed = _feed_order(db, owner["sender_id"], start)
        assert len(committed) == 2 and committed[0][0] < committed[1][0]
        assert _check(naive, committed)["skipped"] == 1
        assert _check(feed, committed) == {"skipped": 0, "duplicated": 0, "reordered": 0}
        assert feed == committed
    finally:
        late.close()
        db.close()


def test_a_transaction_left_open_holds_the_feed_back_and_never_breaks_it(api, database_url):
    """An event committed after an older transaction began is held back while
    that transaction runs (it could still commit an event with a smaller key),
    and comes once it ends."""
    owner = api.new_sender()
    s = _digest(owner)
    start = _feed_position(api, owner)
    blocker = psycopg2.connect(database_url)
    try:
        with blocker.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()")  # holds a transaction id, open
        api.new_delivery(owner["token"])
        page = _feed_page(database_url, s, start)
        assert page["items"] == [] and page["next_after"] == start
        blocker.rollback()
        page = _feed_page(database_url, s, start)
        assert [e["type"] for e in page["items"]] == ["delivery.created"]
    finally:
        blocker.close()


def _feed_page(url: str, digest: bytes, after: int) -> dict[str, Any]:
    import json

    with psycopg2.connect(url) as db, db.cursor() as cur:
        cur.execute(FEED, (digest, after, 100))
        return json.loads(cur.fetchone()[0])


def _feed_position(api, who: dict) -> int:
    after = 0
    while True:
        page = api.get(f"/events?limit=100&after={after}", token=who["token"]).json
        if not page["items"]:
            return after
        after = page["next_after"]
