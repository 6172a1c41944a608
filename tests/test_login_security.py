"""Login security over HTTP against `chalice local`: timing, caching, access log.

(Lockout after failed logins is tested in tests/test_auth.py.)
"""

import hashlib
import json
import secrets
import statistics
import time

import pytest
import requests

from tests.conftest import unique

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

    mine = _access_lines_until(live["log"], lambda e: e.get("caller") == user["user_id"], 7)
    # The login, then the six authenticated calls that succeeded.
    assert [(e["method"], e["route"], e["status"]) for e in mine] == [
        ("POST", "/auth", 200),
        ("GET", "/me", 200),
        ("GET", "/me", 200),
        ("POST", "/deliveries", 201),
        ("GET", "/deliveries/sender/{sid}", 200),
        ("GET", "/couriers", 200),
        ("DELETE", "/auth", 204),
    ]
    assert len({e["request_id"] for e in mine}) == len(mine)
    log = live["log"].read_text(errors="replace")
    assert any(e.get("method") == "GET" and e.get("status") == 401 and e.get("caller") is None
               and e.get("code") == "UnauthorizedError" for e in _access_lines(log))
    digest = hashlib.sha256(token.encode()).hexdigest()
    for secret in (password, wrong_password, token, digest):
        assert secret not in log, "a password or token reached the log"


def _access_lines(log: str) -> list[dict]:
    """The app's access log lines (one JSON object each) among the server's output
    (whole lines only: the server may be writing the last one)."""
    lines = []
    for line in log[:log.rfind("\n") + 1].splitlines():
        if line.startswith("{") and '"delivery_api.access"' in line:
            entry = json.loads(line)
            if entry["logger"] == "delivery_api.access":
                lines.append(entry)
    return lines


def _access_lines_until(path, wanted, expected: int) -> list[dict]:
    """The access lines for which `wanted` holds, once there are `expected` of
    them in the log file (or after 5 seconds)."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in _access_lines(path.read_text(errors="replace")) if wanted(e)]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
