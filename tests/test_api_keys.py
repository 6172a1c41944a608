"""API keys: made once and shown once, kept as SHA-256, scoped, revocable,
expiring, and resolved by the same statement as a login token."""

import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from chalicelib import credentials
from tests.conftest import assert_error

KEY_RE = re.compile(r"dk_[A-Za-z0-9]{40,}")
FIELDS = {"id", "name", "scope", "key", "prefix", "created_at", "expires_at", "last_used_at"}


def make_key(api, token: str, **body) -> dict:
    reply = api.post("/api-keys", {"name": "shop backend", **body}, token=token)
    assert reply.status == 201, reply
    return reply.json


@pytest.fixture
def sender(api):
    return api.new_sender()


def listed(api, token: str) -> list[dict]:
    reply = api.get("/api-keys", token=token)
    assert reply.status == 200, reply
    return reply.json["items"]


def test_a_key_is_shown_once_and_kept_as_its_sha256(api, db, sender):
    made = make_key(api, sender["token"], scope="read")
    assert set(made) == FIELDS
    key = made["key"]
    assert KEY_RE.fullmatch(key) and credentials.is_api_key(key)
    assert made["prefix"] == key[:10] and made["scope"] == "read"
    assert made["name"] == "shop backend" and made["last_used_at"] is None
    assert made["expires_at"] is None and made["created_at"].endswith("Z")
    reply = api.get("/api-keys", token=sender["token"])
    assert key not in reply.content.decode()
    (item,) = reply.json["items"]
    assert item == {k: v for k, v in made.items() if k != "key"}
    with db.cursor() as cur:
        cur.execute("SELECT key_sha256, t::text FROM api_keys t WHERE id = %s", (made["id"],))
        digest, row_text = cur.fetchone()
    assert bytes(digest) == hashlib.sha256(key.encode()).digest()
    assert key not in row_text and key[3:] not in row_text


def test_keys_are_random_and_carry_a_checksum():
    keys = {credentials.new_api_key() for _ in range(500)}
    assert len(keys) == 500
    assert all(KEY_RE.fullmatch(k) and credentials.is_api_key(k) for k in keys)
    # Every character of the alphabet turns up: nothing is fixed but dk_.
    assert set("".join(k[3:] for k in keys)) == set(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    # Each random character is uniform: the first one too (a key made as one
    # big number in base62 would start with 0-3 only).
    assert len({k[3] for k in keys}) > 50
    key = next(iter(keys))
    for position in (3, 20, len(key) - 1):
        other = "A" if key[position] != "A" else "B"
        assert not credentials.is_api_key(key[:position] + other + key[position + 1:])


def test_a_mistyped_key_is_refused_without_a_lookup(api, sender):
    key = make_key(api, sender["token"])["key"]
    typo = key[:-1] + ("a" if key[-1] != "a" else "b")
    assert_error(api.get("/me", token=typo), 401, "Authorization")
    assert api.get("/me", token=key).status == 200


def test_a_write_key_acts_as_its_user(api, sender):
    key = make_key(api, sender["token"])["key"]
    me = api.get("/me", token=key)
    assert me.status == 200 and me.json["user_id"] == sender["user_id"]
    created = api.post("/deliveries", {"size": "1x2x3", "cost": "4.50"}, token=key)
    assert created.status == 201, created
    assert created.json["sender_id"] == sender["sender_id"]
    # A bare key, as a bare token, is accepted too.
    got = api.request("GET", f"/deliveries/{created.json['id']}", headers={"Authorization": key})
    assert got.status == 200 and got.json["id"] == created.json["id"]
    # What the key made is the user's: the login token sees it.
    assert api.get(f"/deliveries/{created.json['id']}", token=sender["token"]).status == 200


def test_a_read_key_reads_and_cannot_write(api, db, sender):
    courier = api.new_courier()
    key = make_key(api, sender["token"], scope="read")["key"]
    courier_key = make_key(api, courier["token"], scope="read")["key"]
    delivery = api.new_delivery(sender["token"])
    did, cid = delivery["id"], courier["courier_id"]
    for path in (f"/deliveries/{did}", f"/deliveries/sender/{sender['sender_id']}", "/me",
                 "/couriers", f"/deliveries/{did}/events", "/events", "/webhooks"):
        assert api.get(path, token=key).status == 200, path
    with db.cursor() as cur:
        cur.execute("SELECT count(*), max(updated_at) FROM deliveries WHERE sender_id = %s",
                    (sender["sender_id"],))
        before = cur.fetchone()
    writes = [("POST", "/deliveries", {"size": "1x2x3", "cost": 5}),
              ("POST", "/add_delivery", {"size": "1x2x3", "cost": 5}),
              ("PATCH", f"/deliveries/{did}", {"description": "changed"}),
              ("PUT", f"/assign/{did}/{cid}", None),
              ("POST", f"/deliveries/{did}/cancel", None),
              ("POST", "/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"]}),
              # A host name: refused before it is resolved, as an unknown caller is.
              ("POST", "/webhooks", {"url": "http://localhost:9/h", "events": ["*"]}),
              ("DELETE", "/webhooks/1", None)]
    for method, path, body in writes:
        reply = api.request(method, path, body=body, token=key)
        assert_error(reply, 403, "scope")
        assert reply.json["Message"] == "scope: this key is read-only", (method, path)
        assert key not in reply.content.decode() and key[3:] not in reply.content.decode()
    reply = api.put("/me/location", body={"lat": 1, "lng": 2}, token=courier_key)
    assert_error(reply, 403, "scope")
    with db.cursor() as cur:
        cur.execute("SELECT count(*), max(updated_at) FROM deliveries WHERE sender_id = %s",
                    (sender["sender_id"],))
        assert cur.fetchone() == before
        cur.execute("SELECT count(*) FROM courier_positions WHERE courier_id = %s", (cid,))
        assert cur.fetchone()[0] == 0


