"""Hostile clients: the per-address limit on logins and signups (checked before
any hashing, through the Lambda entry point with the address API Gateway
reports), lockout of unknown usernames exactly like known ones, configuration
checked at start-up, ASCII usernames, normalised company names, eight-digit
revenue bounds."""

import json
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib import credentials
from tests.conftest import ROOT, assert_error, unique, unique_phone
from tools.lambda_events import LambdaContext, event

PASSWORD = "correct horse"
_addresses = iter(range(1, 250))


@pytest.fixture
def address() -> str:
    """A client address of this test's own (the limit is per address).

    The limit counts per calendar minute, so a test that crossed a minute's end
    would start counting again halfway: it starts with enough of the minute
    left for a dozen password hashes as long as this machine takes now (a
    test here hashes at most five times; on a busy machine one took 2 s)."""
    left = 60 - time.time() % 60
    if left < 12 * _scrypt_seconds() + 5:
        time.sleep(left + 0.05)
    return f"198.51.100.{next(_addresses)}"


_scrypt_timing: list[float] = []


def _scrypt_seconds() -> float:
    """How long one password hash takes on this machine, now (measured once)."""
    if not _scrypt_timing:
        from chalicelib import credentials

        started = time.perf_counter()
        credentials.hash_password("timing only")
        _scrypt_timing.append(min(4.0, time.perf_counter() - started))
    return _scrypt_timing[0]


@pytest.fixture
def hashing(monkeypatch) -> Counter:
    """Counts the scrypt work the app does (a spy around the real functions)."""
    calls: Counter = Counter()
    verify, make = credentials.verify_password, credentials.hash_password

    def counted_verify(*args):
        calls["verify"] += 1
        return verify(*args)

    def counted_hash(*args):
        calls["hash"] += 1
        return make(*args)

    monkeypatch.setattr(credentials, "verify_password", counted_verify)
    monkeypatch.setattr(credentials, "hash_password", counted_hash)
    return calls


def call(method: str, path: str, body: Any, address: str) -> tuple[int, dict, Any]:
    """One request through the Lambda entry point, from `address`."""
    import app

    request = event(app.app.routes, method, path, body=json.dumps(body),
                    headers={"Content-Type": "application/json"})
    request["requestContext"]["identity"]["sourceIp"] = address
    reply = app.app(request, LambdaContext())
    return reply["statusCode"], reply["headers"], json.loads(reply["body"] or "null")


def login(username: str, password: str, address: str) -> tuple[int, dict, Any]:
    return call("POST", "/auth", {"username": username, "password": password}, address)


def test_failed_logins_from_one_address_are_limited_before_any_hashing(
        database_url, db, monkeypatch, address, hashing):
    monkeypatch.setenv("AUTH_RATE_PER_MINUTE", "3")
    statuses = [login(unique("nobody"), "wrong password", address)[0] for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    # The fourth attempt learnt the refusal from the database; the fifth was
    # answered from it, without a round trip.
    with db.cursor() as cur:
        cur.execute("SELECT used FROM address_limits WHERE action = 'login' AND address = %s",
                    (address,))
        assert cur.fetchone() == (4,)
    assert hashing["verify"] == 3
    status, headers, body = login("courier", "pass", address)
    # Even the right password waits: the address is over its limit.
    assert status == 429 and hashing["verify"] == 3
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert body["Message"].startswith("address:") and headers["Retry-After"] in body["Message"]
    # Another address is not affected.
    assert login("courier", "pass", f"{address}0" if len(address) < 15 else "192.0.2.1")[0] == 200


def test_a_successful_login_does_not_count_against_the_address(
        database_url, monkeypatch, address):
    monkeypatch.setenv("AUTH_RATE_PER_MINUTE", "2")
    for _ in range(4):
        assert login("courier", "pass", address)[0] == 200
    assert login(unique("nobody"), "wrong password", address)[0] == 401


def test_concurrent_logins_from_one_address_cannot_pass_the_limit(
        database_url, monkeypatch, address, hashing):
    monkeypatch.setenv("AUTH_RATE_PER_MINUTE", "4")
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: login(unique("nobody"), "wrong password",
                                                 address)[0], range(12)))
    assert Counter(statuses) == {401: 4, 429: 8}
    assert hashing["verify"] == 4


def test_signups_from_one_address_are_limited_before_hashing(
        database_url, db, monkeypatch, address, hashing):
    monkeypatch.setenv("AUTH_RATE_PER_MINUTE", "2")

    def signup():
        return call("POST", "/signup", {"username": unique("s"), "password": PASSWORD,
                                        "role": "sender", "company_name": unique("Co ")},
                    address)

    assert [signup()[0] for _ in range(2)] == [201, 201]
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        (users,) = cur.fetchone()
    status, headers, body = signup()
    assert status == 429 and "Retry-After" in headers and body["Message"].startswith("address:")
    assert hashing["hash"] == 2
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone() == (users,)


