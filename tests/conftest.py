"""Fixtures: a real PostgreSQL, the app in-process, and the app over HTTP.

Without DATABASE_URL the suite starts a throwaway embedded server (deleted
afterwards). With DATABASE_URL it creates a scratch database on that server,
drops it afterwards, and touches nothing else.
"""

import atexit
import itertools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from tests import fast_hash
from tools import devdb, local_process

ROOT = Path(__file__).resolve().parent.parent
_serial = itertools.count(1)
# Every test comes from one address: the per-address limit on logins and
# signups is off unless a test switches it on (tests/test_abuse_limits.py).
os.environ["AUTH_RATE_PER_MINUTE"] = "0"
# Webhooks: a key for the suite, and receivers on 127.0.0.1 over plain http.
os.environ["WEBHOOK_SIGNING_KEY"] = secrets.token_urlsafe(32)
os.environ["WEBHOOK_ALLOW_HTTP"] = "true"
fast_hash.apply()  # `make check` only: see tests/fast_hash.py


@pytest.fixture(autouse=True)
def _not_in_the_last_minute_of_a_utc_day() -> None:
    """The daily assignment limit counts per UTC day: no test starts in a day's
    last minute, so none sees the count start again halfway (a test takes seconds)."""
    left = 86400 - time.time() % 86400
    if left < 60:
        time.sleep(left + 0.05)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server the suite may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    pgdata = Path(tempfile.mkdtemp(prefix="delivery-test-")) / "pgdata"
    server = devdb.start_embedded(pgdata, keep=False)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database with scheme.sql and demo.sql applied; the app uses it."""
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        os.environ["DATABASE_URL"] = url
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    """A direct autocommit connection for checks behind the API's back."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def assert_error(reply, status: int, field: str) -> None:
    """A refusal in Chalice's error body whose message names the field."""
    assert reply.status == status, reply
    assert set(reply.json) == {"Code", "Message"}, reply
    assert field in reply.json["Message"], reply


def unique(prefix: str) -> str:
    return f"{prefix}{next(_serial)}_{secrets.token_hex(3)}"


def unique_phone() -> str:
    return "+1" + str(secrets.randbelow(10**11)).zfill(11)


class Api:
    """A small JSON client over chalice.test.Client or over real HTTP."""

    def __init__(self, send):
        self._send = send

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None):
        all_headers = {"Content-Type": "application/json"} if (body is not None or raw) else {}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        status, response_headers, content = self._send(method, path, all_headers, data)
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content.decode(errors="replace")
        return Reply(status, {k.lower(): v for k, v in response_headers.items()}, parsed, content)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- the flows most tests need

    def login(self, username: str, password: str) -> str:
        reply = self.post("/auth", {"username": username, "password": password})
        assert reply.status == 200, reply
        return reply.json["token"]

    def new_sender(self) -> dict[str, Any]:
        username, password = unique("s"), "correct horse"
        reply = self.post("/signup", {"username": username, "password": password,
                                      "role": "sender", "company_name": unique("Co ")})
        assert reply.status == 201, reply
        return {**reply.json, "username": username, "password": password,
                "token": self.login(username, password)}

    def new_courier(self) -> dict[str, Any]:
        username, password = unique("c"), "correct horse"
        reply = self.post("/signup", {"username": username, "password": password,
                                      "role": "courier", "first_name": "Ann",
                                      "last_name": "Lee", "phone": unique_phone(),
                                      "vehicle": "van"})
        assert reply.status == 201, reply
        return {**reply.json, "username": username, "password": password,
                "token": self.login(username, password)}

    def new_delivery(self, token: str, cost: Any = "10.00", **extra) -> dict[str, Any]:
        reply = self.post("/deliveries", {"size": "10x20x30", "cost": cost, **extra},
                          token=token)
        assert reply.status == 201, reply
        return reply.json


class Reply:
    def __init__(self, status: int, headers: dict[str, str], json_body: Any, content: bytes):
        self.status, self.headers, self.json, self.content = status, headers, json_body, content

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.content[:300]!r}>"


@pytest.fixture(scope="session")
def chalice_client(database_url: str):
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield client


@pytest.fixture(scope="session")
def api(chalice_client) -> Api:
    """The app in-process through chalice.test.Client."""

    def send(method, path, headers, data):
        response = chalice_client.http.request(method, path, headers=headers, body=data)
        return response.status_code, response.headers, response.body

    return Api(send)


@pytest.fixture(scope="session")
def sender_token(api: Api) -> str:
    return api.login("sender", "pass")


@pytest.fixture(scope="session")
def courier_token(api: Api) -> str:
    return api.login("courier", "pass")


def start_chalice_local(database_url: str, extra_env: dict[str, str] | None = None):
    """A real local server process (`make run`'s: Chalice's dev server as
    `chalice local` runs it, with tools/local_server.py's guards); returns
    (process, base_url, log_path)."""
    handle, name = tempfile.mkstemp(prefix="chalice-local-", suffix=".log")
    os.close(handle)
    log_path = Path(name)
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    module = "tests.fast_hash" if fast_hash.ON else "tools.local_server"
    with log_path.open("wb") as log:
        try:
            process, base = local_process.start_local_server(env, module, log, seconds=60)
        except RuntimeError as exc:
            text = log_path.read_text()
            log_path.unlink()
            raise RuntimeError(f"chalice local did not start ({exc}):\n{text}") from None
    process.log_path = log_path  # removed when the test run ends (see stop())
    return process, base, log_path


def _remove_logs(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


_stopped_logs: list[Path] = []
atexit.register(_remove_logs, _stopped_logs)


def stop(process: subprocess.Popen) -> None:
    """Stops a process of start_chalice_local. Its log stays readable (a test
    may check it after the stop) and is removed when the test run ends."""
    local_process.stop_process(process)
    log_path = getattr(process, "log_path", None)
    if log_path is not None:
        _stopped_logs.append(log_path)


def http_api(base: str) -> Api:
    session = requests.Session()

    def send(method, path, headers, data):
        response = session.request(method, base + path, headers=headers, data=data or None,
                                    timeout=30)
        return response.status_code, dict(response.headers), response.content

    return Api(send)


@pytest.fixture(scope="session")
def live(database_url: str) -> Iterator[dict[str, Any]]:
    """The app served by a real `chalice local` process."""
    process, base, log_path = start_chalice_local(database_url)
    try:
        yield {"base": base, "api": http_api(base), "log": log_path, "process": process}
    finally:
        stop(process)


_SLOW_MODULE = "\npytestmark = pytest.mark.slow\n"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m "not slow"` (make check) a module that is slow as a whole is not
    even imported: its imports (schemathesis, hypothesis) are the heavy ones."""
    if config.getoption("markexpr") != "not slow" or collection_path.suffix != ".py":
        return None
    return _SLOW_MODULE in collection_path.read_text(encoding="utf-8") or None
