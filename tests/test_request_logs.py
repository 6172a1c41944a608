"""Request ids and JSON logs (docs/logs.md).

Every response carries X-Request-Id; every line the app logs is one JSON object
with that id; the access log writes one line per request, with the route
template, method, status, duration, caller and, on errors, the error's Code;
and no line holds a token, its digest, a password or a request body.
"""

import hashlib
import http.client
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests

from chalicelib import conn, logs
from tests.conftest import unique
from tools.lambda_events import LambdaContext, event

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_FIELDS = {"level", "logger", "request_id", "method", "route", "status", "duration_ms",
                 "caller"}


class Captured:
    """Everything the app's log handlers write while a test runs."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    @property
    def text(self) -> str:
        return self._buffer.getvalue()

    def lines(self) -> list[dict]:
        """Every line, each parsed as one JSON object (a line that is not fails)."""
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == "delivery_api.access"]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """The streams of the app's handlers (the delivery_api hierarchy's, and
    Chalice's app.log, which logs an unhandled error) swapped for a buffer: the
    handlers, and so the access log's direct path, stay as they are."""
    import app as app_module

    loggers = [logging.getLogger("delivery_api"), logging.getLogger("delivery_api.access"),
               app_module.app.log]
    # The app's own (pytest adds capturing handlers of its own to them too).
    handlers = {handler for logger in loggers for handler in logger.handlers
                if type(handler) is logging.StreamHandler}
    buffer = io.StringIO()
    previous = {handler: handler.setStream(buffer) for handler in handlers}
    try:
        yield Captured(buffer)
    finally:
        for handler, stream in previous.items():
            handler.setStream(stream)


@pytest.fixture
def lambda_call(database_url):
    """Calls the Lambda entry point with an API Gateway event and a given requestId."""
    import app as app_module

    def invoke(method, path, request_id, **kw):
        lambda_event = event(app_module.app.routes, method, path, **kw)
        lambda_event["requestContext"]["requestId"] = request_id
        return app_module.app(lambda_event, LambdaContext())

    return invoke


def test_every_response_has_its_own_request_id_and_one_access_line(api, captured):
    replies = [
        api.get("/"),
        api.get("/me"),  # 401: no token
        api.post("/auth", {"username": unique("nobody"), "password": "not it"}),  # 401
        api.get("/deliveries/abc", token="0" * 40),  # 400: not an id
        api.post("/deliveries", raw=b"size=1x2x3", headers={"Content-Type": "text/plain"}),
        api.request("PATCH", "/me"),  # 405: Chalice's own
        api.get("/"),
    ]
    assert [reply.status for reply in replies] == [200, 401, 401, 400, 415, 405, 200]
    ids = [reply.headers["x-request-id"] for reply in replies]
    assert all(LOCAL_ID.fullmatch(request_id) for request_id in ids), ids
    assert len(set(ids)) == len(ids)
    access = captured.access()
    assert [line["request_id"] for line in access] == ids
    assert [line["status"] for line in access] == [reply.status for reply in replies]


def test_access_line_fields(api, captured):
    password = "Pw-" + secrets.token_hex(8)
    username = unique("logs")
    signup = api.post("/signup", {"username": username, "password": password,
                                  "role": "sender", "company_name": unique("Logs Co ")})
    assert signup.status == 201, signup
    user_id = signup.json["user_id"]
    token = api.login(username, password)
    delivery = api.new_delivery(token)
    missing = api.get(f"/deliveries/{2**62}", token=token)
    assert missing.status == 404 and missing.json["Code"] == "NotFoundError"
    unsupported = api.post("/deliveries", raw=b"x", headers={"Content-Type": "text/plain"},
                           token=token)
    assert unsupported.status == 415

    access = captured.access()
    for line in access:
        assert set(line) == ACCESS_FIELDS | ({"code"} if line["status"] >= 400 else set()), line
        assert line["level"] == "INFO" and line["logger"] == "delivery_api.access"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert [(line["method"], line["route"], line["status"], line["caller"], line.get("code"))
            for line in access] == [
        ("POST", "/signup", 201, None, None),
        ("POST", "/auth", 200, user_id, None),
        ("POST", "/deliveries", 201, user_id, None),
        # A refusal of the database's names no caller: the token is checked there.
        ("GET", "/deliveries/{did}", 404, None, "NotFoundError"),
        ("POST", "/deliveries", 415, None, "UnsupportedMediaType"),
    ]
    assert delivery["id"]


