"""The synthetic data set, generated inside PostgreSQL (generate_series, no HTTP).

1,000 senders and 500 couriers, each with a live session whose bearer token is
known (`token_for(user_id)`); deliveries spread over the 90 days before today's
UTC midnight, each with the history of the lifecycle it went through. Sender 1
is the big customer (`BIG_SENDER_SHARE` of all deliveries, so that its list is
more than 500,000 deep at 1M); the rest are spread evenly. Nothing is assigned,
picked up, delivered or cancelled today, so every courier starts the day with
room for the daily limit.

Statuses (`deliveries_status_facts` holds for every row): a delivery older than
three days is delivered (78 %), failed (6 %), cancelled after it was assigned
(3 %) or before (4 %), or left assigned (4 %) or created (5 %); of the last three
days, a quarter is still created, and the rest assigned, picked up, delivered or
failed. Each step follows the previous one by a few hours at most (and before
today's midnight): assigned within 6 hours of creation, picked up within 4 of
assignment, delivered or failed within 8 of pickup, cancelled within a day.

Stops: every other delivery has a pickup and a dropoff in Berlin, with locations
(so a distance), a dropoff window, and contacts and instructions unless it has been
final for 30 days (the retention sweep would have erased them); 30 % of those
dropoffs require a PIN.

Events: every delivery gets the events of its history (delivery.created, then
.assigned, .picked_up, .delivered or .failed, or .cancelled), each with the
delivery as it was right after that change, as record_event writes them; ids
follow time within each growth step (the feed is read by id).

Only the login user (`LOGIN_USERNAME`) gets a real scrypt hash; the others get a
well-formed hash that matches no password.
"""

import hashlib
import time
from typing import Any

import psycopg2.errors
import psycopg2.extensions

