"""The webhook sender as `make run` runs it (tools/webhook_sender.py, the loop the
scheduled function runs on AWS), against hostile receivers: nothing a receiver
sends ends the sender or stops other rows, and a receiver that never answers
delays only its own subscriptions."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chalicelib import webhooks
from tests.conftest import ROOT
from tests.webhook_receiver import Receiver
from tools.black_hole import BlackHole

pytestmark = pytest.mark.slow


def _wait(condition: Callable[[], bool], seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


@pytest.fixture
def sender_process(database_url) -> Iterator[subprocess.Popen]:
    """tools.webhook_sender on the test database; a failed attempt is retried
    only after an hour (each row here is attempted once)."""
    env = {**os.environ, "DATABASE_URL": database_url, "WEBHOOK_ALLOW_HTTP": "true",
           "WEBHOOK_RETRY_DELAYS": "3600,3600,3600,3600,3600,3600,3600"}
    process = subprocess.Popen([sys.executable, "-m", "tools.webhook_sender",
                                "--idle-sleep", "0.2"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RawReceiver:
    """A TCP server on 127.0.0.1 that reads a request's first bytes and then
    does whatever `answer(conn)` does."""

    def __init__(self, answer: Callable[[socket.socket], None]):
        self.answer = answer
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(15)
                conn.recv(65536)
                self.answer(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


def _send(data: bytes) -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(data)


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _endless_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(1000):
        conn.sendall(chunk)


def _drip(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(60):
        conn.sendall(b"X")
        time.sleep(0.25)


# What receivers answer: each kind of garbage a status line, headers, a body,
# timing and TLS can carry.
GARBAGE = {
    "nul in the status line": _send(b"HTTP/1.1 \x00\r\n\r\n"),
    "nul and controls in the reason": _send(b"HTTP/1.1 500 \x00\x1b[31m\x7f\r\n"
                                            b"Content-Length: 0\r\n\r\n"),
    "bytes that are not UTF-8": _send(b"HTTP/1.1 \xff\xfe\xed\xa0\x80\r\n\r\n"),
    "no HTTP at all": _send(b"garbage\r\n\r\n"),
    "random bytes": _send(os.urandom(8192)),
    "a status line of 100 kB": _send(b"HTTP/1.1 200 " + b"A" * 100_000 + b"\r\n\r\n"),
    "a status out of range": _send(b"HTTP/1.1 99999 Huge\r\n\r\n"),
    "500 headers": _send(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"\r\n"),
    "a header of 100 kB": _send(b"HTTP/1.1 200 OK\r\nX-A: " + b"b" * 100_000 + b"\r\n\r\n"),
    "broken chunks": _send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "an endless body": _endless_body,
    "closed without a word": lambda conn: None,
    "reset": _reset,
    "a drip past the timeout": _drip,
}


def test_nothing_a_receiver_sends_ends_the_sender_or_stops_other_rows(
        api, database_url, db, sender_process):
    receivers = {kind: RawReceiver(answer) for kind, answer in GARBAGE.items()}
    # TLS against a server that speaks no TLS (https:// is allowed to any
    # address here; the handshake fails).
    receivers["not TLS"] = RawReceiver(_send(b"HTTP/1.1 200 OK\r\n\r\n"))
    good = Receiver()
    users = [api.new_sender() for _ in range(2)]
    subscriptions: dict[int, str] = {}
    try:
        for n, (kind, receiver) in enumerate(receivers.items()):
            scheme = "https" if kind == "not TLS" else "http"
            reply = api.post("/webhooks", {"url": f"{scheme}://127.0.0.1:{receiver.port}/h",
                                           "events": ["delivery.created"]},
                             token=users[n % 2]["token"])
            assert reply.status == 201, reply
            subscriptions[reply.json["id"]] = kind
        bystander = api.new_sender()
        good.secret = api.post("/webhooks", {"url": good.url, "events": ["delivery.created"]},
                               token=bystander["token"]).json["secret"]
        for user in users:
            api.new_delivery(user["token"])
        for _ in range(3):
            api.new_delivery(bystander["token"])

        def attempts() -> dict[int, tuple]:
            with db.cursor() as cur:
                cur.execute("SELECT w.subscription_id, a.status, a.error FROM webhook_attempts a"
                            " JOIN webhook_deliveries w ON w.id = a.delivery_id"
                            " WHERE w.subscription_id = ANY (%s)", (list(subscriptions),))
                return {row[0]: row[1:] for row in cur.fetchall()}

        assert _wait(lambda: len(good.received) == 3, 60), good.received
        assert _wait(lambda: len(attempts()) == len(subscriptions), 60), \
            sorted(set(subscriptions.values()) - {subscriptions[s] for s in attempts()})
        assert sender_process.poll() is None, sender_process.stdout.read().decode()
        for subscription_id, (status, error) in attempts().items():
            kind = subscriptions[subscription_id]
            if kind == "an endless body":
                assert status == 200, (kind, status, error)  # its first 64 kB are read
                continue
            assert status is None or not 200 <= status < 300, (kind, status)
            assert error and len(error) <= 500, (kind, error)
            assert error.isprintable(), (kind, error)
        # Still sending: a new event reaches the good receiver.
        api.new_delivery(bystander["token"])
        assert _wait(lambda: len(good.received) == 4, 30)
        assert good.unverified == []
    finally:
        for receiver in receivers.values():
            receiver.close()
        good.close()


def test_a_receiver_that_never_answers_delays_only_its_own_subscriptions(
        api, sender_process):
    """One user's 10 subscriptions to a black hole, with a backlog, while
    another user's event is sent within seconds (before: after the black
    hole's rows timed out, 10 s and more)."""
    hole, quick = BlackHole(), Receiver()
    try:
        hostile, other = api.new_sender(), api.new_sender()
        for _ in range(10):
            assert api.post("/webhooks", {"url": hole.url, "events": ["*"]},
                            token=hostile["token"]).status == 201
        quick.secret = api.post("/webhooks", {"url": quick.url, "events": ["*"]},
                                token=other["token"]).json["secret"]
        for _ in range(5):
            api.new_delivery(hostile["token"])  # 50 rows to the black hole
        # The sender is busy with the black hole (its attempts last 10 s each).
        assert _wait(lambda: len(hole.held) >= 4, 30), len(hole.held)
        delays = []
        for _ in range(3):
            made = time.monotonic()
            did = api.new_delivery(other["token"])["id"]
            assert _wait(lambda did=did: did in {m["payload"]["data"]["delivery_id"]
                                                 for m in quick.received}, 30)
            delays.append(time.monotonic() - made)
        # The sender looks for due rows every 0.2 s here; a black hole's
        # attempt lasts 10 s. Margins for a busy machine.
        assert max(delays) < 5, delays
        # A user's share: at most USER_IN_FLIGHT attempts at once (none of
        # the first ones ends before its 10 s timeout).
        first = hole.accepted_at[0]
        assert sum(t < first + 5 for t in hole.accepted_at) <= webhooks.USER_IN_FLIGHT
    finally:
        hole.close()
        quick.close()


def test_tls_to_a_plain_server_is_a_recorded_failure_not_an_exception():
    """The sender's post() against a server that answers TLS with plain text."""
    receiver = RawReceiver(_send(b"HTTP/1.1 200 OK\r\n\r\n"))
    try:
        with pytest.raises((ssl.SSLError, OSError)) as raised:
            webhooks.post(f"https://127.0.0.1:{receiver.port}/", {}, b"{}", allow_local=True,
                          timeout=5)
        assert webhooks.error_text(raised.value).isprintable()
    finally:
        receiver.close()
