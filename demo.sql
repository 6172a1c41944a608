-- Demo users for local runs and tests; never applied to production.
-- sender / pass  (sender id 1, company "acme")
-- courier / pass (courier id 1, John Doe, car)
-- The hashes are scrypt hashes of "pass", made by chalicelib.credentials.
-- Idempotent: existing rows are left as they are.

BEGIN;

INSERT INTO users (id, username, password_hash, role) VALUES
    (1, 'sender', 'scrypt$16384$8$5$lbTdplQTGmeVkZO/s6v8+g==$31+pfv14PZXcDWI8587tR+QvYWt88fMKKKh0B0X9JRc=', 'sender'),
    (2, 'courier', 'scrypt$16384$8$5$lbTdplQTGmeVkZO/s6v8+g==$31+pfv14PZXcDWI8587tR+QvYWt88fMKKKh0B0X9JRc=', 'courier')
ON CONFLICT DO NOTHING;

-- A profile only for the demo user itself, never for another user with that id.
INSERT INTO senders (id, user_id, company_name)
SELECT 1, 1, 'acme' WHERE EXISTS (SELECT 1 FROM users WHERE id = 1 AND username = 'sender')
ON CONFLICT DO NOTHING;

INSERT INTO couriers (id, user_id, first_name, last_name, phone, vehicle)
SELECT 1, 2, 'John', 'Doe', '+15550000001', 'car'
 WHERE EXISTS (SELECT 1 FROM users WHERE id = 2 AND username = 'courier')
ON CONFLICT DO NOTHING;

-- Two demo deliveries of acme's, with stops (external_id demo-1 and demo-2:
-- made once), each with its delivery.created event.
-- Only on a schema with stops (tests apply this file to the first release's
-- schema too, before its migration).
DO $demo$
BEGIN
    IF to_regprocedure('feed_key_now()') IS NULL THEN
        RETURN;
    END IF;
    WITH made AS (
        INSERT INTO deliveries (sender_id, length_cm, width_cm, height_cm, cost, description,
            external_id, pickup_line1, pickup_city, pickup_postal_code, pickup_country,
            pickup_lat, pickup_lng, pickup_contact_name, pickup_contact_phone,
            pickup_instructions, dropoff_line1, dropoff_line2, dropoff_city,
            dropoff_postal_code, dropoff_country, dropoff_lat, dropoff_lng,
            dropoff_contact_name, dropoff_contact_phone, dropoff_instructions,
            dropoff_window_start, dropoff_window_end, dropoff_requires_pin)
        SELECT 1, v.l, v.w, v.h, v.cost, v.description, v.external_id,
               v.p_line1, CASE WHEN v.p_line1 IS NOT NULL THEN 'Berlin' END, v.p_postal,
               CASE WHEN v.p_line1 IS NOT NULL THEN 'DE' END, v.p_lat, v.p_lng, v.p_name, v.p_phone,
               v.p_instructions, v.d_line1, v.d_line2, 'Berlin', v.d_postal, 'DE', v.d_lat,
               v.d_lng, v.d_name, v.d_phone, v.d_instructions,
               date_trunc('hour', now()) + interval '2 hours',
               date_trunc('hour', now()) + interval '5 hours', v.pin
          FROM (VALUES
            (22, 33, 44, 23.45, 'books', 'demo-1', 'Alexanderplatz 1', '10178', 52.521918,
             13.413215, 'acme dock', '+4930901820', 'Gate B, ring twice', 'Kastanienallee 12',
             '2. OG links', '10435', 52.538214, 13.409651, 'Ann Lee', '+4930123456',
             'Leave with the neighbour if nobody answers', true),
            (10, 20, 30, 9.90, 'a lamp', 'demo-2', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             'Oranienstraße 25', NULL, '10999', 52.501236, 13.420012, 'Bo Ek', '+4917612345678',
             NULL, false))
            AS v (l, w, h, cost, description, external_id, p_line1, p_postal, p_lat, p_lng,
                  p_name, p_phone, p_instructions, d_line1, d_line2, d_postal, d_lat, d_lng,
                  d_name, d_phone, d_instructions, pin)
         WHERE EXISTS (SELECT 1 FROM senders WHERE id = 1 AND company_name = 'acme')
        ON CONFLICT DO NOTHING
        RETURNING *)
    INSERT INTO delivery_events (type, delivery_id, sender_id, courier_id, status, at, actor_role,
                                 actor_id, data, feed_key)
    SELECT 'delivery.created', m.id, m.sender_id, NULL, m.status, m.updated_at, 'sender',
           m.sender_id, delivery_text(m, NULL, NULL)::json, feed_key_now()
      FROM made m;
END $demo$;

-- Explicit ids above do not advance the identity sequences.
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM users), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('users', 'id') seq;
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM senders), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('senders', 'id') seq;
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM couriers), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('couriers', 'id') seq;

COMMIT;
