"""Schemathesis fuzzes every operation of openapi.yaml against a real `chalice local`.

Every generated case (valid and invalid bodies, path and query parameters) is sent
as the demo sender, as the demo courier, with a read-only API key of the demo
sender and without a token. No response may be a
5xx, and every response must conform to the document: a documented status code,
its content type, its required headers and its schema. The database starts with
the demo sender's deliveries in every status of the lifecycle, some of them the
demo courier's, so that both callers' actions can get past 404; cursor-mode pages,
which a fuzzer cannot reach, are followed and checked separately.

The run is bounded: a fixed number of examples per operation and a time budget for
the whole module (cases past the budget are generated but not sent). It uses its
own scratch database and `chalice local` process, because fuzzing fills couriers'
daily limits, creates users and may lock demo users out, which other tests must
not see.
"""

import hashlib
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import start_chalice_local, stop
from tools import devdb

pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
TIME_BUDGET_SECONDS = float(os.environ.get("FUZZ_TIME_BUDGET", "90"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_path(SPEC, config=schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
    # chalice local (http.server) answers 501 to TRACE and QUERY before the app
    # sees them; API Gateway would answer them itself. Probe the methods it serves.
    "phases": {"stateful": {"enabled": False},
               "coverage": {"unexpected-methods": ["get", "put", "post", "delete", "patch"]}},
    "suppress-health-check": ["all"],
}))

_stats: dict[str, Any] = {"cases": 0, "requests": 0, "skipped": 0, "started": None,
                          "statuses": Counter()}


@pytest.fixture(scope="module")
def fuzz_target(server_url: str) -> Iterator[dict[str, Any]]:
    """A scratch database with the demo users, served by its own `chalice local`."""
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        process, base, log_path = start_chalice_local(url)
        db = psycopg2.connect(url)
        db.autocommit = True
        try:
            tokens = {role: _login(base, role) for role in ("sender", "courier")}
            _seed_lifecycle(base, tokens)
            tokens["read_key"] = _read_key(base, tokens["sender"])
            yield {"base": base, "db": db, "tokens": tokens, "log": log_path}
        finally:
            db.close()
            stop(process)


def _login(base: str, username: str) -> str:
    reply = requests.post(f"{base}/auth", json={"username": username, "password": "pass"},
                          timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def _seed_lifecycle(base: str, tokens: dict[str, str]) -> None:
    """Deliveries of the demo sender in every status, four of them assigned to the
    demo courier (four of their five slots today), and a second courier. Some fuzzed
    ids are small, so the actions, histories and feeds meet deliveries that each
    caller may act on (else every courier action would be a 404, its 200 never
    checked), and every list has a second page, for test_cursor_pages_conform."""
    def send(method: str, path: str, role: str, body: dict[str, Any] | None = None) -> Any:
        reply = requests.request(method, f"{base}{path}", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {tokens[role]}"})
        assert reply.status_code in (200, 201), (method, path, reply.text)
        return reply.json()

    ids = [send("POST", "/deliveries", "sender",
                {"size": "10x20x30", "cost": "12.50", "external_id": f"seed-{n}"})["id"]
           for n in range(6)]
    for did in ids[:4]:
        send("PUT", f"/assign/{did}/1", "sender")
    for did, role, action, body in (
            (ids[1], "courier", "pickup", None),
            (ids[2], "courier", "pickup", None),
            (ids[2], "courier", "deliver", {"recipient_name": "Ann Lee", "note": "at the door"}),
            (ids[3], "courier", "pickup", None),
            (ids[3], "courier", "fail", {"reason": "refused", "note": "wrong parcel"}),
            (ids[4], "sender", "cancel", {"reason": "ordered twice"})):
        send("POST", f"/deliveries/{did}/{action}", role, body)
    reply = requests.post(f"{base}/signup", timeout=30, json={
        "username": "fuzz.seed", "password": "correct horse", "role": "courier",
        "first_name": "Ann", "last_name": "Lee", "phone": "+15550000002", "vehicle": "van"})
    assert reply.status_code == 201, reply.text


def _read_key(base: str, token: str) -> str:
    reply = requests.post(f"{base}/api-keys", json={"name": "fuzz", "scope": "read"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status_code == 201, reply.text
    return reply.json()["key"]


def _fresh_token(db: Any, username: str) -> str:
    """A new session for a demo user, made behind the API's back (no scrypt cost)."""
    token = secrets.token_hex(20)
    with db.cursor() as cur:
        cur.execute("INSERT INTO sessions (token_sha256, user_id, expires_at) "
                    "SELECT %s, id, now() + interval '1 hour' FROM users WHERE username = %s",
                    (hashlib.sha256(token.encode()).digest(), username))
    return token


def _secured(case: Any) -> bool:
    operation = case.operation.definition.raw
    return bool(operation.get("security", schema.raw_schema.get("security")))


@schema.parametrize()
def test_fuzzed_requests_get_documented_responses_and_no_5xx(case, fuzz_target):
    now = time.monotonic()
    if _stats["started"] is None:
        _stats["started"] = now
    if now - _stats["started"] > TIME_BUDGET_SECONDS:
        _stats["skipped"] += 1
        return
    _stats["cases"] += 1
    base, tokens = fuzz_target["base"], fuzz_target["tokens"]
    callers: list[str | None] = (["sender", "courier", "read_key", None] if _secured(case)
                                 else [None])
    for caller in callers:
        headers = {}
        if caller is not None:
            token = tokens[caller]
            if case.method.upper() == "DELETE" and case.path == "/auth" \
                    and caller != "read_key":
                token = _fresh_token(fuzz_target["db"], caller)  # logout revokes it
            headers["Authorization"] = f"Bearer {token}"
        response = case.call(base_url=base, headers=headers, timeout=30)
        _stats["requests"] += 1
        _stats["statuses"][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)


def test_cursor_pages_conform(fuzz_target):
    """Cursor mode, which fuzzing cannot reach (it cannot make a valid cursor): each
    list is followed by next_cursor to its end, and every page must conform."""
    base, tokens = fuzz_target["base"], fuzz_target["tokens"]
    for template, path, role in (("/couriers", "/couriers", "sender"),
                                 ("/deliveries/sender/{sid}", "/deliveries/sender/1", "sender"),
                                 ("/deliveries/courier/{cid}", "/deliveries/courier/1", "sender"),
                                 ("/deliveries/courier/{cid}", "/deliveries/courier/1", "courier")):
        operation = schema[template]["GET"]
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        reply = requests.get(f"{base}{path}?per_page=1", headers=headers, timeout=30)
        operation.validate_response(reply)
        cursor, pages = reply.json()["next_cursor"], 0
        while cursor is not None:
            reply = requests.get(f"{base}{path}", params={"per_page": 1, "after": cursor},
                                 headers=headers, timeout=30)
            operation.validate_response(reply)
            page = reply.json()
            assert page["page"] is None and page["next_page"] is None, (path, page)
            cursor, pages = page["next_cursor"], pages + 1
        assert pages >= 1, (role, path)


def test_fuzz_summary(capsys):
    """Prints what the fuzzing did, so that CI logs show it."""
    elapsed = time.monotonic() - (_stats["started"] or time.monotonic())
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(_stats["statuses"].items()))
    with capsys.disabled():
        print(f"\nfuzz: {_stats['cases']} cases, {_stats['requests']} requests in "
              f"{elapsed:.1f}s over {len(list(schema.get_all_operations()))} operations "
              f"({_stats['skipped']} cases past the time budget not sent); statuses {statuses}")
    assert _stats["statuses"].get(500, 0) == 0