def test_keys_cannot_manage_keys_or_log_out(api, sender):
    made = make_key(api, sender["token"])
    key = made["key"]
    assert_error(api.post("/api-keys", {"name": "more"}, token=key), 403, "Authorization")
    assert_error(api.get("/api-keys", token=key), 403, "Authorization")
    assert_error(api.delete(f"/api-keys/{made['id']}", token=key), 403, "Authorization")
    assert_error(api.delete("/auth", token=key), 403, "Authorization")
    # None of it happened: the key still works and is the only one.
    assert api.get("/me", token=key).status == 200
    assert [k["id"] for k in listed(api, sender["token"])] == [made["id"]]
    # An unknown key is 401 there too, not 403.
    unknown = credentials.new_api_key()
    assert_error(api.delete("/auth", token=unknown), 401, "Authorization")
    assert_error(api.get("/api-keys", token=unknown), 401, "Authorization")


def test_a_deleted_key_is_refused_at_once_and_not_listed(api, sender):
    first, second = make_key(api, sender["token"]), make_key(api, sender["token"], name="two")
    assert [k["id"] for k in listed(api, sender["token"])] == [second["id"], first["id"]]
    assert api.delete(f"/api-keys/{first['id']}", token=sender["token"]).status == 204
    assert_error(api.get("/me", token=first["key"]), 401, "Authorization")
    assert [k["id"] for k in listed(api, sender["token"])] == [second["id"]]
    assert_error(api.delete(f"/api-keys/{first['id']}", token=sender["token"]), 404, "api key")
    # Another user's key id: 404, and that key still works.
    other = api.new_sender()
    assert_error(api.delete(f"/api-keys/{second['id']}", token=other["token"]), 404, "api key")
    assert api.get("/me", token=second["key"]).status == 200
    assert_error(api.delete("/api-keys/x", token=sender["token"]), 400, "kid")


