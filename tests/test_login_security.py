"""Login security over HTTP against `chalice local`: timing, caching, access log.

(Lockout after failed logins is tested in tests/test_auth.py.)
"""

import hashlib
import re
import secrets
import statistics
import time

import pytest
import requests

from tests.conftest import unique

ACCESS_LINE = re.compile(
    r"^(GET|POST|PUT|DELETE|PATCH|OPTIONS|HEAD) (/\S*) (\d{3}) (\d+\.\d)ms user=(\S+)$")
ROUNDS = 3  # each round: 4 wrong passwords, 4 unknown usernames, 1 good login (resets the count)


def _signup(base: str, password: str) -> dict:
    username = unique("sec")
    reply = requests.post(f"{base}/signup", timeout=30, json={
        "username": username, "password": password, "role": "sender",
        "company_name": unique("Sec Co ")})
    assert reply.status_code == 201, reply.text
    return {**reply.json(), "username": username}


def _timed_login(base: str, username: str, password: str) -> tuple[requests.Response, float]:
    started = time.perf_counter()
    reply = requests.post(f"{base}/auth", json={"username": username, "password": password},
                          timeout=30)
    return reply, time.perf_counter() - started


@pytest.mark.slow
def test_unknown_username_costs_about_the_same_as_a_wrong_password(live, capsys):
    base, password = live["base"], "right password " + secrets.token_hex(4)
    user = _signup(base, password)
    wrong, unknown = [], []
    for _ in range(ROUNDS):
        for _ in range(4):  # interleaved, so that load on the machine hits both alike
            reply, seconds = _timed_login(base, user["username"], "wrong password")
            assert reply.status_code == 401, reply.text
            wrong.append((seconds, reply.json()))
            reply, seconds = _timed_login(base, unique("nobody"), "wrong password")
            assert reply.status_code == 401, reply.text
            unknown.append((seconds, reply.json()))
        good, _ = _timed_login(base, user["username"], password)
        assert good.status_code == 200, good.text  # resets the failure count: no lockout

    assert {repr(body) for _, body in wrong} == {repr(body) for _, body in unknown}
    wrong_median = statistics.median(seconds for seconds, _ in wrong)
    unknown_median = statistics.median(seconds for seconds, _ in unknown)
    with capsys.disabled():
        print(f"\nlogin timing: wrong password median {wrong_median * 1000:.0f} ms, "
              f"unknown username median {unknown_median * 1000:.0f} ms "
              f"({len(wrong)} attempts each)")
    # The password hash dominates both; a shortcut for unknown names would be
    # several times faster. The tolerance is generous for a busy CI machine.
    assert 0.5 < unknown_median / wrong_median < 2.0, (wrong_median, unknown_median)


def test_responses_that_carry_a_token_are_not_cached(live):
    reply = requests.post(f"{live['base']}/auth", timeout=30,
                          json={"username": "courier", "password": "pass"})
    assert reply.status_code == 200 and reply.json()["token"]
    assert reply.headers["Cache-Control"] == "no-store"
    # Error answers of the same endpoint are not cacheable either.
    failed = requests.post(f"{live['base']}/auth", timeout=30,
                           json={"username": "courier", "password": "not it"})
    assert failed.status_code == 401 and failed.headers["Cache-Control"] == "no-store"


def test_access_log_has_a_line_per_request_and_no_secrets(live):
    base = live["base"]
    password = "Secret-" + secrets.token_hex(8)
    wrong_password = "Wrong-" + secrets.token_hex(8)
    user = _signup(base, password)
    login = requests.post(f"{base}/auth", timeout=30,
                          json={"username": user["username"], "password": password})
    assert login.status_code == 200
    token = login.json()["token"]
    calls = [
        ("GET", "/me", {"Authorization": f"Bearer {token}"}, None, 200),
        ("GET", "/me", {"Authorization": token}, None, 200),  # first version's bare token
        ("POST", "/deliveries", {"Authorization": f"Bearer {token}"},
         {"size": "1x2x3", "cost": "4.56", "description": password}, 201),
        ("GET", f"/deliveries/sender/{user['sender_id']}", {"Authorization": f"Bearer {token}"},
         None, 200),
        ("GET", "/couriers?per_page=1", {"Authorization": f"Bearer {token}"}, None, 200),
        ("DELETE", "/auth", {"Authorization": f"Bearer {token}"}, None, 204),
        ("GET", "/me", {"Authorization": f"Bearer {token}"}, None, 401),  # revoked
    ]
    for method, path, headers, body, status in calls:
        reply = requests.request(method, base + path, headers=headers, json=body, timeout=30)
        assert reply.status_code == status, (method, path, reply.text)
    failed = requests.post(f"{base}/auth", timeout=30,
                           json={"username": user["username"], "password": wrong_password})
    assert failed.status_code == 401

    log = _read_log_until(live["log"], f"user={user['user_id']}", expected=7)
    mine = [m for m in map(ACCESS_LINE.match, log.splitlines())
            if m and m.group(5) == str(user["user_id"])]
    # The login, then the six authenticated calls that succeeded.
    assert [(m.group(1), m.group(2), m.group(3)) for m in mine] == [
        ("POST", "/auth", "200"),
        ("GET", "/me", "200"),
        ("GET", "/me", "200"),
        ("POST", "/deliveries", "201"),
        ("GET", "/deliveries/sender/{sid}", "200"),
        ("GET", "/couriers", "200"),
        ("DELETE", "/auth", "204"),
    ]
    assert any(m.group(1) == "GET" and m.group(3) == "401" and m.group(5) == "-"
               for m in map(ACCESS_LINE.match, log.splitlines()) if m)
    digest = hashlib.sha256(token.encode()).hexdigest()
    for secret in (password, wrong_password, token, digest):
        assert secret not in log, "a password or token reached the log"


def _read_log_until(path, marker: str, expected: int) -> str:
    """The log file once `expected` lines containing `marker` are in it (or 5 seconds)."""
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text(errors="replace")
        if text.count(marker) >= expected or time.monotonic() > deadline:
            return text
        time.sleep(0.05)
