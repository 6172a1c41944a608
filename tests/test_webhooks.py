"""Webhooks end to end: subscriptions over the API, the outbox written with
each event, and the sender (the same code as the scheduled function) posting
to a real local receiver that verifies every signature with the
`standardwebhooks` package."""

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from chalicelib import webhooks
from tests.conftest import assert_error
from tests.webhook_receiver import Receiver


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Retries after a second instead of the contract's minutes and hours."""
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "1,1,1,1,1,1,1")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sender_user(api):
    return api.new_sender()


def subscribe(api, who: dict, receiver: Receiver, events=("*",)) -> dict:
    reply = api.post("/webhooks", {"url": receiver.url, "events": list(events)},
                     token=who["token"])
    assert reply.status == 201, reply
    receiver.secret = reply.json["secret"]
    return reply.json


def drain(until, seconds: float = 30.0) -> None:
    """Runs the sender until `until()` holds; fails when time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        webhooks.send_due()
        if until():
            return
        time.sleep(0.05)
    raise AssertionError(f"the sender did not get there within {seconds:g} s")


def drain_all(seconds: float = 30.0) -> None:
    """Runs the sender until a round finds nothing due: whatever was to be sent
    has been (rows that failed come due again a second later)."""
    deadline = time.monotonic() + seconds
    while webhooks.send_due():
        assert time.monotonic() < deadline, f"rows still due after {seconds:g} s"


def pending_rows(db, subscription_id: int) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhook_deliveries WHERE subscription_id = %s"
                    " AND state = 'pending'", (subscription_id,))
        return cur.fetchone()[0]


def feed_ids(api, who: dict) -> list[int]:
    return [e["id"] for e in api.get("/events?limit=100", token=who["token"]).json["items"]]


def life(api, sender: dict, courier: dict) -> int:
    did = api.new_delivery(sender["token"])["id"]
    assert api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"]).status == 200
    assert api.post(f"/deliveries/{did}/pickup", token=courier["token"]).status == 200
    assert api.post(f"/deliveries/{did}/deliver", token=courier["token"]).status == 200
    return did


def test_every_event_arrives_signed_and_as_the_feed_shows_it(api, sender_user, receiver):
    sub = subscribe(api, sender_user, receiver)
    assert sub["secret"].startswith("whsec_") and sub["events"] == ["*"]
    assert sub["disabled"] is False
    listed = api.get("/webhooks", token=sender_user["token"]).json["items"]
    assert listed == [{k: v for k, v in sub.items() if k != "secret"}]
    life(api, sender_user, api.new_courier())
    expected = feed_ids(api, sender_user)
    drain(lambda: len(receiver.received) >= len(expected))
    assert receiver.unverified == []
    assert sorted(receiver.ids()) == expected
    feed = {e["id"]: e for e in api.get("/events", token=sender_user["token"]).json["items"]}
    for message in receiver.received:
        event = feed[int(message["id"])]
        assert message["raw"] == {"type": event["type"], "timestamp": event["at"], "data": event}


def test_only_the_subscribed_types_and_only_the_subscribers_events(api, receiver):
    sender, courier, stranger = api.new_sender(), api.new_courier(), api.new_sender()
    other = Receiver()
    try:
        subscribe(api, courier, receiver, events=["delivery.delivered", "delivery.picked_up"])
        other_sub = api.post("/webhooks", {"url": other.url, "events": ["*"]},
                             token=stranger["token"])
        other.secret = other_sub.json["secret"]
        did = life(api, sender, courier)
        drain(lambda: len(receiver.received) >= 2)
        drain_all()
        # Sent in parallel: they may arrive in any order (receivers order by event id).
        assert sorted((int(m["id"]), m["payload"]["type"]) for m in receiver.received) == \
            sorted((e["id"], e["type"]) for e in api.get(
                "/events?type=delivery.picked_up,delivery.delivered",
                token=courier["token"]).json["items"])
        assert len(receiver.received) == 2
        assert {m["payload"]["data"]["delivery_id"] for m in receiver.received} == {did}
        assert other.received == []
    finally:
        other.close()


def test_a_retry_after_a_500_carries_the_same_webhook_id(api, sender_user, receiver, db):
    receiver.fail_first = 1
    subscribe(api, sender_user, receiver, events=["delivery.created"])
    event_id = None
    api.new_delivery(sender_user["token"])
    event_id = feed_ids(api, sender_user)[-1]
    drain(lambda: len(receiver.received) >= 1)
    assert receiver.ids() == [event_id] and receiver.tries(str(event_id)) == 2
    with db.cursor() as cur:
        cur.execute("SELECT a.attempt, a.status FROM webhook_attempts a"
                    " JOIN webhook_deliveries w ON w.id = a.delivery_id"
                    " WHERE w.event_id = %s ORDER BY a.attempt", (event_id,))
        assert cur.fetchall() == [(1, 500), (2, 204)]


def test_nothing_arrives_after_the_subscription_is_deleted(api, sender_user, receiver, db):
    sub = subscribe(api, sender_user, receiver)
    api.new_delivery(sender_user["token"])
    drain(lambda: len(receiver.received) >= 1)
    assert api.delete(f"/webhooks/{sub['id']}", token=sender_user["token"]).status == 204
    api.new_delivery(sender_user["token"])
    drain_all()
    assert len(receiver.received) == 1
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhook_deliveries WHERE subscription_id = %s",
                    (sub["id"],))
        assert cur.fetchone()[0] == 0  # nothing left to send, nothing made
    assert api.get("/webhooks", token=sender_user["token"]).json["items"] == []
    assert_error(api.delete(f"/webhooks/{sub['id']}", token=sender_user["token"]), 404, "webhook")


def test_an_outage_of_the_receiver_loses_nothing(api, sender_user, receiver):
    subscribe(api, sender_user, receiver)
    port, secret = receiver.port, receiver.secret
    receiver.close()  # down: connections are refused
    for _ in range(3):
        api.new_delivery(sender_user["token"])
    drain_all()  # the first attempts fail meanwhile
    back = Receiver(port)
    back.secret = secret
    try:
        expected = feed_ids(api, sender_user)
        drain(lambda: len(back.received) >= len(expected))
        assert sorted(back.ids()) == expected and back.unverified == []
    finally:
        back.close()


def test_410_disables_the_subscription(api, sender_user, receiver, db):
    receiver.status = 410
    sub = subscribe(api, sender_user, receiver)
    api.new_delivery(sender_user["token"])
    drain(lambda: bool(receiver.received))
    listed = api.get("/webhooks", token=sender_user["token"]).json["items"]
    assert listed[0]["id"] == sub["id"] and listed[0]["disabled"] is True
    api.new_delivery(sender_user["token"])
    drain_all()
    assert len(receiver.received) == 1
    assert pending_rows(db, sub["id"]) == 0  # the new event made no row for it


def test_two_senders_at_once_never_send_one_attempt_twice(api, sender_user, receiver, db):
    subscribe(api, sender_user, receiver, events=["delivery.created"])
    for _ in range(40):
        api.new_delivery(sender_user["token"])
    expected = feed_ids(api, sender_user)

    def sender_loop(_):
        from chalicelib import conn

        drain(lambda: len(receiver.received) >= len(expected), seconds=60)
        conn.drop()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(sender_loop, range(2)))  # re-raises a sender's error
    assert sorted(receiver.ids()) == expected  # each exactly once
    assert all(receiver.tries(str(i)) == 1 for i in expected)


@pytest.mark.slow
def test_a_hanging_receiver_does_not_stall_the_sender_beyond_its_timeout(api, receiver):
    slow_sender, quick_sender = api.new_sender(), api.new_sender()
    quick = Receiver()
    try:
        receiver.hang_seconds = 30
        subscribe(api, slow_sender, receiver, events=["delivery.created"])
        quick.secret = api.post("/webhooks", {"url": quick.url, "events": ["*"]},
                                token=quick_sender["token"]).json["secret"]
        api.new_delivery(slow_sender["token"])
        api.new_delivery(quick_sender["token"])
        started = time.monotonic()
        webhooks.send_due()
        took = time.monotonic() - started
        # The hang lasts 30 s: ending near the 10 s timeout (with room for a
        # busy machine) shows the sender cut it.
        assert took < webhooks.TIMEOUT_SECONDS + 10, took
        assert len(quick.received) == 1 and receiver.received == []
    finally:
        receiver.hang_seconds = 0
        quick.close()


# ---------------------------------------------------------------- subscribing


@pytest.mark.parametrize("url", [
    "http://198.51.100.7/hooks", "https://127.0.0.1/hooks", "https://localhost/hooks",
    "https://10.1.2.3/", "https://192.168.0.1/", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/", "https://[fd00:ec2::254]/", "https://0.0.0.0/", "ftp://198.51.100.7/",
    "https://user:pw@198.51.100.7/", "https://no-such-host.invalid/", "not a url", "",
    "https://8.8.8.8/\x00", "https://8.8.8.8/a b", "HTTPS://8.8.8.8/", "https://8.8.8.8/\u00e9",
    "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b:1::a9fe:a9fe]/",
    "https://[2002:a9fe:a9fe::1]/", "https://[::ffff:10.0.0.1]/", "https://8.8.8.8:0/",
    # IPv4-compatible and SIIT (IPv4-translated) forms of private addresses
    "https://[::127.0.0.1]/", "https://[::7f00:1]/", "https://[::ffff:0:127.0.0.1]/",
    "https://[::169.254.169.254]/", "https://[::ffff:0:a9fe:a9fe]/", "https://[::10.0.0.1]/",
    "https://[::ffff:0:192.168.1.1]/", "https://[::]/", "https://[::0.0.0.0]/",
])
def test_unsafe_or_malformed_urls_are_refused_where_https_is_required(api, sender_user,
                                                                      monkeypatch, url):
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    reply = api.post("/webhooks", {"url": url, "events": ["*"]}, token=sender_user["token"])
    assert_error(reply, 400, "url")


def test_a_public_https_address_is_accepted(api, sender_user, monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    reply = api.post("/webhooks", {"url": "https://8.8.8.8/hooks", "events": ["*"]},
                     token=sender_user["token"])
    assert reply.status == 201, reply


def test_the_address_is_checked_again_when_sending(api, sender_user, receiver, monkeypatch, db):
    subscribe(api, sender_user, receiver)  # allowed while local receivers are
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    api.new_delivery(sender_user["token"])
    drain_all()
    assert receiver.received == [] and receiver.tries("x") == 0
    with db.cursor() as cur:
        cur.execute("SELECT error FROM webhook_attempts a JOIN webhook_deliveries w"
                    " ON w.id = a.delivery_id JOIN webhook_subscriptions s"
                    " ON s.id = w.subscription_id WHERE s.user_id = %s",
                    (sender_user["user_id"],))
        errors = [row[0] for row in cur.fetchall()]
    assert errors and all("https" in e or "public" in e for e in errors)


@pytest.mark.parametrize("events", [[], ["delivery.lost"], "*", ["*", "delivery.created"],
                                    ["delivery.created", "delivery.created"], [1]])
def test_events_must_be_star_or_known_types(api, sender_user, receiver, events):
    reply = api.post("/webhooks", {"url": receiver.url, "events": events},
                     token=sender_user["token"])
    assert_error(reply, 400, "events")


def test_at_most_ten_subscriptions(api, sender_user, receiver):
    for _ in range(10):
        subscribe(api, sender_user, receiver)
    assert_error(api.post("/webhooks", {"url": receiver.url, "events": ["*"]},
                          token=sender_user["token"]), 409, "url")


def test_no_signing_secret_is_stored(api, sender_user, receiver, database_url):
    sub = subscribe(api, sender_user, receiver)
    raw = sub["secret"].removeprefix("whsec_")
    import base64

    key = base64.b64decode(raw)
    with psycopg2.connect(database_url) as db, db.cursor() as cur:
        cur.execute("SELECT s::text FROM webhook_subscriptions s WHERE id = %s", (sub["id"],))
        (row,) = cur.fetchone()
    assert raw not in row and key.hex() not in row
    # The key the server derives from is not in the database either.
    assert os.environ["WEBHOOK_SIGNING_KEY"] not in row


def test_a_replay_of_a_deleted_subscription_is_409_not_its_secret(api, sender_user, receiver):
    headers = {"Idempotency-Key": "sub-gone"}
    body = {"url": receiver.url, "events": ["*"]}
    made = api.post("/webhooks", body, token=sender_user["token"], headers=headers)
    assert made.status == 201
    assert api.delete(f"/webhooks/{made.json['id']}", token=sender_user["token"]).status == 204
    again = api.post("/webhooks", body, token=sender_user["token"], headers=headers)
    assert_error(again, 409, "Idempotency-Key")


def _raw_receiver(answer) -> tuple[str, threading.Thread, socket.socket]:
    """A TCP server on 127.0.0.1 that reads a request and calls answer(conn)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/", thread, server