def test_no_secret_in_any_log_line(api, captured):
    password = "Pw-" + secrets.token_hex(8)
    wrong = "Wrong-" + secrets.token_hex(8)
    body_text = "Body-" + secrets.token_hex(8)
    username = unique("secretlog")
    assert api.post("/signup", {"username": username, "password": password, "role": "courier",
                                "first_name": "Ann", "last_name": "Lee",
                                "phone": "+1" + str(secrets.randbelow(10**11)).zfill(11),
                                "vehicle": "van"}).status == 201
    token = api.login(username, password)
    assert api.post("/auth", {"username": username, "password": wrong}).status == 401
    assert api.get("/me", token=token).status == 200
    assert api.get("/me", headers={"Authorization": token}).status == 200  # bare token
    assert api.post("/deliveries", {"size": "1x2x3", "cost": "1.00", "description": body_text},
                    token=token).status == 403  # a courier may not create one
    made = api.post("/api-keys", {"name": "log key", "scope": "read"}, token=token)
    assert made.status == 201
    key = made.json["key"]
    assert api.get("/me", token=key).status == 200
    assert api.post("/deliveries", {"size": "1x2x3", "cost": "1.00"}, token=key).status == 403
    assert api.delete(f"/api-keys/{made.json['id']}", token=token).status == 204
    assert api.get("/me", token=key).status == 401  # deleted
    assert api.delete("/auth", token=token).status == 204
    assert api.get("/me", token=token).status == 401  # revoked

    lines = captured.lines()  # each one JSON object
    assert len(captured.access()) == 13
    text = captured.text
    digests = [hashlib.sha256(secret.encode()).hexdigest() for secret in (token, key)]
    for secret in (password, wrong, token, key, key[3:], *digests, body_text, "Bearer",
                   "uthorization"):
        assert secret not in text, secret
    assert all(set(line) <= ACCESS_FIELDS | {"code"} for line in lines)


