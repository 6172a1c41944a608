"""The database wrapper: one lazy connection per thread, one statement per call.

Nothing connects at import time. A connection is opened on first use, kept for
the next (warm) invocation on the same thread, checked without a round trip
before reuse, and dropped when it breaks, so the next request opens a new one.
A host that serves many HTTP connections on many threads (the local server,
tools/local_server.py) calls release() after each request: the connection goes
to a small process-wide idle pool, which the next request on any thread takes
from before it opens one. Lambda never calls it: one connection per instance.
Every call is a single `SELECT * FROM fn(...)` in autocommit mode: no BEGIN,
no COMMIT, one round trip. A call that also refreshes an API key's
last_used_at joins touch_api_key(...) in the same statement.
"""

import logging
import os
import select
import threading

import psycopg2
import psycopg2.extensions

from chalicelib import errors
from chalicelib.errors import ServiceUnavailableError

_local = threading.local()
_log = logging.getLogger("delivery_api.db")
_sql_cache: dict[tuple[str, int, bool], str] = {}
# Released connections, most recently used last; at most DB_IDLE_CONNECTIONS.
_idle: list[psycopg2.extensions.connection] = []
_idle_lock = threading.Lock()


# No DATABASE_URL under `chalice local` and no embedded server running.
NO_LOCAL_DATABASE = ("database: unavailable: DATABASE_URL is not set and no local database "
                     "is running; start one with `make run` (or set DATABASE_URL)")


def _local_dsn() -> str:
    """Under `chalice local` (which sets AWS_CHALICE_CLI_MODE) without
    DATABASE_URL, PGHOST or PGSERVICE: the embedded server `make run` started,
    or 503 saying what to run. Elsewhere "": libpq's defaults (PGHOST and the
    rest), as on AWS."""
    if os.environ.get("AWS_CHALICE_CLI_MODE") != "true" or os.environ.get("PGHOST") \
            or os.environ.get("PGSERVICE"):
        return ""
    from chalicelib import config

    dsn = config.local_database_dsn()
    if dsn is None:
        raise ServiceUnavailableError(NO_LOCAL_DATABASE)
    return dsn


def _settings() -> dict[str, object]:
    dsn = os.environ.get("DATABASE_URL", "") or _local_dsn()
    kwargs: dict[str, object] = {
        "connect_timeout": int(os.environ.get("DB_CONNECT_TIMEOUT", "3")),
        "application_name": "delivery-api",
        # A peer that vanishes mid-request (TCP only) is noticed in seconds,
        # not after the Lambda timeout.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(os.environ.get("DB_TCP_USER_TIMEOUT_MS", "10000")),
    }
    timeout_ms = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000"))
    if timeout_ms > 0:
        kwargs["options"] = f"-c statement_timeout={timeout_ms}"
    if os.environ.get("DB_IAM_AUTH", "").lower() in ("1", "true", "yes"):
        from chalicelib.rds_iam import iam_password  # boto3 only in this mode

        kwargs["password"] = iam_password()
    return {"dsn": dsn, **kwargs}


# JSON built by the database is passed through to the client as text: json
# columns (type oid 114; the functions return no json[]) are not parsed. This is
# what psycopg2.extras' register_default_json(loads=<identity>) does, without
# importing extras, which would add a tenth to the cold start.
_JSON_AS_TEXT = psycopg2.extensions.new_type((114,), "JSON_AS_TEXT", lambda value, cur: value)


def _open() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(**_settings())
    conn.autocommit = True
    psycopg2.extensions.register_type(_JSON_AS_TEXT, conn)
    return conn


def _is_stale(conn: psycopg2.extensions.connection) -> bool:
    """An idle connection with something to read was closed by the server."""
    if conn.closed:
        return True
    try:
        # poll(), not select(): no limit on the descriptor's number.
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def connection() -> psycopg2.extensions.connection:
    """This thread's connection, opened or reopened as needed; 503 if it can't be."""
    conn = getattr(_local, "conn", None)
    if conn is not None and _is_stale(conn):
        drop()
        conn = None
    if conn is None:
        conn = _take_idle() if _idle else None
        if conn is None:
            try:
                conn = _open()
            except psycopg2.Error as exc:
                _log.warning("database unavailable: cannot connect: %s", _first_line(exc))
                raise ServiceUnavailableError("database: unavailable") from exc
        _local.conn = conn
    return conn


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _close(conn: psycopg2.extensions.connection) -> None:
    try:
        conn.close()
    except psycopg2.Error:
        pass


def drop() -> None:
    """Closes and forgets this thread's connection."""
    conn = getattr(_local, "conn", None)
    _local.conn = None
    if conn is not None:
        _close(conn)


def idle_limit() -> int:
    """How many released connections the idle pool keeps (DB_IDLE_CONNECTIONS)."""
    return int(os.environ.get("DB_IDLE_CONNECTIONS", "4"))


def release() -> None:
    """Hands this thread's connection to the idle pool, or closes it when the
    pool is full or the connection is not idle. For a host that serves each
    HTTP connection on its own thread, so that idle clients pin no database
    backend; a thread that calls nothing keeps its connection, as on Lambda."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        return
    _local.conn = None
    if not conn.closed and (conn.info.transaction_status
                            == psycopg2.extensions.TRANSACTION_STATUS_IDLE):
        with _idle_lock:
            if len(_idle) < idle_limit():
                _idle.append(conn)
                return
    _close(conn)


def _take_idle() -> psycopg2.extensions.connection | None:
    """The most recently released connection that the server has not closed."""
    while True:
        with _idle_lock:
            if not _idle:
                return None
            conn = _idle.pop()
        if not _is_stale(conn):
            return conn
        _close(conn)


def _sql(fn: str, nargs: int, touch: bool) -> str:
    key = (fn, nargs, touch)
    sql = _sql_cache.get(key)
    if sql is None:
        if not fn.isidentifier():
            raise ValueError(f"not a function name: {fn!r}")
        call = f"{fn}({', '.join(['%s'] * nargs)})"
        sql = _sql_cache[key] = (f"SELECT f.* FROM {call} f CROSS JOIN touch_api_key(%s)"
                                 if touch else f"SELECT * FROM {call}")
    return sql


def rows(fn: str, *args: object, touch: bytes | None = None) -> list[tuple]:
    """All rows of stored function `fn` called with bound `args` (and, in the
    same statement, touch_api_key(touch) when touch is given). A database
    error becomes what chalicelib.errors' table says; one it does not know is
    raised as it is."""
    sql = _sql(fn, len(args), touch is not None)
    if touch is not None:
        args = (*args, touch)
    attempt = 1
    while True:
        conn = connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        except psycopg2.Error as exc:
            code = exc.pgcode or (errors.CONNECTION_LOST if isinstance(
                exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) else "")
            decided = errors.outcome(code)
            if decided is None:
                raise
            if decided.retry and attempt == 1:
                attempt += 1
                continue
            if decided.reconnect:
                _log.warning("database unavailable: %s %s", code, _first_line(exc))
                drop()
            message = decided.message or exc.diag.message_primary or "invalid input"
            raise decided.error(message) from None


def call(fn: str, *args: object, touch: bytes | None = None) -> tuple | None:
    """The first row that stored function `fn` returns (JSON columns as text)."""
    result = rows(fn, *args, touch=touch)
    return result[0] if result else None