def test_an_expired_key_is_refused_and_not_listed(api, db, sender):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    made = make_key(api, sender["token"], expires_at=soon)
    assert made["expires_at"] == soon.replace("+00:00", "Z")
    assert api.get("/me", token=made["key"]).status == 200
    with db.cursor() as cur:
        cur.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' "
                    "WHERE id = %s", (made["id"],))
    assert_error(api.get("/me", token=made["key"]), 401, "Authorization")
    assert_error(api.post("/deliveries", {"size": "1x2x3", "cost": 5}, token=made["key"]), 401,
                 "Authorization")
    assert listed(api, sender["token"]) == []


def test_at_most_20_live_keys_per_user(api, db, sender):
    made = [make_key(api, sender["token"], name=f"k{i}") for i in range(20)]
    assert_error(api.post("/api-keys", {"name": "one more"}, token=sender["token"]), 409,
                 "api_keys")
    assert api.delete(f"/api-keys/{made[0]['id']}", token=sender["token"]).status == 204
    make_key(api, sender["token"], name="in its place")
    assert_error(api.post("/api-keys", {"name": "one more"}, token=sender["token"]), 409,
                 "api_keys")
    # An expired key no longer counts (it is removed when a key is made).
    with db.cursor() as cur:
        cur.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' "
                    "WHERE id = %s", (made[1]["id"],))
    make_key(api, sender["token"], name="after an expiry")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE user_id = %s", (sender["user_id"],))
        assert cur.fetchone()[0] == 20


def test_concurrent_creates_keep_the_limit(api, db, sender):
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(
            lambda i: api.post("/api-keys", {"name": f"k{i}"}, token=sender["token"]),
            range(26)))
    assert sorted(r.status for r in replies) == [201] * 20 + [409] * 6


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "scope": "admin"}, "scope"),
    ({"name": "ok", "scope": None}, "scope"),
    ({"name": "ok", "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "ok", "expires_at": 1893456000}, "expires_at"),
    ({"name": "ok", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "ok", "expires_at": "2099-02-30T00:00:00Z"}, "expires_at"),
])
def test_bad_key_requests_name_the_field(api, sender, body, field):
    assert_error(api.post("/api-keys", body, token=sender["token"]), 400, field)
    assert listed(api, sender["token"]) == []


def test_the_default_scope_is_write(api, sender):
    made = make_key(api, sender["token"])
    assert made["scope"] == "write"
    assert api.post("/deliveries", {"size": "1x2x3", "cost": 5}, token=made["key"]).status == 201


def test_last_used_at_is_set_by_the_first_use_then_at_most_once_a_minute(api, db, sender):
    made = make_key(api, sender["token"])
    key, kid = made["key"], made["id"]

    def stored():
        with db.cursor() as cur:
            cur.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,))
            return cur.fetchone()[0]

    assert stored() is None
    assert api.get("/me", token=key).status == 200
    first = stored()
    assert first is not None
    (item,) = listed(api, sender["token"])
    assert item["last_used_at"] is not None and item["last_used_at"].endswith("Z")
    for _ in range(3):
        assert api.get("/me", token=key).status == 200
    assert stored() == first
    # Another process (nothing remembered here) within the minute: the
    # database's own rule keeps the value.
    credentials._touched.clear()
    assert api.get("/me", token=key).status == 200
    assert stored() == first
    # A minute later, from a process that has not touched it: refreshed.
    with db.cursor() as cur:
        cur.execute("UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes' "
                    "WHERE id = %s", (kid,))
    moved = stored()
    credentials._touched.clear()
    assert api.post("/deliveries", {"size": "1x2x3", "cost": 5}, token=key).status == 201
    assert stored() > moved + timedelta(seconds=100)


def test_a_login_token_touches_no_key(api, db, sender):
    made = make_key(api, sender["token"])
    credentials._touched.clear()
    assert api.get("/me", token=sender["token"]).status == 200
    with db.cursor() as cur:
        cur.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (made["id"],))
        assert cur.fetchone()[0] is None


