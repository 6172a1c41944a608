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

-- Explicit ids above do not advance the identity sequences.
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM users), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('users', 'id') seq;
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM senders), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('senders', 'id') seq;
SELECT setval(seq::regclass, greatest((SELECT max(id) FROM couriers), nextval(seq::regclass) - 1))
  FROM pg_get_serial_sequence('couriers', 'id') seq;

COMMIT;