def test_a_receiver_that_speaks_no_http_is_a_recorded_failure(api, sender_user, receiver, db):
    url, _, server = _raw_receiver(lambda conn: conn.sendall(b"garbage\r\n\r\n"))
    try:
        bad = api.post("/webhooks", {"url": url, "events": ["*"]}, token=sender_user["token"])
        assert bad.status == 201
        subscribe(api, sender_user, receiver)  # a good one beside it
        api.new_delivery(sender_user["token"])
        webhooks.send_due()
        assert len(receiver.received) == 1  # the batch went on
        with db.cursor() as cur:
            cur.execute("SELECT a.status, a.error FROM webhook_attempts a JOIN webhook_deliveries w"
                        " ON w.id = a.delivery_id WHERE w.subscription_id = %s",
                        (bad.json["id"],))
            ((status, error),) = cur.fetchall()
        assert status is None and "BadStatusLine" in error
    finally:
        server.close()


def test_a_receiver_that_drips_its_answer_is_cut_at_the_timeout(monkeypatch):
    def drip(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):
            conn.sendall(b"X")
            time.sleep(0.25)

    url, _, server = _raw_receiver(drip)
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 1.5)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            webhooks.post(url, {"Content-Type": "application/json"}, b"{}", allow_local=True)
        assert time.monotonic() - started < 6  # the drip lasts 10 s; the limit is 1.5 s
    finally:
        server.close()


