"""Signup, login, tokens, logout and lockout, through the app in-process."""

import hashlib
import re
import secrets
import string
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import assert_error, unique, unique_phone

TOKEN_RE = re.compile(r"[0-9a-f]{40}")
RFC3339_Z = "%Y-%m-%dT%H:%M:%SZ"
PASSWORD = "correct horse"


def sender_body(**overrides) -> dict:
    body = {"username": unique("s"), "password": PASSWORD, "role": "sender",
            "company_name": unique("Co ")}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def courier_body(**overrides) -> dict:
    body = {"username": unique("c"), "password": PASSWORD, "role": "courier",
            "first_name": "Ann", "last_name": "Lee", "phone": unique_phone(),
            "vehicle": "bicycle"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def session_expiry(db, token: str) -> datetime | None:
    with db.cursor() as cur:
        cur.execute("SELECT expires_at FROM sessions WHERE token_sha256 = %s",
                    (hashlib.sha256(token.encode()).digest(),))
        row = cur.fetchone()
    return row[0] if row else None


@pytest.fixture(scope="module")
def sender(api):
    return api.new_sender()


# ---------------------------------------------------------------- signup


def test_sender_signup_answers_201_with_ids(api):
    body = sender_body()
    reply = api.post("/signup", body)
    assert reply.status == 201, reply
    assert reply.json["role"] == "sender"
    assert isinstance(reply.json["user_id"], int) and isinstance(reply.json["sender_id"], int)
    token = api.login(body["username"], body["password"])
    me = api.get("/me", token=token).json
    assert me["user_id"] == reply.json["user_id"]
    assert me["sender"] == {"id": reply.json["sender_id"], "company_name": body["company_name"]}
    assert me["courier"] is None


def test_courier_signup_answers_201_with_ids(api):
    body = courier_body(vehicle="truck")
    reply = api.post("/signup", body)
    assert reply.status == 201, reply
    assert reply.json["role"] == "courier"
    assert isinstance(reply.json["courier_id"], int)
    token = api.login(body["username"], body["password"])
    me = api.get("/me", token=token).json
    assert me["role"] == "courier" and me["sender"] is None
    assert me["courier"] == {"id": reply.json["courier_id"], "first_name": "Ann",
                             "last_name": "Lee", "phone": body["phone"], "vehicle": "truck"}


@pytest.mark.parametrize("length", [8, 128])
def test_password_of_8_to_128_characters_is_accepted(api, length):
    password = ("pä🔑" * 50)[:length]
    body = sender_body(password=password)
    assert api.post("/signup", body).status == 201
    assert TOKEN_RE.fullmatch(api.login(body["username"], password))


def test_usernames_of_3_and_40_allowed_characters_are_accepted(api, db):
    alphabet = string.ascii_letters + string.digits + "_.-"
    with db.cursor() as cur:
        while True:  # a 3-character name nobody has taken yet
            short = "".join(secrets.choice(alphabet) for _ in range(3))
            cur.execute("SELECT 1 FROM users WHERE lower(username) = lower(%s)", (short,))
            if cur.fetchone() is None:
                break
    long = ("A.b-_9" + secrets.token_hex(20))[:40]
    for name in (short, long):
        reply = api.post("/signup", sender_body(username=name))
        assert reply.status == 201, reply


@pytest.mark.parametrize("overrides, field", [
    ({"role": ...}, "role"),
    ({"role": "admin"}, "role"),
    ({"role": "Sender"}, "role"),
    ({"username": ...}, "username"),
    ({"username": "ab"}, "username"),
    ({"username": "a" * 41}, "username"),
    ({"username": "has space"}, "username"),
    ({"username": "at@sign"}, "username"),
    ({"username": "ünïcode"}, "username"),
    ({"username": 12345}, "username"),
    ({"password": ...}, "password"),
    ({"password": "seven77"}, "password"),
    ({"password": "x" * 129}, "password"),
    ({"password": 123456789}, "password"),
    ({"company_name": ...}, "company_name"),
    ({"company_name": ""}, "company_name"),
    ({"company_name": "   "}, "company_name"),
    ({"company_name": "x" * 129}, "company_name"),
    ({"company_name": 7}, "company_name"),
], ids=lambda v: repr(v)[:30])
def test_bad_sender_signup_field_is_400_naming_it(api, overrides, field):
    assert_error(api.post("/signup", sender_body(**overrides)), 400, field)


@pytest.mark.parametrize("overrides, field", [
    ({"first_name": ...}, "first_name"),
    ({"first_name": ""}, "first_name"),
    ({"first_name": "x" * 65}, "first_name"),
    ({"last_name": ...}, "last_name"),
    ({"last_name": " "}, "last_name"),
    ({"last_name": "x" * 65}, "last_name"),
    ({"phone": ...}, "phone"),
    ({"phone": "15550001234"}, "phone"),
    ({"phone": "+123456"}, "phone"),
    ({"phone": "+1234567890123456"}, "phone"),
    ({"phone": "+1 555 000 1234"}, "phone"),
    ({"phone": 15550001234}, "phone"),
    ({"vehicle": ...}, "vehicle"),
    ({"vehicle": "plane"}, "vehicle"),
    ({"vehicle": 1}, "vehicle"),
], ids=lambda v: repr(v)[:30])
def test_bad_courier_signup_field_is_400_naming_it(api, overrides, field):
    assert_error(api.post("/signup", courier_body(**overrides)), 400, field)


def test_username_is_unique_ignoring_case(api):
    body = sender_body(username=unique("CaseUser"))
    assert api.post("/signup", body).status == 201
    again = sender_body(username=body["username"].lower())
    assert_error(api.post("/signup", again), 409, "username")
    # A courier cannot take it either.
    assert_error(api.post("/signup", courier_body(username=body["username"].upper())),
                 409, "username")


def test_username_of_a_demo_user_is_taken(api):
    assert_error(api.post("/signup", sender_body(username="SENDER")), 409, "username")


def test_company_name_is_unique(api):
    company = unique("Unique Co ")
    assert api.post("/signup", sender_body(company_name=company)).status == 201
    assert_error(api.post("/signup", sender_body(company_name=company)), 409, "company_name")


def test_phone_is_unique(api):
    phone = unique_phone()
    assert api.post("/signup", courier_body(phone=phone)).status == 201
    assert_error(api.post("/signup", courier_body(phone=phone)), 409, "phone")


def test_refused_signup_leaves_no_half_made_user(api):
    company = unique("Taken Co ")
    assert api.post("/signup", sender_body(company_name=company)).status == 201
    username = unique("retry")
    assert_error(api.post("/signup", sender_body(username=username, company_name=company)),
                 409, "company_name")
    # The user row of the refused signup was rolled back: the name is still free.
    assert api.post("/signup", sender_body(username=username)).status == 201


@pytest.mark.parametrize("value", ["false", "0", "FALSE"])
def test_signup_switched_off_by_configuration_is_403(api, monkeypatch, value):
    # The dev stage sets no environment variables, so the environment decides
    # (as the stage's environment_variables would on Lambda).
    monkeypatch.setenv("SIGNUP_ENABLED", value)
    body = sender_body()
    assert_error(api.post("/signup", body), 403, "signup")
    monkeypatch.undo()
    # Nothing was created while it was off.
    assert api.post("/signup", body).status == 201


# ---------------------------------------------------------------- login and tokens


def test_login_answers_token_and_caller(api, sender, db):
    before = datetime.now(UTC)
    reply = api.post("/auth", {"username": sender["username"], "password": PASSWORD})
    assert reply.status == 200, reply
    body = reply.json
    assert TOKEN_RE.fullmatch(body["token"])
    assert body["hash"] == body["token"]
    assert body["token_type"] == "Bearer"
    assert body["role"] == "sender"
    assert body["user_id"] == sender["user_id"] and body["sender_id"] == sender["sender_id"]
    assert body["courier_id"] is None
    expires = datetime.strptime(body["expires_at"], RFC3339_Z).replace(tzinfo=UTC)
    assert abs(expires - (before + timedelta(hours=24))) < timedelta(seconds=30)
    assert abs(session_expiry(db, body["token"]) - expires) < timedelta(seconds=1)


def test_courier_login_names_the_courier(api):
    reply = api.post("/auth", {"username": "courier", "password": "pass"})
    assert reply.status == 200
    assert reply.json["role"] == "courier" and reply.json["courier_id"] == 1
    assert reply.json["sender_id"] is None


def test_each_login_gets_a_new_token(api, sender):
    first = api.login(sender["username"], PASSWORD)
    second = api.login(sender["username"], PASSWORD)
    assert first != second
    assert api.get("/me", token=first).status == 200
    assert api.get("/me", token=second).status == 200


def test_login_username_ignores_case(api, sender):
    assert TOKEN_RE.fullmatch(api.login(sender["username"].upper(), PASSWORD))


def test_token_lifetime_is_configurable(api, sender, monkeypatch):
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "60")
    reply = api.post("/auth", {"username": sender["username"], "password": PASSWORD})
    expires = datetime.strptime(reply.json["expires_at"], RFC3339_Z).replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=60))) < timedelta(seconds=10)


