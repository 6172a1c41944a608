"""The synthetic data set, generated inside PostgreSQL (generate_series, no HTTP).

1,000 senders and 500 couriers, each with a live session whose bearer token is
known (`token_for(user_id)`); deliveries spread over the 90 days before today's
UTC midnight, 80 % of them assigned. Sender 1 is the big customer (a tenth of
all deliveries, so that its page 100 exists at every size); the rest are spread
evenly. No delivery is assigned today, so every courier starts the day with
room for the daily limit.

Only the login user (`LOGIN_USERNAME`) gets a real scrypt hash; the others get a
well-formed hash that matches no password.
"""

import hashlib

import psycopg2.extensions

SENDERS = 1000
COURIERS = 500
ASSIGNED_SHARE = 0.8
BIG_SENDER_SHARE = 10  # every 10th delivery belongs to sender 1
LOGIN_USERNAME = "bench_login"
LOGIN_PASSWORD = "bench password"
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
# midnight, assigned_at between created_at and that midnight. Inserted in
# created_at order, so that ids and the heap follow time as in a live table
# (each growth step covers the 90 days again). Ids come from the identity
# sequence, so rows that the create benchmark added never clash.
_DELIVERIES = """
SELECT setseed(%(seed)s);
INSERT INTO deliveries (sender_id, courier_id, length_cm, width_cm, height_cm, cost,
                        description, created_at, assigned_at)
SELECT CASE WHEN r.g %% %(big)s = 0 THEN 1 ELSE 2 + floor(random() * (%(senders)s - 1))::int END,
       CASE WHEN r.assigned THEN 1 + floor(random() * %(couriers)s)::int END,
       1 + floor(random() * 100)::int, 1 + floor(random() * 100)::int,
       1 + floor(random() * 100)::int,
       round((5 + random() * 95)::numeric, 2),
       'parcel ' || r.g,
       r.created_at,
       CASE WHEN r.assigned
            THEN r.created_at + (utc_today() - r.created_at) * (random() * 0.05) END
  FROM (SELECT g, random() < %(assigned)s AS assigned,
               utc_today() - interval '90 days' * random() - interval '1 second' AS created_at
          FROM generate_series(%(first)s, %(last)s) g) r
 ORDER BY r.created_at;
"""


def load_people(conn: psycopg2.extensions.connection, login_hash: str) -> None:
    with conn.cursor() as cur:
        cur.execute(_PEOPLE, {"senders": SENDERS, "couriers": COURIERS,
                              "no_hash": _NO_PASSWORD_HASH,
                              "login_username": LOGIN_USERNAME, "login_hash": login_hash})


def grow_deliveries(conn: psycopg2.extensions.connection, total: int) -> int:
    """Adds generated deliveries until there are `total` generated ones; returns how many
    were added. Vacuums and analyzes, so that plans and index-only scans are as in a
    settled production table."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE description LIKE 'parcel %'")
        (have,) = cur.fetchone()
        if have >= total:
            return 0
        cur.execute(_DELIVERIES, {"seed": (have % 1000) / 1000, "first": have + 1, "last": total,
                                  "big": BIG_SENDER_SHARE, "senders": SENDERS, "couriers": COURIERS,
                                  "assigned": ASSIGNED_SHARE})
        cur.execute("VACUUM (ANALYZE)")
        cur.execute("CHECKPOINT")  # not in the middle of a measurement
    return total - have