def test_zero_switches_the_limit_off(database_url, monkeypatch, address):
    monkeypatch.setenv("AUTH_RATE_PER_MINUTE", "0")
    assert {login(unique("nobody"), "wrong", address)[0] for _ in range(4)} == {401}


# ---------------------------------------------------------------- lockout of unknown names


def test_unknown_usernames_lock_out_exactly_like_known_ones(api, db):
    known = api.new_sender()["username"]
    unknown = unique("ghost")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        (users,) = cur.fetchone()
    answers = {}
    for name in (known, unknown):
        replies = [api.post("/auth", {"username": name, "password": "wrong password"})
                   for _ in range(7)]
        answers[name] = [(r.status, r.json["Message"].split(";")[0],
                          "retry-after" in r.headers) for r in replies]
        assert 890 <= int(replies[-1].headers["retry-after"]) <= 900
    assert answers[known] == answers[unknown]
    assert [a[0] for a in answers[unknown]] == [401] * 5 + [429] * 2
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone() == (users,)  # no user was made for the unknown name


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("name, value", [
    ("TOKEN_TTL_SECONDS", "0"), ("TOKEN_TTL_SECONDS", "-5"),
    ("TOKEN_TTL_SECONDS", "2147483648"), ("TOKEN_TTL_SECONDS", "a day"),
    ("AUTH_RATE_PER_MINUTE", "-1"), ("SIGNUP_ENABLED", "ture"),
    ("DB_STATEMENT_TIMEOUT_MS", "5s"), ("EVENT_RETENTION_DAYS", "29"),
    ("EVENT_RETENTION_DAYS", "forever"),
])
def test_a_wrong_setting_stops_the_start_naming_the_variable(name, value):
    env = {"PATH": "/usr/bin:/bin", name: value}
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"ConfigError: {name}: must be" in result.stderr


def test_the_longest_token_lifetime_allowed_logs_in(api, monkeypatch):
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "2147483647")
    reply = api.post("/auth", {"username": "courier", "password": "pass"})
    assert reply.status == 200 and reply.json["expires_at"] > "2090"


# ---------------------------------------------------------------- names


def test_a_non_ascii_look_alike_does_not_log_in_as_the_ascii_user(api):
    assert_error(api.post("/auth", {"username": "courİer", "password": "pass"}), 401,
                 "username or password")
    assert_error(api.post("/auth", {"username": "CourİER", "password": "pass"}), 401,
                 "username or password")


def test_company_names_are_unique_after_normalising(api):
    base = unique("Acme")
    first = {"username": unique("s"), "password": PASSWORD, "role": "sender",
             "company_name": base}
    assert api.post("/signup", first).status == 201
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base)
    for variant in (base.upper(), f"{base} ", f"  {base.lower()}", fullwidth):
        reply = api.post("/signup", {**first, "username": unique("s"), "company_name": variant})
        assert_error(reply, 409, "company_name")


@pytest.mark.parametrize("name, message", [
    ("\u200b", "blank"), ("\u200b\u200d ", "blank"), ("\x1b[31mred", "control"),
    ("two\nlines", "control"),
])
def test_company_name_needs_a_visible_character_and_no_control_ones(api, name, message):
    reply = api.post("/signup", {"username": unique("s"), "password": PASSWORD,
                                 "role": "sender", "company_name": name})
    assert_error(reply, 400, "company_name")
    assert message in reply.json["Message"]


def test_courier_names_are_trimmed_and_checked_the_same_way(api):
    body = {"username": unique("c"), "password": PASSWORD, "role": "courier",
            "first_name": "  Ann ", "last_name": "Lee", "phone": unique_phone(),
            "vehicle": "van"}
    assert api.post("/signup", body).status == 201
    token = api.login(body["username"], PASSWORD)
    assert api.get("/me", token=token).json["courier"]["first_name"] == "Ann"
    reply = api.post("/signup", {**body, "username": unique("c"), "phone": unique_phone(),
                                 "last_name": "\x07"})
    assert_error(reply, 400, "last_name")


# ---------------------------------------------------------------- revenue bounds


def test_eight_digits_are_an_iso_basic_date_not_unix_seconds(api, courier_token):
    reply = api.get("/revenue/20260101/20270101", token=courier_token)
    assert reply.status == 200, reply
    assert (reply.json["from"], reply.json["to"]) == ("2026-01-01T00:00:00Z",
                                                      "2027-01-01T00:00:00Z")
    # Eight digits that are no date are Unix seconds.
    reply = api.get("/revenue/10000000/20000000", token=courier_token)
    assert (reply.json["from"], reply.json["to"]) == ("1970-04-26T17:46:40Z",
                                                      "1970-08-20T11:33:20Z")


def test_sub_second_bounds_are_echoed_as_sent(api, courier_token):
    reply = api.get("/revenue/2026-01-01T00:00:59Z/2026-01-01T00:00:59.5Z",
                    token=courier_token)
    assert (reply.json["from"], reply.json["to"]) == ("2026-01-01T00:00:59Z",
                                                      "2026-01-01T00:00:59.5Z")