def test_bearer_token_is_accepted(api, sender):
    reply = api.get("/me", headers={"Authorization": f"Bearer {sender['token']}"})
    assert reply.status == 200 and reply.json["user_id"] == sender["user_id"]


def test_bearer_scheme_ignores_case(api, sender):
    assert api.get("/me", headers={"Authorization": f"bearer {sender['token']}"}).status == 200


def test_bare_token_is_accepted(api, sender):
    reply = api.get("/me", headers={"Authorization": sender["token"]})
    assert reply.status == 200 and reply.json["user_id"] == sender["user_id"]


@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer abc",
    "Basic dXNlcjpwYXNz",
    "Bearer " + "g" * 40,
    "Bearer " + "a" * 39,
    "Bearer " + "a" * 41,
], ids=repr)
def test_missing_or_malformed_token_is_401(api, header):
    headers = {} if header is None else {"Authorization": header}
    assert_error(api.get("/me", headers=headers), 401, "Authorization")


def test_well_formed_but_unknown_token_is_401(api):
    assert_error(api.get("/me", token=secrets.token_hex(20)), 401, "Authorization")


def test_token_with_trailing_garbage_is_401(api, sender):
    assert_error(api.get("/me", headers={"Authorization": f"Bearer {sender['token']}x"}),
                 401, "Authorization")


