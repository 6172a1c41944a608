"""The local server (`make run`, the HTTP tests) against hostile clients.

Idle keep-alive clients hold no database backend (each HTTP connection has its
own thread; the thread's database connection goes back to a small pool after
each request), and a body is dispatched to the app whole or not at all: too
large → 413 unread, malformed length → 400, shorter than its Content-Length →
400 or nothing, stalled → 408. A real server process and a real PostgreSQL, on
a database of this module's own, so that the backends and deliveries counted
are this server's alone.
"""

import http.client
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest
import requests

from chalicelib.validation import MAX_BODY_BYTES
from tests.conftest import start_chalice_local, stop
from tools import devdb

IDLE_CLIENTS = 200
IDLE_POOL = 4
READ_TIMEOUT = 1.0
DELIVERY = b'{"size":"10x20x30","cost":"10.00"}'


@pytest.fixture(scope="module")
def server(server_url: str) -> Iterator[dict[str, Any]]:
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        process, base, log_path = start_chalice_local(url, {
            "DB_IDLE_CONNECTIONS": str(IDLE_POOL),
            "LOCAL_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)})
        db = psycopg2.connect(url)
        db.autocommit = True
        try:
            yield {"base": base, "port": int(base.rsplit(":", 1)[1]), "db": db,
                   "log": log_path, "process": process}
        finally:
            db.close()
            stop(process)


def _login(base: str, username: str) -> str:
    reply = requests.post(base + "/auth", json={"username": username, "password": "pass"},
                          timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def _scalar(db: Any, sql: str) -> Any:
    with db.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _backends(db: Any) -> int:
    """The app's connections to this module's database (not the check's own)."""
    return _scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                       "'delivery-api' AND datname = current_database()")


def _deliveries(db: Any) -> int:
    return _scalar(db, "SELECT count(*) FROM deliveries")


def _is_open(client: http.client.HTTPConnection) -> bool:
    """The server has neither closed nor written anything on this idle connection."""
    client.sock.setblocking(False)
    try:
        client.sock.recv(1, socket.MSG_PEEK)
        return False  # b"" (closed) or unexpected bytes
    except BlockingIOError:
        return True
    finally:
        client.sock.setblocking(True)


def _exchange(port: int, data: bytes, then: str = "wait",
              timeout: float = 10) -> tuple[int | None, dict[str, str], bytes, float]:
    """Sends raw bytes; then "wait"s for the answer, or half-closes ("shut")
    first. Returns (status or None, headers, body, seconds), reading until the
    server closes or `timeout`."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if then == "shut":
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    elapsed = time.monotonic() - started
    if not received:
        return None, {}, b"", elapsed
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body, elapsed


def _post(path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _assert_refused(reply: tuple, status: int, message: str) -> None:
    got, headers, body, _ = reply
    assert got == status, reply
    assert headers["content-type"] == "application/json", headers
    assert headers["connection"] == "close", headers
    assert json.loads(body)["Message"] == message, body


def _assert_still_serving(server: dict[str, Any]) -> None:
    assert requests.get(server["base"] + "/", timeout=5).text == "OK"
    health = requests.get(server["base"] + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["database"] == "ok", health.text


def test_idle_keep_alive_clients_hold_no_database_backends(server):
    token = _login(server["base"], "courier")
    auth = {"Authorization": f"Bearer {token}"}

    def me(client: http.client.HTTPConnection) -> int:
        client.request("GET", "/me", headers=auth)
        response = client.getresponse()
        response.read()
        return response.status

    clients = [http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
               for _ in range(IDLE_CLIENTS)]
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            assert list(pool.map(me, clients)) == [200] * IDLE_CLIENTS
        deadline = time.monotonic() + 10
        while (held := _backends(server["db"])) > IDLE_POOL and time.monotonic() < deadline:
            time.sleep(0.1)  # a closed connection's backend takes a moment to exit
        assert held <= IDLE_POOL, f"{held} backends for {IDLE_CLIENTS} idle clients"
        assert all(_is_open(client) for client in clients), "the server closed idle clients"

        _assert_still_serving(server)
        assert requests.get(server["base"] + "/me", headers=auth, timeout=5).status_code == 200
        # The idle connections are still good for another request each.
        with ThreadPoolExecutor(max_workers=50) as pool:
            assert list(pool.map(me, clients)) == [200] * IDLE_CLIENTS
        assert _backends(server["db"]) <= IDLE_POOL + 1  # a backend may still be exiting
    finally:
        for client in clients:
            client.close()


def _backend_pids(db: Any) -> set[int]:
    with db.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = "
                    "'delivery-api' AND datname = current_database()")
        return {pid for (pid,) in cur.fetchall()}


def test_requests_on_new_connections_reuse_a_pooled_backend(server):
    """Each HTTP connection gets a new thread; its request takes the connection
    the previous request released instead of opening one."""
    _assert_still_serving(server)
    before = _backend_pids(server["db"])
    assert before, "a released connection stays open in the pool"
    for _ in range(10):
        _assert_still_serving(server)  # requests.get: a new HTTP connection each time
    assert _backend_pids(server["db"]) == before


def test_pooled_connection_closed_by_the_server_is_replaced(server):
    """The stale check holds for pooled connections: after their backends are
    terminated, the next requests get a fresh connection, not a 503."""
    token = _login(server["base"], "courier")
    session = requests.Session()
    assert session.get(server["base"] + "/me", headers={"Authorization": token},
                       timeout=5).status_code == 200
    # The second argument waits (up to 10 s) until each backend has exited.
    terminated = _scalar(server["db"], "SELECT count(pg_terminate_backend(pid, 10000)) FROM "
                         "pg_stat_activity WHERE application_name = 'delivery-api' "
                         "AND datname = current_database()")
    assert terminated >= 1
    for _ in range(3):
        reply = session.get(server["base"] + "/me", headers={"Authorization": token},
                            timeout=5)
        assert reply.status_code == 200, reply.text


def test_huge_content_length_is_413_without_reading_the_body(server):
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Authorization": token, "Content-Length": "99999999999999"},
        DELIVERY))
    _assert_refused(reply, 413, f"body: larger than {MAX_BODY_BYTES} bytes")
    assert json.loads(reply[2])["Code"] == "PayloadTooLargeError"
    assert reply[1]["cache-control"] == "no-store"
    assert reply[3] < 2, f"took {reply[3]:.2f}s"
    assert _deliveries(server["db"]) == before
    # Too many digits for int() to parse is too large all the same.
    longest = _exchange(server["port"], _post("/deliveries", {"Content-Length": "9" * 5000}))
    _assert_refused(longest, 413, f"body: larger than {MAX_BODY_BYTES} bytes")
    _assert_still_serving(server)


def test_body_over_the_limit_is_413_and_expect_continue_gets_no_100(server):
    over = MAX_BODY_BYTES + 1
    sent = _exchange(server["port"], _post("/auth", {"Content-Length": str(over)},
                                           b" " * over))
    _assert_refused(sent, 413, f"body: larger than {MAX_BODY_BYTES} bytes")
    expecting = _exchange(server["port"], _post(
        "/auth", {"Content-Length": str(over), "Expect": "100-continue"}))
    _assert_refused(expecting, 413, f"body: larger than {MAX_BODY_BYTES} bytes")
    assert b"100 Continue" not in expecting[2]


def test_body_at_the_limit_reaches_the_app(server):
    """The guard is the app's limit, not a smaller one: MAX_BODY_BYTES of JSON (with
    leading zeros on its length) is read and answered by the app."""
    body = json.dumps({"size": "bad", "cost": "1.00"}).encode()
    body += b" " * (MAX_BODY_BYTES - len(body))
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Content-Length": f"000{len(body)}", "Connection": "close"}, body))
    assert reply[0] in (400, 401), reply
    assert json.loads(reply[2])["Message"].split(":")[0] in ("size", "Authorization"), reply


def test_a_whole_body_on_a_raw_socket_creates_a_delivery(server):
    """The control for the short-body tests below: the same bytes, complete, do."""
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Authorization": token, "Content-Length": str(len(DELIVERY)),
                        "Connection": "close"}, DELIVERY))
    assert reply[0] == 201, reply
    assert _deliveries(server["db"]) == before + 1


def test_body_shorter_than_content_length_then_half_close_is_400_and_not_created(server):
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Authorization": token, "Content-Length": str(len(DELIVERY) + 100)},
        DELIVERY), then="shut")
    assert reply[0] in (400, None), reply
    if reply[0] is not None:
        _assert_refused(reply, 400, f"body: {len(DELIVERY)} of {len(DELIVERY) + 100} bytes "
                                    "(Content-Length) received")
    assert _deliveries(server["db"]) == before
    _assert_still_serving(server)


def test_body_shorter_than_content_length_then_close_is_not_created(server):
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=5) as sock:
        sock.sendall(_post("/deliveries", {"Authorization": token,
                                           "Content-Length": str(len(DELIVERY) + 1)},
                           DELIVERY))
    time.sleep(1)  # a dispatched body would have made its delivery well within this
    assert _deliveries(server["db"]) == before
    _assert_still_serving(server)


def test_stalled_body_is_408_after_the_read_timeout_and_not_created(server):
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Authorization": token, "Content-Length": str(len(DELIVERY) + 1)},
        DELIVERY), timeout=READ_TIMEOUT + 5)
    _assert_refused(reply, 408, f"body: not received within {READ_TIMEOUT:g} s")
    assert READ_TIMEOUT - 0.2 < reply[3] < READ_TIMEOUT + 3, reply
    assert _deliveries(server["db"]) == before


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1e3", "0x10", "5, 5", "", "５",
                                   "1_0"])
def test_malformed_content_length_is_400(server, value):
    reply = _exchange(server["port"], _post("/auth", {"Content-Length": value}, b"{}"))
    _assert_refused(reply, 400, "body: Content-Length is malformed")


def test_two_different_content_lengths_are_400(server):
    reply = _exchange(server["port"], _post(
        "/auth", {"Content-Length": "2", "content-length": "40"}, b"{}"))
    _assert_refused(reply, 400, "body: Content-Length is malformed")


def test_chunked_body_is_400_and_never_read_as_a_request(server):
    token = _login(server["base"], "sender")
    before = _deliveries(server["db"])
    chunked = f"{len(DELIVERY):x}\r\n".encode() + DELIVERY + b"\r\n0\r\n\r\n"
    reply = _exchange(server["port"], _post(
        "/deliveries", {"Authorization": token, "Transfer-Encoding": "chunked"}, chunked))
    _assert_refused(reply, 400, "body: Transfer-Encoding is not supported, send Content-Length")
    assert _deliveries(server["db"]) == before


def test_refusals_leave_no_traceback_and_an_access_log_line(server):
    _exchange(server["port"], _post("/deliveries", {"Content-Length": "99999999999999"}))
    _exchange(server["port"], _post("/deliveries", {"Content-Length": "x"}))
    time.sleep(0.2)
    log = server["log"].read_text()
    access = [json.loads(line) for line in log.splitlines()
              if line.startswith("{") and '"delivery_api.access"' in line]
    assert {("POST", "/deliveries", 413), ("POST", "/deliveries", 400)} <= {
        (line["method"], line["route"], line["status"]) for line in access}, log[-2000:]
    assert "Traceback" not in log and "MemoryError" not in log, log[-4000:]


@pytest.mark.parametrize("header", [
    "Bearer " + "ab" * 20, "dk_live_credential_of_a_caller", "Basic dXNlcjpzZWNyZXQ=",
    "Bearer s\u00e9cret"])
def test_an_unknown_route_answers_as_deployed_and_repeats_no_credential(server, header):
    """chalice local's own 403 for a path no route matches repeats the
    Authorization header in its message (and fails on one that is not ASCII);
    the local server answers what the deployed API does instead."""
    client = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    try:
        client.putrequest("GET", "/no/such/route")
        client.putheader("Authorization", header.encode("latin-1"))
        client.endheaders()
        reply = client.getresponse()
        body = reply.read()
    finally:
        client.close()
    assert reply.status == 404, body
    assert json.loads(body) == {
        "Code": "NotFoundError",
        "Message": "path: no route of this API matches this method and path"}
    credential = header.split(" ")[-1].encode("latin-1")
    assert credential not in body and credential not in b"".join(
        f"{k}: {v}".encode("latin-1") for k, v in reply.getheaders())
    assert reply.getheader("X-Request-Id")
