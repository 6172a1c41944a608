"""Idempotency-Key on the writes: the first answer replayed (marked), 422 for
another request under the same key, refusals not kept, keys per user for 24
hours, and concurrent duplicates that wait for the first and replay it."""

import json
import threading

import pytest
import requests

from tests.conftest import assert_error, unique


def post(api, path: str, body, token: str, key: str | None, raw: bytes | None = None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.request("POST", path, body=body, raw=raw, token=token, headers=headers)


def count(db, sender_id: int) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE sender_id = %s", (sender_id,))
        return cur.fetchone()[0]


@pytest.fixture
def sender(api):
    return api.new_sender()


def test_a_repeat_gets_the_first_answer_and_creates_nothing(api, sender, db):
    key = unique("key-")
    first = post(api, "/deliveries", {"size": "1x2x3", "cost": "9.50"}, sender["token"], key)
    assert first.status == 201 and "idempotent-replayed" not in first.headers
    again = post(api, "/deliveries", {"cost": "9.50", "size": "1x2x3"}, sender["token"], key,
                 raw=b'{ "cost" : "9.50",\n "size":"1x2x3" }')
    assert again.status == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json == first.json
    assert count(db, sender["sender_id"]) == 1
    # The quoted form is the same key; a lone quote is a key of its own.
    assert post(api, "/deliveries", {"size": "1x2x3", "cost": "9.50"}, sender["token"],
                '"a').status == 201
    quoted = post(api, "/deliveries", {"size": "1x2x3", "cost": "9.50"}, sender["token"],
                  f'"{key}"')
    assert quoted.json == first.json and quoted.headers["idempotent-replayed"] == "true"


def test_the_same_key_for_another_request_is_422(api, sender, db):
    key = unique("key-")
    assert post(api, "/deliveries", {"size": "1x2x3", "cost": 1}, sender["token"], key).status \
        == 201
    assert_error(post(api, "/deliveries", {"size": "1x2x3", "cost": 2}, sender["token"], key),
                 422, "Idempotency-Key")
    assert_error(post(api, "/add_delivery", {"size": "1x2x3", "cost": 1}, sender["token"], key),
                 422, "Idempotency-Key")
    assert count(db, sender["sender_id"]) == 1


def test_keys_belong_to_their_user(api, sender, db):
    other = api.new_sender()
    key = unique("key-")
    mine = post(api, "/deliveries", {"size": "1x2x3", "cost": 1}, sender["token"], key)
    theirs = post(api, "/deliveries", {"size": "1x2x3", "cost": 1}, other["token"], key)
    assert theirs.status == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json["id"] != mine.json["id"]


def test_a_refused_request_may_be_retried_with_its_key(api, sender):
    courier = api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    key = unique("key-")
    refused = post(api, f"/deliveries/{did}/pickup", None, courier["token"], key)
    assert refused.status == 404  # not theirs yet
    assert api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"]).status == 200
    done = post(api, f"/deliveries/{did}/pickup", None, courier["token"], key)
    assert done.status == 200 and done.json["status"] == "picked_up"
    again = post(api, f"/deliveries/{did}/pickup", None, courier["token"], key)
    assert again.headers["idempotent-replayed"] == "true" and again.json == done.json


def test_actions_assign_and_webhooks_replay_too(api, sender, db):
    courier = api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    key = unique("assign-")
    headers = {"Idempotency-Key": key}
    first = api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"],
                    headers=headers)
    assert api.post(f"/deliveries/{did}/cancel", token=sender["token"]).status == 200
    replay = api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"],
                     headers=headers)
    assert replay.json == first.json and replay.headers["idempotent-replayed"] == "true"
    hook = {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}
    made = post(api, "/webhooks", hook, sender["token"], "hook-1")
    again = post(api, "/webhooks", hook, sender["token"], "hook-1")
    assert made.status == again.status == 201 and again.json == made.json
    assert len(api.get("/webhooks", token=sender["token"]).json["items"]) == 1


def test_keys_older_than_a_day_are_forgotten(api, sender, db):
    key = unique("key-")
    assert post(api, "/deliveries", {"size": "1x2x3", "cost": 1}, sender["token"], key).status \
        == 201
    with db.cursor() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                    " WHERE key = %s", (key,))
    fresh = post(api, "/deliveries", {"size": "1x2x3", "cost": 2}, sender["token"], key)
    assert fresh.status == 201 and "idempotent-replayed" not in fresh.headers
    assert count(db, sender["sender_id"]) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "tab\there", '"' + "x" * 256 + '"'])
def test_a_malformed_key_is_400(api, sender, key):
    reply = post(api, "/deliveries", {"size": "1x2x3", "cost": 1}, sender["token"], key)
    assert_error(reply, 400, "Idempotency-Key")


def test_twenty_concurrent_duplicates_make_one_delivery(live, db):
    api = live["api"]
    sender = api.new_sender()
    key = unique("race-")
    barrier = threading.Barrier(20)
    replies: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def send():
        session = requests.Session()
        barrier.wait()
        reply = session.post(f"{live['base']}/deliveries",
                             data=json.dumps({"size": "5x5x5", "cost": "12.34"}),
                             headers={"Authorization": f"Bearer {sender['token']}",
                                      "Content-Type": "application/json",
                                      "Idempotency-Key": key}, timeout=30)
        with lock:
            replies.append((reply.status_code, reply.text,
                            reply.headers.get("Idempotent-Replayed")))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _, _ in replies} == {201}
    assert len({text for _, text, _ in replies}) == 1
    assert sorted(flag or "" for _, _, flag in replies) == [""] + ["true"] * 19
    assert count(db, sender["sender_id"]) == 1
