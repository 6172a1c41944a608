"""scheme.sql is a migration: applying it again keeps every row."""

import re

from tools import devdb

TABLES = ("users", "senders", "couriers", "sessions", "deliveries")


def _snapshot(db) -> dict[str, str]:
    out = {}
    with db.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')),"
                        f" count(*) FROM {table} t")
            digest, count = cur.fetchone()
            out[table] = f"{count}:{digest}"
    return out


def test_reapplying_the_schema_keeps_users_deliveries_and_sessions(api, db, database_url):
    sender = api.new_sender()
    courier = api.new_courier()
    delivery = api.new_delivery(sender["token"], description="kept")
    assert api.put(f"/assign/{delivery['id']}/{courier['courier_id']}",
                   token=sender["token"]).status == 200
    before = _snapshot(db)
    assert all(not v.startswith("0:") for v in before.values()), before

    devdb.apply_sql(database_url, devdb.SCHEME)
    devdb.apply_sql(database_url, devdb.SCHEME)
    devdb.apply_sql(database_url, devdb.DEMO)

    assert _snapshot(db) == before
    # The session survived: the same token still works, and sees the delivery.
    reply = api.get(f"/deliveries/{delivery['id']}", token=sender["token"])
    assert reply.status == 200 and reply.json["description"] == "kept"
    assert api.get("/me", token=courier["token"]).status == 200


def test_schema_never_drops_or_truncates_tables():
    sql = devdb.SCHEME.read_text().upper()
    code = "\n".join(line.split("--")[0] for line in sql.splitlines())
    assert not re.search(r"\bDROP\s+(TABLE|SCHEMA|DATABASE)\b", code)
    assert not re.search(r"\bTRUNCATE\b", code)
    assert not re.search(r"\bDELETE\s+FROM\s+(USERS|SENDERS|COURIERS|DELIVERIES)\b", code)


def test_reading_functions_are_not_immutable(db):
    """A function that reads tables must not claim IMMUTABLE (the first version did)."""
    with db.cursor() as cur:
        cur.execute("""
            SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.provolatile = 'i'
               AND p.prosrc ~* '\\m(from|update|insert|delete)\\M'""")
        assert cur.fetchall() == []


def test_demo_data_is_not_part_of_the_schema():
    scheme, demo = devdb.SCHEME.read_text(), devdb.DEMO.read_text()
    assert "'acme'" in demo and "scrypt$" in demo
    assert "'acme'" not in scheme and "scrypt$16384" not in scheme
