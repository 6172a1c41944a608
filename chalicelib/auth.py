"""Login: the two round trips (look the user up, record the outcome) around the
password check, which runs in Python."""

import json
from typing import Any

from chalice import BadRequestError, Response, TooManyRequestsError, UnauthorizedError

from chalicelib import conn, credentials, validation, web
from chalicelib.errors import error_response

WRONG = "username or password is wrong"


def login(body: dict[str, Any], ttl_seconds: int) -> Response:
    """200 with a new token; 401 for a wrong password or an unknown username
    (after the same scrypt work); 429 with Retry-After while locked out."""
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise BadRequestError("username: is required")
    if not isinstance(password, str) or not password:
        raise BadRequestError("password: is required")
    found = conn.rows("login_lookup", validation.storable(username, "username")[:64])
    user_id, stored, locked_seconds = found[0] if found else (None, None, 0)
    if locked_seconds:
        return locked_out(locked_seconds)
    ok = credentials.verify_password(password[:1024], stored)
    if user_id is None:
        raise UnauthorizedError(WRONG)
    token = credentials.new_token()
    (outcome,) = conn.call("login_record", user_id, ok, credentials.token_digest(token),
                           ttl_seconds)
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
    error = TooManyRequestsError(
        f"username: too many failed logins; try again in {seconds} seconds")
    return error_response(error, headers={"Retry-After": str(seconds)})
