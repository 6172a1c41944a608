"""`make migrate` applies scheme.sql to DATABASE_URL, and applying it again loses nothing."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from tools import devdb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent


def make_migrate(url: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", "migrate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def rows(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_make_migrate_twice_keeps_the_data(server_url):
    with devdb.scratch_database(server_url) as url:
        first = make_migrate(url)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "scheme.sql applied" in first.stdout
        # Production data, written the way the app writes it.
        rows(url, "SELECT * FROM signup_sender('kept_user', 'scrypt$x', 'Kept Co')")
        token = b"\x01" * 32
        rows(url, f"SELECT * FROM login_record('kept_user', (SELECT id FROM users WHERE"
                  f" username = 'kept_user'), true, '\\x{token.hex()}'::bytea, 3600, NULL)")
        rows(url, f"SELECT * FROM create_delivery('\\x{token.hex()}'::bytea,"
                  " 1, 2, 3, 9.99, 'kept', NULL, NULL, NULL, NULL, NULL)")
        before = rows(url, "SELECT u.username, s.company_name, d.cost, d.description"
                           "  FROM users u JOIN senders s ON s.user_id = u.id"
                           "  JOIN deliveries d ON d.sender_id = s.id")
        assert len(before) == 1

        second = make_migrate(url)
        assert second.returncode == 0, second.stdout + second.stderr

        after = rows(url, "SELECT u.username, s.company_name, d.cost, d.description"
                          "  FROM users u JOIN senders s ON s.user_id = u.id"
                          "  JOIN deliveries d ON d.sender_id = s.id")
        assert after == before
        # The demo users are never part of a migration.
        assert rows(url, "SELECT count(*) FROM users WHERE username IN ('sender', 'courier')") \
            == [(0,)]


def test_make_migrate_without_database_url_refuses():
    result = make_migrate(None)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
