"""The retention sweep (chalicelib/retention.py, run by the scheduled function
and by make run's sender loop): events past EVENT_RETENTION_DAYS go with their
webhook rows and attempts, idempotency keys past 24 hours and couriers'
positions past a day go, nothing else does, and each statement removes at
most one batch."""

import time

import psycopg2
import pytest

from chalicelib import retention, webhooks
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _count(db, sql: str, *args) -> int:
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def _sweep_until_clean() -> dict[str, int]:
    """Sweeps until nothing more is due (other tests' rows may be due too)."""
    total = {"contacts": 0, "events": 0, "idempotency_keys": 0, "positions": 0}
    while True:
        removed = retention.sweep()
        total = {k: total[k] + removed[k] for k in total}
        if not any(removed.values()):
            return total


def test_old_events_go_with_their_webhook_rows_and_new_ones_stay(api, db, receiver,
                                                                 monkeypatch):
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "1,1,1,1,1,1,1")
    sender = api.new_sender()
    reply = api.post("/webhooks", {"url": receiver.url, "events": ["*"]}, token=sender["token"])
    receiver.secret = reply.json["secret"]
    receiver.fail_first = 1  # every event gets a failed attempt and a good one
    old, new = api.new_delivery(sender["token"]), api.new_delivery(sender["token"])
    deadline = time.monotonic() + 30
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        webhooks.send_due()
        time.sleep(0.05)
    assert len(receiver.received) == 2
    with db.cursor() as cur:
        cur.execute("UPDATE delivery_events SET at = now() - interval '30 days 1 minute'"
                    " WHERE delivery_id = %s", (old["id"],))
    old_event = _count(db, "SELECT id FROM delivery_events WHERE delivery_id = %s", old["id"])
    assert _count(db, "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries w"
                      " ON w.id = a.delivery_id WHERE w.event_id = %s", old_event) == 2
    removed = _sweep_until_clean()
    assert removed["events"] >= 1
    assert _count(db, "SELECT count(*) FROM delivery_events WHERE delivery_id = %s",
                  old["id"]) == 0
    assert _count(db, "SELECT count(*) FROM webhook_deliveries WHERE event_id = %s",
                  old_event) == 0
    assert _count(db, "SELECT count(*) FROM webhook_attempts a WHERE NOT EXISTS"
                      " (SELECT 1 FROM webhook_deliveries w WHERE w.id = a.delivery_id)") == 0
    # The newer delivery's history, and the delivery itself, are kept.
    assert [e["type"] for e in api.get(f"/deliveries/{new['id']}/events",
                                       token=sender["token"]).json["items"]] == \
        ["delivery.created"]
    assert api.get(f"/deliveries/{old['id']}", token=sender["token"]).status == 200
    # The feed reads on from a position whose event is gone.
    page = api.get(f"/events?after={old_event}", token=sender["token"]).json
    assert [e["delivery_id"] for e in page["items"]] == [new["id"]]
    assert _sweep_until_clean() == {"contacts": 0, "events": 0, "idempotency_keys": 0,
                                    "positions": 0}


def test_events_are_removed_a_bounded_batch_at_a_time(api, database_url):
    sender = api.new_sender()
    made = [api.new_delivery(sender["token"])["id"] for _ in range(7)]
    with psycopg2.connect(database_url) as db, db.cursor() as cur:
        cur.execute("SELECT count(*) FROM delivery_events WHERE at < now() - interval '30 days'")
        already = cur.fetchone()[0]
        cur.execute("UPDATE delivery_events SET at = now() - interval '31 days'"
                    " WHERE delivery_id = ANY (%s)", (made,))
    batches = []
    with psycopg2.connect(database_url) as db, db.cursor() as cur:
        while True:
            cur.execute("SELECT purge_events(30, 3)")
            batches.append(cur.fetchone()[0])
            if batches[-1] == 0:
                break
    assert all(n <= 3 for n in batches) and sum(batches) == 7 + already


def test_expired_idempotency_keys_go_and_live_ones_replay(api, db):
    sender = api.new_sender()
    body = {"size": "1x2x3", "cost": "1.00"}
    for key in ("stale", "fresh"):
        assert api.post("/deliveries", body, token=sender["token"],
                        headers={"Idempotency-Key": key}).status == 201
    with db.cursor() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                    " WHERE user_id = %s AND key = 'stale'", (sender["user_id"],))
    assert _sweep_until_clean()["idempotency_keys"] >= 1
    assert _count(db, "SELECT count(*) FROM idempotency_keys WHERE user_id = %s",
                  sender["user_id"]) == 1
    replay = api.post("/deliveries", body, token=sender["token"],
                      headers={"Idempotency-Key": "fresh"})
    assert replay.headers.get("idempotent-replayed") == "true"


def test_a_courier_position_goes_a_day_after_it_was_sent(api, db):
    old, fresh = api.new_courier(), api.new_courier()
    for courier in (old, fresh):
        assert api.put("/me/location", body={"lat": 52.5, "lng": 13.4},
                       token=courier["token"]).status == 204
    with db.cursor() as cur:
        cur.execute("UPDATE courier_positions SET at = now() - interval '1 day 1 minute'"
                    " WHERE courier_id = %s", (old["courier_id"],))
    assert _sweep_until_clean()["positions"] >= 1
    left = {cid for (cid,) in _rows(db, "SELECT courier_id FROM courier_positions"
                                        " WHERE courier_id IN (%s, %s)",
                                    old["courier_id"], fresh["courier_id"])}
    assert left == {fresh["courier_id"]}
    # a courier whose position went sends a new one as their first
    assert api.put("/me/location", body={"lat": 1, "lng": 2}, token=old["token"]).status == 204
    assert _count(db, "SELECT count(*) FROM courier_positions WHERE courier_id = %s",
                  old["courier_id"]) == 1


def _rows(db, sql: str, *args) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()