def test_expired_token_is_401(api, sender, db):
    token = api.login(sender["username"], PASSWORD)
    assert api.get("/me", token=token).status == 200
    with db.cursor() as cur:
        cur.execute("UPDATE sessions SET expires_at = now() - interval '1 second' "
                    "WHERE token_sha256 = %s", (hashlib.sha256(token.encode()).digest(),))
        assert cur.rowcount == 1
    assert_error(api.get("/me", token=token), 401, "Authorization")
    assert_error(api.get("/couriers", token=token), 401, "Authorization")


def test_logout_revokes_only_the_token_used(api, sender, db):
    doomed = api.login(sender["username"], PASSWORD)
    other = api.login(sender["username"], PASSWORD)
    reply = api.delete("/auth", token=doomed)
    assert reply.status == 204 and reply.content == b""
    assert session_expiry(db, doomed) is None
    assert_error(api.get("/me", token=doomed), 401, "Authorization")
    assert_error(api.delete("/auth", token=doomed), 401, "Authorization")
    assert api.get("/me", token=other).status == 200


def test_logout_accepts_a_bare_token(api, sender):
    token = api.login(sender["username"], PASSWORD)
    assert api.delete("/auth", headers={"Authorization": token}).status == 204
    assert api.get("/me", token=token).status == 401


def test_logout_without_token_is_401(api):
    assert_error(api.delete("/auth"), 401, "Authorization")


# ---------------------------------------------------------------- wrong credentials


def test_wrong_password_is_401(api, sender):
    reply = api.post("/auth", {"username": sender["username"], "password": "not the one"})
    assert_error(reply, 401, "username or password")