SENDERS = 1000
COURIERS = 500
BIG_SENDER_SHARE = 0.6  # sender 1's share of the deliveries: 600,000 of 1M
LOGIN_USERNAME = "bench_login"
LOGIN_PASSWORD = "bench password"
# The deliveries that the action benchmarks consume are made for this sender
# and courier (bench/endpoints.py), apart from the ones whose lists are read.
SUPPLY_SENDER = 2
SUPPLY_COURIER = 2
_NO_PASSWORD_HASH = ("scrypt$16384$8$5$AAAAAAAAAAAAAAAAAAAAAA==$"
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


def token_for(user_id: int) -> str:
    """The bearer token of a user's bench session (40 lowercase hex)."""
    return hashlib.sha256(f"bench:{user_id}".encode()).hexdigest()[:40]


def sender_user(sender_id: int) -> int:
    return sender_id


def courier_user(courier_id: int) -> int:
    return SENDERS + courier_id


_PEOPLE = """
INSERT INTO users (id, username, password_hash, role, created_at)
SELECT g, CASE WHEN g <= %(senders)s THEN 'sender' || g ELSE 'courier' || (g - %(senders)s) END,
       %(no_hash)s, CASE WHEN g <= %(senders)s THEN 'sender' ELSE 'courier' END,
       now() - interval '400 days'
  FROM generate_series(1, %(senders)s + %(couriers)s) g;
INSERT INTO senders (id, user_id, company_name)
SELECT g, g, 'Company ' || g FROM generate_series(1, %(senders)s) g;
INSERT INTO couriers (id, user_id, first_name, last_name, phone, vehicle)
SELECT g, %(senders)s + g, 'First' || g, 'Last' || g, '+1555' || lpad(g::text, 7, '0'),
       (ARRAY['bicycle', 'scooter', 'motorcycle', 'car', 'van', 'truck'])[1 + g %% 6]
  FROM generate_series(1, %(couriers)s) g;
-- The login user: an extra sender with a real password hash.
INSERT INTO users (id, username, password_hash, role)
VALUES (%(senders)s + %(couriers)s + 1, %(login_username)s, %(login_hash)s, 'sender');
INSERT INTO senders (id, user_id, company_name)
VALUES (%(senders)s + 1, %(senders)s + %(couriers)s + 1, 'Login Company');
-- One live session per user; the token is the first 40 hex digits of sha256('bench:<id>').
INSERT INTO sessions (token_sha256, user_id, expires_at)
SELECT sha256(convert_to(left(encode(sha256(convert_to('bench:' || g, 'UTF8')), 'hex'), 40),
                         'UTF8')),
       g, now() + interval '30 days'
  FROM generate_series(1, %(senders)s + %(couriers)s) g;
SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
SELECT setval(pg_get_serial_sequence('senders', 'id'), (SELECT max(id) FROM senders));
SELECT setval(pg_get_serial_sequence('couriers', 'id'), (SELECT max(id) FROM couriers));
"""

# Rows first..last; created_at uniform over the 90 days before today's UTC
# midnight, the later steps a few hours apart and before that midnight (each
# one a random share of the time left, so never today). Inserted in created_at
# order, so that ids and the heap follow time as in a live table (each growth
# step covers the 90 days again). Ids come from the identity sequence, so rows
# that the create benchmark added never clash. The random draws all happen in
# subquery r (a subquery with volatile outputs is not flattened: each is drawn
# once per row); the rest is arithmetic on them.
_DELIVERIES = """
SELECT setseed(%(seed)s);
INSERT INTO deliveries (sender_id, courier_id, length_cm, width_cm, height_cm, cost,
                        description, status, created_at, assigned_at, picked_up_at,
                        delivered_at, updated_at,
                        pickup_line1, pickup_city, pickup_postal_code, pickup_country,
                        pickup_lat, pickup_lng, pickup_contact_name, pickup_contact_phone,
                        pickup_instructions, dropoff_line1, dropoff_line2, dropoff_city,
                        dropoff_postal_code, dropoff_country, dropoff_lat, dropoff_lng,
                        dropoff_contact_name, dropoff_contact_phone, dropoff_instructions,
                        dropoff_window_start, dropoff_window_end, dropoff_requires_pin)
SELECT r.sender_id,
       CASE WHEN a.assigned_at IS NOT NULL THEN r.courier_id END,
       r.length_cm, r.width_cm, r.height_cm, r.cost,
       'parcel ' || r.g,
       CASE WHEN s.stage = 'cancelled_assigned' THEN 'cancelled' ELSE s.stage END,
       r.created_at, a.assigned_at, p.picked_up_at,
       CASE WHEN s.stage = 'delivered' THEN f.done_at END,
       coalesce(f.done_at, p.picked_up_at, a.assigned_at, r.created_at),
       -- Every other delivery has both stops; their contacts and instructions
       -- are gone once it has been final for CONTACT_RETENTION_DAYS (30).
       t.line1, t.city, t.postal, t.country, t.lat, t.lng, t.name, t.phone, t.note,
       t.line1 || ' b', t.line2, t.city, t.postal, t.country, t.lat + 0.02 * r.x2,
       t.lng + 0.03 * r.x3, t.name || ' R', t.phone2, t.note, t.start, t.start + interval '2 hours',
       coalesce(r.x4 < 0.3 AND t.line1 IS NOT NULL, false)
  FROM (SELECT g,
               CASE WHEN random() < %(big)s THEN 1
                    ELSE 2 + floor(random() * (%(senders)s - 1))::int END AS sender_id,
               1 + floor(random() * %(couriers)s)::int AS courier_id,
               1 + floor(random() * 100)::int AS length_cm,
               1 + floor(random() * 100)::int AS width_cm,
               1 + floor(random() * 100)::int AS height_cm,
               round((5 + random() * 95)::numeric, 2) AS cost,
               %(today)s - interval '90 days' * random() - interval '1 second' AS created_at,
               random() AS u, random() AS x1, random() AS x2, random() AS x3, random() AS x4
          FROM generate_series(%(first)s, %(last)s) g) r
 CROSS JOIN LATERAL (
        SELECT CASE WHEN r.created_at >= %(today)s - interval '3 days' THEN
                    CASE WHEN r.u < 0.25 THEN 'created' WHEN r.u < 0.50 THEN 'assigned'
                         WHEN r.u < 0.70 THEN 'picked_up' WHEN r.u < 0.97 THEN 'delivered'
                         ELSE 'failed' END
               ELSE CASE WHEN r.u < 0.78 THEN 'delivered' WHEN r.u < 0.84 THEN 'failed'
                         WHEN r.u < 0.87 THEN 'cancelled_assigned' WHEN r.u < 0.91 THEN 'cancelled'
                         WHEN r.u < 0.95 THEN 'assigned' ELSE 'created' END
               END AS stage) s
 CROSS JOIN LATERAL (
        SELECT CASE WHEN s.stage NOT IN ('created', 'cancelled')
                    THEN r.created_at + least(interval '6 hours' * r.x1,
                                              (%(today)s - r.created_at) * r.x1) END
               AS assigned_at) a
 CROSS JOIN LATERAL (
        SELECT CASE WHEN s.stage IN ('picked_up', 'delivered', 'failed')
                    THEN a.assigned_at + least(interval '4 hours' * r.x2,
                                               (%(today)s - a.assigned_at) * r.x2) END
               AS picked_up_at) p
 CROSS JOIN LATERAL (
        -- delivered_at, the time of failure, or the time of cancellation
        SELECT CASE WHEN s.stage IN ('delivered', 'failed')
                    THEN p.picked_up_at + least(interval '8 hours' * r.x3,
                                                (%(today)s - p.picked_up_at) * r.x3)
                    WHEN s.stage LIKE 'cancelled%%'
                    THEN coalesce(a.assigned_at, r.created_at)
                         + least(interval '1 day' * r.x4,
                                 (%(today)s - coalesce(a.assigned_at, r.created_at)) * r.x4)
               END AS done_at) f
 LEFT JOIN LATERAL (
        SELECT 'Strasse ' || r.g AS line1, 'Hinterhaus' AS line2, 'Berlin' AS city,
               lpad((10115 + r.g %% 900)::text, 5, '0') AS postal, 'DE' AS country,
               round((52.40 + 0.2 * r.x1)::numeric, 6) AS lat,
               round((13.25 + 0.3 * r.x2)::numeric, 6) AS lng,
               CASE WHEN keep THEN 'Dock ' || r.g END AS name,
               CASE WHEN keep THEN '+4930' || (1000000 + r.g %% 8000000) END AS phone,
               CASE WHEN keep THEN '+4940' || (1000000 + r.g %% 8000000) END AS phone2,
               CASE WHEN keep THEN 'Ring twice' END AS note,
               r.created_at + interval '1 hour' AS start
          FROM (SELECT f.done_at IS NULL
                       OR f.done_at > %(today)s - interval '30 days' AS keep) k
         WHERE r.g %% 2 = 0) t ON true
 ORDER BY r.created_at;
"""

# The history of the deliveries with ids above %(after_id)s: the events that
# record_event would have written along the way, in time order. Each event's
# data is the delivery as it was right after the change (delivery_text's
# format, built from the row's parts, each formatted once per delivery).
EVENTS = """
INSERT INTO delivery_events (type, delivery_id, sender_id, courier_id, status, at,
                             actor_role, actor_id, feed_key, data)
SELECT e.type, d.id, d.sender_id, e.courier_id, e.status, e.at, e.actor_role,
       CASE e.actor_role WHEN 'sender' THEN d.sender_id ELSE d.courier_id END,
       0,  -- a history written before the load, in id order (as schema step 7 keys it)
       concat('{"id":', d.id, ',"sender_id":', d.sender_id,
              ',"courier_id":', coalesce(e.courier_id::text, 'null'),
              d.middle, e.status,
              '","created_at":"', d.created_text,
              '","assigned_at":', CASE WHEN e.n >= 2 AND e.courier_id IS NOT NULL
                                       THEN '"' || d.assigned_text || '"' ELSE 'null' END,
              ',"picked_up_at":', CASE WHEN e.n >= 3 AND d.picked_up_text IS NOT NULL
                                       THEN '"' || d.picked_up_text || '"' ELSE 'null' END,
              ',"delivered_at":', CASE WHEN e.type = 'delivery.delivered'
                                       THEN '"' || d.updated_text || '"' ELSE 'null' END,
              ',"updated_at":"', CASE e.n WHEN 1 THEN d.created_text WHEN 2 THEN d.assigned_text
                                          WHEN 3 THEN d.picked_up_text ELSE d.updated_text END,
              '","pickup":', d.pickup_text, ',"dropoff":', d.dropoff_text,
              ',"distance_m":', d.distance_text,
              ',"tracking_url":null,"courier_location":null,"eta":null',
              CASE WHEN e.type = 'delivery.failed'
                   THEN ',"reason":"recipient_unavailable"' END,
              '}')::json
  FROM (SELECT d.id, d.sender_id, d.courier_id, d.status, d.created_at, d.assigned_at,
               d.picked_up_at, d.updated_at,
               concat(',"size":"', d.length_cm, 'x', d.width_cm, 'x', d.height_cm,
                      '","cost":"', d.cost,
                      '","description":', coalesce(to_json(d.description)::text, 'null'),
                      ',"external_id":', coalesce('"' || d.external_id || '"', 'null'),
                      ',"status":"') AS middle,
               rfc3339(d.created_at) AS created_text, rfc3339(d.assigned_at) AS assigned_text,
               rfc3339(d.picked_up_at) AS picked_up_text, rfc3339(d.updated_at) AS updated_text,
               coalesce(d.pickup_json, 'null') AS pickup_text,
               coalesce(d.dropoff_json, 'null') AS dropoff_text,
               coalesce(d.distance_m::text, 'null') AS distance_text
          FROM deliveries d
         WHERE d.id > %(after_id)s
        OFFSET 0) d
 CROSS JOIN LATERAL (VALUES
        (1, 'delivery.created', NULL::bigint, 'created', d.created_at, 'sender'),
        (2, 'delivery.assigned', d.courier_id, 'assigned', d.assigned_at, 'sender'),
        (3, 'delivery.picked_up', d.courier_id, 'picked_up', d.picked_up_at, 'courier'),
        (4, CASE d.status WHEN 'delivered' THEN 'delivery.delivered'
                          WHEN 'failed' THEN 'delivery.failed' ELSE 'delivery.cancelled' END,
            d.courier_id, d.status, d.updated_at,
            CASE WHEN d.status = 'cancelled' THEN 'sender' ELSE 'courier' END))
       AS e (n, type, courier_id, status, at, actor_role)
 WHERE (e.n = 1
        OR e.n = 2 AND d.assigned_at IS NOT NULL
        OR e.n = 3 AND d.picked_up_at IS NOT NULL
        OR e.n = 4 AND d.status IN ('delivered', 'failed', 'cancelled'))
 ORDER BY e.at, d.id, e.n;
"""


def load_people(conn: psycopg2.extensions.connection, login_hash: str) -> None:
    with conn.cursor() as cur:
        cur.execute(_PEOPLE, {"senders": SENDERS, "couriers": COURIERS,
                              "no_hash": _NO_PASSWORD_HASH,
                              "login_username": LOGIN_USERNAME, "login_hash": login_hash})


def _secondary_indexes(cur: Any, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of a table's indexes that back no constraint."""
    cur.execute("SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                "  FROM pg_index i"
                " WHERE i.indrelid = %s::regclass AND NOT i.indisunique"
                "   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (table,))
    return cur.fetchall()


def grow_deliveries(conn: psycopg2.extensions.connection, total: int) -> dict[str, Any]:
    """Adds generated deliveries, and their events, until there are `total` generated
    ones; returns how many rows were added and the seconds each part took. Vacuums and
    analyzes, so that plans and index-only scans are as in a settled production table.

    Deliveries go in row by row through every index, as in a live table. The events,
    several per delivery, go in without the secondary indexes of delivery_events, which
    are built again afterwards (the same definitions, from the catalog), and, where the
    role may, without the foreign key check (each generated event names a delivery just
    made): a few times faster."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE description LIKE 'parcel %'")
        (have,) = cur.fetchone()
        if have >= total:
            return {"deliveries": 0, "events": 0}
        cur.execute("SELECT coalesce(max(id), 0), utc_today() FROM deliveries")
        after_id, today = cur.fetchone()
        cur.execute("SET work_mem = '256MB'")  # the sorts stay in memory
        t0 = time.perf_counter()
        cur.execute(_DELIVERIES, {"seed": (have % 1000) / 1000, "first": have + 1, "last": total,
                                  "big": BIG_SENDER_SHARE, "senders": SENDERS,
                                  "couriers": COURIERS, "today": today})
        t1 = time.perf_counter()
        indexes = _secondary_indexes(cur, "delivery_events")
        for name, _ in indexes:
            cur.execute(f"DROP INDEX {name}")
        try:
            cur.execute("SET session_replication_role = replica")  # superusers only
        except psycopg2.errors.InsufficientPrivilege:
            pass
        cur.execute(EVENTS, {"after_id": after_id})
        events = cur.rowcount
        cur.execute("RESET session_replication_role")
        t2 = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cur.execute(definition)
        cur.execute("RESET maintenance_work_mem")
        cur.execute("RESET work_mem")
        t3 = time.perf_counter()
        cur.execute("VACUUM (ANALYZE)")
        cur.execute("CHECKPOINT")  # not in the middle of a measurement
        t4 = time.perf_counter()
    return {"deliveries": total - have, "events": events,
            "seconds": {"deliveries": round(t1 - t0, 1), "events": round(t2 - t1, 1),
                        "event_indexes": round(t3 - t2, 1), "vacuum": round(t4 - t3, 1)}}