def test_a_lambda_process_writes_json_lines_and_nothing_else(database_url):
    """A fresh interpreter, as a Lambda container runs the app: no test
    harness handler, so the access log takes its direct path to stderr."""
    code = textwrap.dedent("""
        import json, sys
        import app
        from tools.lambda_events import LambdaContext, event
        for n, (method, path) in enumerate([("GET", "/"), ("GET", "/me"), ("PATCH", "/me")]):
            e = event(app.app.routes, method, path)
            e["requestContext"]["requestId"] = f"id-{n}"
            response = app.app(e, LambdaContext())
            print(json.dumps([response["statusCode"], response["headers"]["X-Request-Id"]]))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True,
                          env={**os.environ, "DATABASE_URL": database_url})
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers == [[200, "id-0"], [401, "id-1"], [405, "id-2"]]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["request_id"], line["status"], line.get("code")) for line in lines] == [
        ("id-0", 200, None), ("id-1", 401, "UnauthorizedError"),
        ("id-2", 405, "MethodNotAllowedError")]


def test_lambda_entry_point_answers_with_api_gateways_request_id(lambda_call, captured):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    ok = lambda_call("GET", "/", ids[0])
    unauthorized = lambda_call("GET", "/me", ids[1])
    unsupported = lambda_call("POST", "/deliveries", ids[2],
                              headers={"Content-Type": "text/plain"}, body="x")
    responses = [ok, unauthorized, unsupported]
    assert [r["statusCode"] for r in responses] == [200, 401, 415]
    assert [r["headers"]["X-Request-Id"] for r in responses] == ids
    access = captured.access()
    assert [line["request_id"] for line in access] == ids
    assert [line.get("code") for line in access] == [
        None, "UnauthorizedError", "UnsupportedMediaType"]


@pytest.mark.parametrize("sent", ["", "a" * 101, "id\nwith a newline", 'quote"d', "ünï"])
def test_a_request_id_that_is_not_an_id_is_replaced(lambda_call, captured, sent):
    # A client can override API Gateway's requestId (x-amzn-RequestId).
    response = lambda_call("GET", "/", sent)
    request_id = response["headers"]["X-Request-Id"]
    assert LOCAL_ID.fullmatch(request_id)
    assert captured.access()[0]["request_id"] == request_id


def test_database_warning_is_a_json_line_with_the_request_id(api, sender_token, captured,
                                                             monkeypatch):
    def refuse(**kwargs):
        raise psycopg2.OperationalError("could not connect to server\nsecond line")

    conn.drop()
    monkeypatch.setattr(conn, "_idle", [])
    monkeypatch.setattr(psycopg2, "connect", refuse)
    reply = api.get("/me", token=sender_token)
    assert reply.status == 503
    request_id = reply.headers["x-request-id"]
    warning, access = captured.lines()
    assert warning == {"level": "WARNING", "logger": "delivery_api.db",
                       "request_id": request_id, "method": "GET", "route": "/me",
                       "message": "database unavailable: cannot connect: "
                                  "could not connect to server"}
    assert access["request_id"] == request_id and access["code"] == "ServiceUnavailableError"
    assert sender_token not in captured.text


def test_unhandled_error_is_one_json_line_with_the_request_id(api, sender_token, captured,
                                                              monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    import app as app_module

    assert all(isinstance(handler.formatter, logs.JsonFormatter)
               for handler in app_module.app.log.handlers
               if type(handler) is logging.StreamHandler), \
        "app.py: web.log_as_json(app.log) after app.register_middleware(...)"
    monkeypatch.setattr(conn, "call", fail)
    reply = api.get("/me", token=sender_token)
    assert reply.status == 500
    request_id = reply.headers["x-request-id"]
    error, access = captured.lines()  # the traceback is inside one line
    assert error["level"] == "ERROR" and error["request_id"] == request_id
    assert error["route"] == "/me" and error["method"] == "GET"
    assert "RuntimeError: a bug\nover two lines" in error["exception"]
    assert access["request_id"] == request_id and access["code"] == "InternalServerError"


def test_access_line_is_the_same_through_any_other_handler(api, captured):
    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(self.format(record))

    records = Records()
    access_log = logging.getLogger("delivery_api.access")
    access_log.addHandler(records)
    try:
        reply = api.get("/")
    finally:
        access_log.removeHandler(records)
    (line,) = captured.text.splitlines()
    assert records.messages == [line]
    assert json.loads(line)["request_id"] == reply.headers["x-request-id"]


def test_a_line_outside_a_request_has_a_null_request_id(captured):
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        logging.getLogger("delivery_api.db").exception("not in a request:\n%s", "two lines")
    (text,) = captured.text.splitlines()
    line = json.loads(text)
    assert line["request_id"] is None and "route" not in line
    assert line["message"] == "not in a request:\ntwo lines"
    assert "ValueError: first\nsecond" in line["exception"]


@pytest.mark.parametrize("text", ['quo"te', "new\nline", "back\\slash", "tab\t", "\x00\x1f",
                                  "ünïcödé \u2028", '"}, "status": 200, "x": {"'])
def test_access_line_escapes_what_a_client_sends(captured, text):
    from chalicelib import web

    web.access_log(text, text, text, 405, 0.5, text, text)
    (line,) = captured.text.splitlines()
    assert line.isascii()
    assert json.loads(line) == {
        "level": "INFO", "logger": "delivery_api.access", "request_id": text, "method": text,
        "route": text, "status": 405, "duration_ms": 0.5, "caller": text, "code": text}


def test_a_lines_own_fields_join_its_object_without_replacing_the_standard_ones(captured):
    logging.getLogger("delivery_api.webhooks").info(
        "attempt failed", extra={"fields": {"webhook_delivery": 7, "level": "forged"}})
    (text,) = captured.text.splitlines()
    assert json.loads(text) == {"level": "INFO", "logger": "delivery_api.webhooks",
                                "request_id": None, "message": "attempt failed",
                                "webhook_delivery": 7}


def test_json_formatter_passes_a_prepared_line_through():
    formatter = logs.JsonFormatter(lambda: {"request_id": "r"})
    record = logging.LogRecord("delivery_api.access", logging.INFO, __file__, 1,
                               '{"a": 1}', None, None)
    record.json_line = '{"a": 1}'
    assert formatter.format(record) == '{"a": 1}'


def _server_lines(log_path, request_ids: set[str]) -> list[dict]:
    """The JSON lines of the local server's log with these ids (waits up to 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        text = log_path.read_text(errors="replace")
        found = []
        for line in text[:text.rfind("\n") + 1].splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") in request_ids:
                    found.append(entry)
        if len(found) >= len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_request_ids_over_http(live):
    base = live["base"]
    replies = [requests.get(f"{base}/", timeout=30), requests.get(f"{base}/me", timeout=30),
               requests.post(f"{base}/deliveries", data=b"x", timeout=30,
                             headers={"Content-Type": "text/plain"})]
    assert [reply.status_code for reply in replies] == [200, 401, 415]
    ids = [reply.headers["X-Request-Id"] for reply in replies]
    assert all(LOCAL_ID.fullmatch(request_id) for request_id in ids) and len(set(ids)) == 3
    lines = _server_lines(live["log"], set(ids))
    assert sorted(line["request_id"] for line in lines) == sorted(ids)
    assert all(line["logger"] == "delivery_api.access" for line in lines)


def test_local_refusals_before_the_app_carry_a_request_id(live):
    """chalice local's own answer for a path no route matches, and the local
    server's refusal of a body, answer before the app: they carry an id too
    (on AWS, API Gateway's answers carry x-amzn-RequestId)."""
    no_route = requests.get(f"{live['base']}/no/such/route", timeout=30)
    client = http.client.HTTPConnection(urlsplit(live["base"]).netloc, timeout=30)
    try:
        client.putrequest("POST", "/deliveries")
        client.putheader("Content-Type", "application/json")
        client.putheader("Content-Length", "999999999")
        client.endheaders()
        too_large = client.getresponse()
        too_large.read()
    finally:
        client.close()
    assert no_route.status_code in (403, 404) and too_large.status == 413
    ids = [no_route.headers.get("X-Request-Id"), too_large.getheader("X-Request-Id")]
    assert all(request_id and LOCAL_ID.fullmatch(request_id) for request_id in ids), \
        ("tools/local_server.py: X-Request-Id on chalice local's and its own refusals", ids)
    (refused,) = _server_lines(live["log"], {ids[1]})
    assert refused["status"] == 413 and refused["code"] == "PayloadTooLargeError"


def test_the_local_server_writes_one_line_per_request(live):
    """`make run`'s server: the JSON access line only, not also http.server's
    own "GET /... HTTP/1.1" 401 line."""
    import time

    marker = f"/deliveries/{secrets.randbelow(10**9) + 10**9}"
    ids = []
    for _ in range(3):
        reply = live["api"].get(marker)
        assert reply.status == 401
        ids.append(reply.headers["x-request-id"])
    log_path = live["log"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if all(request_id in text for request_id in ids):
            break
        time.sleep(0.05)
    lines = text.splitlines()
    for request_id in ids:
        (line,) = [line for line in lines if request_id in line]
        assert json.loads(line)["route"] == "/deliveries/{did}"
    assert not [line for line in lines if marker in line]