# ---------------------------------------------------------------- anonymous callers


@pytest.fixture
def resolutions(monkeypatch) -> list[str]:
    """The host names this process asks DNS for (socket.getaddrinfo, watched)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def watched(host, *args, **kwargs):
        asked.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", watched)
    return asked


@pytest.mark.parametrize("token", [None, "0" * 40, "not-a-token"])
@pytest.mark.parametrize("url", ["https://localhost/", "https://-/", "https://8.8.8.8/",
                                 "https://internal.example/"])
def test_an_unknown_caller_gets_401_before_any_dns_query(api, monkeypatch, resolutions,
                                                          token, url):
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    reply = api.post("/webhooks", {"url": url, "events": ["*"]}, token=token)
    assert_error(reply, 401, "Authorization")
    assert resolutions == []


def test_a_known_caller_gets_the_dns_verdict(api, sender_user, monkeypatch, resolutions):
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    for url, says in (("https://localhost/", "not public"), ("https://-/", "does not resolve")):
        reply = api.post("/webhooks", {"url": url, "events": ["*"]},
                         token=sender_user["token"])
        assert_error(reply, 400, "url")
        assert says in reply.json["Message"]
    assert resolutions == ["localhost", "-"]


def test_an_ipv6_receiver_gets_a_bracketed_host_header():
    """http://[::1]:PORT/ is sent with Host: [::1]:PORT (RFC 9110, 7.2)."""
    seen: list[bytes] = []

    server = socket.socket(socket.AF_INET6)
    server.bind(("::1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        status = webhooks.post(f"http://[::1]:{port}/hooks", {}, b"{}", allow_local=True)
        thread.join(5)
        assert status == 204
        headers = seen[0].split(b"\r\n")
        assert f"Host: [::1]:{port}".encode() in headers, headers
    finally:
        server.close()


def test_a_subscription_gets_each_deliverys_events_in_the_order_they_happened(api, receiver):
    """The sender's loop (webhooks.run, as the schedule runs it) has one attempt
    in flight per subscription, and a delivery's outbox rows are due in the
    order its events happened: interleaved lifecycles of three deliveries
    arrive with each delivery's events in order, every event once."""
    sender, courier = api.new_sender(), api.new_courier()
    subscribe(api, sender, receiver)
    dids = [api.new_delivery(sender["token"])["id"] for _ in range(3)]
    for action in ("assign", "pickup", "deliver"):
        for did in dids:
            if action == "assign":
                reply = api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"])
            else:
                reply = api.post(f"/deliveries/{did}/{action}", token=courier["token"])
            assert reply.status == 200, reply
    expected = feed_ids(api, sender)
    assert len(expected) == 12
    done = threading.Event()
    loop = threading.Thread(target=webhooks.run, kwargs={
        "seconds": 30, "idle_sleep": 0.1, "stop": done.is_set})
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while len(receiver.received) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        loop.join(30)
    assert sorted(receiver.ids()) == sorted(expected)  # each once
    for did in dids:
        arrived = [m["payload"]["type"] for m in receiver.received
                   if m["payload"]["data"]["delivery_id"] == did]
        assert arrived == ["delivery.created", "delivery.assigned", "delivery.picked_up",
                           "delivery.delivered"], (did, arrived)
