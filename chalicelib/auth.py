"""Login and the per-address limits on logins and signups. Login takes two
round trips (look the user up, record the outcome) around the password check,
which runs in Python; an attempt refused for its address costs no hashing."""

import ipaddress
import json
import math
import time
from typing import Any

from chalice import BadRequestError, Response, TooManyRequestsError, UnauthorizedError

from chalicelib import config, conn, credentials, validation, web
from chalicelib.errors import error_response

WRONG = "username or password is wrong"


def client_address() -> str | None:
    """The caller's IP address as API Gateway (or chalice local) saw it."""
    context = web.request().context or {}
    source = (context.get("identity") or {}).get("sourceIp")
    try:
        return str(ipaddress.ip_address(source)) if isinstance(source, str) else None
    except ValueError:
        return None


# Addresses this process has seen refused, until their window ends: a flood
# from one address is answered here without a round trip. The database stays
# the judge (it is shared by every instance); this only remembers its "no".
_refused_until: dict[tuple[str, str], float] = {}


def _remembered(action: str, address: str | None, limit: int) -> int:
    """Seconds left of a refusal this process already got for the address, or 0
    (always 0 while the limit is off)."""
    if address is None or not limit:
        return 0
    until = _refused_until.get((action, address))
    if until is None:
        return 0
    left = until - time.monotonic()
    if left <= 0:
        _refused_until.pop((action, address), None)
        return 0
    return max(1, math.ceil(left))


def _remember(action: str, address: str | None, seconds: int) -> None:
    if address is not None and seconds:
        if len(_refused_until) > 10_000:
            _refused_until.clear()
        _refused_until[(action, address)] = time.monotonic() + seconds


def _too_many(field: str, what: str, seconds: int) -> Response:
    error = TooManyRequestsError(f"{field}: too many {what}; try again in {seconds} seconds")
    return error_response(error, headers={"Retry-After": str(seconds)})


def signup_refusal() -> Response | None:
    """A 429 when the caller's address has used up this minute's signups, else None."""
    address, limit = client_address(), config.auth_rate_per_minute()
    seconds = _remembered("signup", address, limit)
    if not seconds:
        seconds = conn.call("signup_allowance", address, limit)[0]
        _remember("signup", address, seconds)
    return _too_many("address", "signups from this address", seconds) if seconds else None


def login(body: dict[str, Any]) -> Response:
    """200 with a new token; 401 for a wrong password or an unknown username
    (after the same scrypt work, and counted the same way); 429 with
    Retry-After while the username is locked or the address is over its limit."""
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise BadRequestError("username: is required")
    if not isinstance(password, str) or not password:
        raise BadRequestError("password: is required")
    name = validation.storable(username, "username")[:64]
    address, limit = client_address(), config.auth_rate_per_minute()
    remembered = _remembered("login", address, limit)
    if remembered:
        return _too_many("address", "failed logins from this address", remembered)
    (user_id, stored, locked_seconds, limited_seconds), = conn.rows(
        "login_lookup", name, address, limit)
    if limited_seconds:
        _remember("login", address, limited_seconds)
        return _too_many("address", "failed logins from this address", limited_seconds)
    if locked_seconds:
        return locked_out(locked_seconds)
    ok = credentials.verify_password(password[:1024], stored)
    token = credentials.new_token()
    (outcome,) = conn.call("login_record", name, user_id, ok, credentials.token_digest(token),
                           config.token_ttl_seconds(), address)
    result = json.loads(outcome)
    if result["locked_seconds"]:
        return locked_out(result["locked_seconds"])
    if not result.pop("ok"):
        raise UnauthorizedError(WRONG)
    del result["locked_seconds"]
    web.set_user(user_id)
    return web.json_response(json.dumps(
        {"token": token, "hash": token, "token_type": "Bearer", **result}, separators=(",", ":")))


def locked_out(seconds: int) -> Response:
    return _too_many("username", "failed logins", seconds)