@pytest.mark.slow  # timing
def test_unknown_username_gets_the_same_401_in_about_the_same_time(api, sender):
    """Three of each, interleaved, medians compared: a burst of load during one
    call cannot decide it (a success first resets the username's failures,
    so three wrong passwords stay below the lockout)."""
    api.login(sender["username"], sender["password"])
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    replies = []
    for _ in range(3):
        for kind, username in (("wrong", sender["username"]), ("unknown", unique("nobody"))):
            started = time.perf_counter()
            replies.append(api.post("/auth", {"username": username, "password": "not the one"}))
            timings[kind].append(time.perf_counter() - started)
    assert {r.status for r in replies} == {401}
    assert all(r.json == replies[0].json for r in replies)
    wrong_seconds, unknown_seconds = (sorted(timings[k])[1] for k in ("wrong", "unknown"))
    # Both pay for one scrypt; skipping it would answer in a few milliseconds.
    assert unknown_seconds > wrong_seconds / 3, timings


@pytest.mark.parametrize("body, field", [
    ({"password": PASSWORD}, "username"),
    ({"username": "", "password": PASSWORD}, "username"),
    ({"username": 5, "password": PASSWORD}, "username"),
    ({"username": "sender"}, "password"),
    ({"username": "sender", "password": ""}, "password"),
    ({"username": "sender", "password": ["pass"]}, "password"),
], ids=repr)
def test_login_without_credentials_is_400(api, body, field):
    assert_error(api.post("/auth", body), 400, field)


# ---------------------------------------------------------------- lockout
# Every failed login costs a real scrypt, so these users are made in the
# database directly, with a hash made once, rather than through signup + login.


@pytest.fixture(scope="module")
def password_hash() -> str:
    from chalicelib import credentials

    return credentials.hash_password(PASSWORD)


def user_in_db(db, password_hash: str) -> dict:
    username = unique("lock")
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (username, password_hash, role) "
                    "VALUES (%s, %s, 'sender') RETURNING id", (username, password_hash))
        user_id = cur.fetchone()[0]
        cur.execute("INSERT INTO senders (user_id, company_name) VALUES (%s, %s)",
                    (user_id, unique("Lock Co ")))
    return {"username": username, "user_id": user_id}


def failed_login(api, username: str):
    return api.post("/auth", {"username": username, "password": "wrong password"})


def test_five_failed_logins_lock_the_user_for_15_minutes(api, db, password_hash):
    user = user_in_db(db, password_hash)
    token = api.login(user["username"], PASSWORD)
    for attempt in range(5):
        # The count is per user, whatever the case the username is typed in.
        name = user["username"].upper() if attempt % 2 else user["username"]
        assert failed_login(api, name).status == 401
    # Now even the right password is refused, with the time to wait.
    locked = api.post("/auth", {"username": user["username"], "password": PASSWORD})
    assert_error(locked, 429, "username")
    retry_after = int(locked.headers["retry-after"])
    assert 890 <= retry_after <= 900
    assert str(retry_after) in locked.json["Message"]
    assert_error(failed_login(api, user["username"]), 429, "username")
    # Tokens issued before the lock keep working: the lock is on logging in.
    assert api.get("/me", token=token).status == 200
    # Fifteen minutes later (moved back in the database) the right password works.
    with db.cursor() as cur:
        cur.execute("UPDATE login_failures SET locked_until = now() - interval '1 second' "
                    "WHERE username_key = lower(%s)", (user["username"],))
    assert TOKEN_RE.fullmatch(api.login(user["username"], PASSWORD))


def test_successful_login_resets_the_failure_count(api, db, password_hash):
    user = user_in_db(db, password_hash)
    for _ in range(4):
        assert failed_login(api, user["username"]).status == 401
    api.login(user["username"], PASSWORD)
    # Without the reset, this would be the fifth failure in a row and lock.
    assert failed_login(api, user["username"]).status == 401
    with db.cursor() as cur:
        cur.execute("SELECT failures, locked_until FROM login_failures "
                    "WHERE username_key = lower(%s)", (user["username"],))
        assert cur.fetchone() == (1, None)
    assert TOKEN_RE.fullmatch(api.login(user["username"], PASSWORD))
