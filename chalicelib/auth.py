"""Login and the per-address limits on logins and signups. Login takes two
round trips (look the user up, record the outcome) around the password check,
which runs in Python; an attempt refused for its address costs no hashing."""

import ipaddress
import json
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


def _too_many(field: str, what: str, seconds: int) -> Response:
    error = TooManyRequestsError(f"{field}: too many {what}; try again in {seconds} seconds")
    return error_response(error, headers={"Retry-After": str(seconds)})


def signup_refusal() -> Response | None:
    """A 429 when the caller's address has used up this minute's signups, else None."""
    seconds = conn.call("signup_allowance", client_address(), config.auth_rate_per_minute())[0]
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
    address = client_address()
    (user_id, stored, locked_seconds, limited_seconds), = conn.rows(
        "login_lookup", name, address, config.auth_rate_per_minute())
    if limited_seconds:
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
        {"token": token, "hash": token, "token_type": "Bearer", **result}))


def locked_out(seconds: int) -> Response:
    return _too_many("username", "failed logins", seconds)
