"""The stops in the table: its checks hold for any writer, distance_m follows
the stored locations, a stop's text reaches the database unchanged whatever
characters it holds, and what PostgreSQL reads and plans again for every
statement that writes deliveries (its checks and computed columns) stays small
(schema step 12)."""

import math

import psycopg2
import psycopg2.errors
import pytest

from tests.test_stops import create, full_stops


@pytest.fixture(scope="module")
def cast(api):
    return {"sender": api.new_sender()}


@pytest.mark.parametrize("change, constraint", [
    ("pickup_city = NULL", "deliveries_pickup_whole"),
    ("pickup_country = 'de'", "deliveries_pickup_whole"),
    ("pickup_lat = NULL", "deliveries_pickup_whole"),
    ("dropoff_contact_phone = '4930123'", "deliveries_dropoff_whole"),
    ("dropoff_postal_code = '80331!'", "deliveries_dropoff_whole"),
    ("dropoff_window_end = dropoff_window_start", "deliveries_dropoff_whole"),
    ("dropoff_line1 = NULL", "deliveries_dropoff_whole"),
    # A whole dropoff removed while it still requires a PIN.
    (", ".join(f"dropoff_{c} = NULL" for c in (
        "line1", "line2", "city", "state", "postal_code", "country", "lat", "lng",
        "contact_name", "contact_phone", "instructions", "window_start", "window_end")),
     "deliveries_dropoff_whole"),
    ("pickup_line1 = NULL, pickup_line2 = NULL, pickup_city = NULL, pickup_state = NULL,"
     " pickup_postal_code = NULL, pickup_country = NULL, pickup_lat = NULL,"
     " pickup_lng = NULL, pickup_contact_name = NULL, pickup_contact_phone = NULL,"
     " pickup_instructions = NULL, pickup_window_start = NULL,"
     " pickup_window_end = NULL, status = 'picked_up'", "deliveries_status_facts"),
])
def test_a_write_behind_the_functions_back_meets_the_tables_checks(api, cast, db, change,
                                                                   constraint):
    made = create(api, cast, **full_stops())
    with db.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation) as raised:
        cur.execute(f"UPDATE deliveries SET {change} WHERE id = %s", (made["id"],))
    assert raised.value.diag.constraint_name == constraint


def test_a_whole_stop_removed_behind_the_functions_back_is_accepted(api, cast, db):
    body = full_stops()
    body["dropoff"]["requires_pin"] = False
    made = create(api, cast, **body)
    with db.cursor() as cur:
        cur.execute("""UPDATE deliveries SET dropoff_line1 = NULL, dropoff_line2 = NULL,
                           dropoff_city = NULL, dropoff_state = NULL, dropoff_postal_code = NULL,
                           dropoff_country = NULL, dropoff_lat = NULL, dropoff_lng = NULL,
                           dropoff_contact_name = NULL, dropoff_contact_phone = NULL,
                           dropoff_instructions = NULL, dropoff_window_start = NULL,
                           dropoff_window_end = NULL
                        WHERE id = %s RETURNING dropoff_json, distance_m""", (made["id"],))
        assert cur.fetchone() == (None, None)


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> int:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin(math.radians(lat2 - lat1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2)
    return round(2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h))))


def test_distance_follows_a_location_changed_behind_the_functions_back(api, cast, db):
    made = create(api, cast, **full_stops())
    assert made["distance_m"] == _haversine_m(52.517037, 13.38886, 48.137154, 11.576124)
    with db.cursor() as cur:
        cur.execute("UPDATE deliveries SET dropoff_lat = 52.520008, dropoff_lng = 13.404954"
                    " WHERE id = %s RETURNING distance_m", (made["id"],))
        assert cur.fetchone()[0] == _haversine_m(52.517037, 13.38886, 52.520008, 13.404954)
        cur.execute("UPDATE deliveries SET dropoff_lat = NULL, dropoff_lng = NULL"
                    " WHERE id = %s RETURNING distance_m", (made["id"],))
        assert cur.fetchone()[0] is None


def test_quotes_backslashes_commas_and_parentheses_reach_the_database_as_sent(api, cast):
    """A new delivery's stops travel as the text form of a composite value
    (chalicelib/stops.py, composite)."""
    tricky = '"(a,b)" \\ \\" \'x\' , ) ( äß €'
    body = full_stops()
    for kind in ("pickup", "dropoff"):
        body[kind]["address"].update(line1=tricky, line2=tricky + "2", city=tricky + "3",
                                     state=tricky + "4")
        body[kind]["contact"]["name"] = tricky + "5"
        body[kind]["instructions"] = tricky + "\nline\ttab"
    made = create(api, cast, **body)
    again = api.get(f"/deliveries/{made['id']}", token=cast["sender"]["token"]).json
    for answer in (made, again):
        for kind in ("pickup", "dropoff"):
            address = answer[kind]["address"]
            assert (address["line1"], address["line2"], address["city"], address["state"]) \
                == (tricky, tricky + "2", tricky + "3", tricky + "4")
            assert answer[kind]["contact"]["name"] == tricky + "5"
            assert answer[kind]["instructions"] == tricky + "\nline\ttab"


def test_a_window_bound_keeps_its_fraction_of_a_second(api, cast):
    body = full_stops()
    start = body["pickup"]["window"]["start"]
    body["pickup"]["window"]["start"] = start[:-1] + ".123456Z"
    body["dropoff"]["window"]["end"] = body["dropoff"]["window"]["end"][:-1] + ".5Z"
    made = create(api, cast, **body)
    assert made["pickup"]["window"]["start"] == start[:-1] + ".123456Z"
    assert made["dropoff"]["window"]["end"].endswith(".5Z")


def test_what_every_write_of_deliveries_reads_and_plans_again_stays_small(db):
    """PostgreSQL reads each CHECK and computed column of a table from its
    stored node text, and plans it, for every statement that writes the table.
    The stops' checks written out inline were 15 kB of it each, the haversine
    8 kB; as calls of PL/pgSQL functions, each is under 3 kB (docs/stops.md,
    "Representation")."""
    with db.cursor() as cur:
        cur.execute("""
            SELECT conname, octet_length(conbin) FROM pg_constraint
             WHERE conrelid = 'deliveries'::regclass AND contype = 'c'
            UNION ALL
            SELECT a.attname, octet_length(d.adbin) FROM pg_attrdef d
              JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
             WHERE d.adrelid = 'deliveries'::regclass AND a.attgenerated <> ''""")
        sizes = dict(cur.fetchall())
    assert {"deliveries_pickup_whole", "deliveries_dropoff_whole", "deliveries_status_facts",
            "distance_m"} <= set(sizes), sizes
    assert all(size < 4_000 for size in sizes.values()), sizes