def test_session_of_probes_one_index(db):
    """The branch of the other kind of credential is cut by a one-time filter
    that is false: its index is never scanned."""
    with db.cursor() as cur:
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("PREPARE so(bytea) AS SELECT * FROM session_of($1)")
        try:
            for digest, used, unused in ((b"\0" * 32, "sessions", "api_keys"),
                                         (b"k" + b"\0" * 32, "api_keys", "sessions")):
                cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                            "EXECUTE so(%s)", (digest,))
                plan = "\n".join(row[0] for row in cur.fetchall())
                assert "One-Time Filter" in plan, plan
                for line in plan.splitlines():
                    if f"on {unused}" in line:
                        assert "never executed" in line, plan
                assert any(f"on {used}" in line and "never executed" not in line
                           for line in plan.splitlines()), plan
        finally:
            cur.execute("DEALLOCATE so")
            cur.execute("RESET plan_cache_mode")


def test_a_delete_among_concurrent_requests_leaves_no_success_after_its_answer(live, api):
    """20 threads read with a key while it is deleted: each answer is the old
    state (200, the user's) or 401, and none sent after the delete's answer
    succeeds."""
    base = live["base"]
    who = api.new_sender()
    made = make_key(api, who["token"], scope="read")
    key = made["key"]
    delivery = api.new_delivery(who["token"])
    results: list[tuple[float, float, int, object]] = []
    lock = threading.Lock()
    stop = threading.Event()
    started = threading.Barrier(21)

    def reader() -> None:
        session = requests.Session()
        started.wait(timeout=30)
        until = time.monotonic() + 60  # bounded: until a 401 after the delete
        while time.monotonic() < until:
            sent = time.monotonic()
            reply = session.get(f"{base}/deliveries/{delivery['id']}",
                                headers={"Authorization": f"Bearer {key}"}, timeout=30)
            body = reply.json() if reply.status_code == 200 else None
            with lock:
                results.append((sent, time.monotonic(), reply.status_code,
                                body and body["id"]))
            if stop.is_set() and reply.status_code == 401:
                break
        session.close()

    threads = [threading.Thread(target=reader) for _ in range(20)]
    for thread in threads:
        thread.start()
    started.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # some successes first
        with lock:
            if sum(1 for r in results if r[2] == 200) >= 20:
                break
        time.sleep(0.01)
    deleted = requests.delete(f"{base}/api-keys/{made['id']}",
                              headers={"Authorization": f"Bearer {who['token']}"}, timeout=30)
    answered = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert deleted.status_code == 204
    assert {r[2] for r in results} <= {200, 401}, {r[2] for r in results}
    assert all(r[3] == delivery["id"] for r in results if r[2] == 200)
    after = [r for r in results if r[0] > answered]
    assert after and all(r[2] == 401 for r in after), after[:5]
    assert any(r[2] == 200 for r in results)


def test_a_refresh_never_waits_on_a_locked_key(api, database_url, sender):
    """Another transaction holds the key's row: the request with a due refresh
    answers without waiting for it (the refresh is skipped), and the next one
    after the lock is gone refreshes."""
    import psycopg2

    made = make_key(api, sender["token"])
    holder = psycopg2.connect(database_url)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM api_keys WHERE id = %s FOR UPDATE", (made["id"],))
            credentials._touched.clear()
            started = time.monotonic()
            reply = api.get("/me", token=made["key"])
            assert reply.status == 200, reply
            assert time.monotonic() - started < 4  # the statement timeout is 5 s
        holder.rollback()
        with holder.cursor() as cur:
            cur.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (made["id"],))
            assert cur.fetchone()[0] is None
        holder.rollback()
        credentials._touched.clear()
        assert api.get("/me", token=made["key"]).status == 200
        with holder.cursor() as cur:
            cur.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (made["id"],))
            assert cur.fetchone()[0] is not None
    finally:
        holder.close()
