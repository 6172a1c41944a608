"""Per-request plumbing: the current request, its id, the caller, the access log,
common headers.

The middleware is handed each request's own object and keeps it in a
thread-local, so views read their own request whatever the host does with
`app.current_request` (chalice local serves each request on its own thread).

Every response carries X-Request-Id: API Gateway's request id on AWS (the
event's requestContext.requestId), a fresh uuid4 hex where there is none
(chalice local, chalice.test). Every line logged under "delivery_api" is one
JSON object with that id (chalicelib/logs.py, docs/logs.md); the access log
writes one per request.
"""

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from chalice import Response, UnauthorizedError
from chalice.app import Request

from chalicelib import credentials, logs

_local = threading.local()

ACCESS_LOGGER = "delivery_api.access"
log = logging.getLogger(ACCESS_LOGGER)
_root = logging.getLogger("delivery_api")


def _log_context() -> dict[str, Any]:
    """The fields of the request this thread serves, for every other log line."""
    current = getattr(_local, "request", None)
    if current is None:
        return {"request_id": None}
    return {"request_id": _local.request_id, "method": current.method, "route": current.path}


_handler: logging.StreamHandler | None = None
if not log.handlers:
    # One handler on stderr for the whole hierarchy: the access log and the
    # others (delivery_api.db's warnings). Neither propagates to the root
    # logger, where the Lambda runtime's handler would write a second,
    # non-JSON copy.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logs.JsonFormatter(_log_context))
    for _logger in (log, _root):
        _logger.addHandler(_handler)
        _logger.setLevel(logging.INFO)
        _logger.propagate = False


def log_as_json(logger: logging.Logger) -> None:
    """Formats every line of another logger (Chalice's app.log, which writes the
    traceback of an unhandled error) as JSON with the request's fields."""
    formatter = logs.JsonFormatter(_log_context)
    for handler in logger.handlers:
        handler.setFormatter(formatter)


def _write_access_line(line: str) -> None:
    """One access log line. While the handler above is the logger's only one (as
    on Lambda), the line is written to its stream directly: the same bytes,
    without building a LogRecord, which costs more than the rest of the
    middleware. With any other handler, filter or level, the logger logs it."""
    handler = _handler
    handlers = log.handlers
    if (handler is not None and len(handlers) == 1 and handlers[0] is handler
            and not log.filters and not handler.filters and log.isEnabledFor(logging.INFO)):
        try:
            with handler.lock:
                handler.stream.write(line + handler.terminator)
                handler.stream.flush()
            return
        except Exception:
            pass  # the logger's own path reports it as logging does
    log.info(line, extra={logs.LINE_ATTRIBUTE: line})


def _json_value(value: object) -> str:
    """null, an integer, or a string, in JSON."""
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    return _json_string(str(value))


def access_log(request_id: str, method: str, route: str, status: int, duration_ms: float,
               caller: object = None, code: str | None = None) -> None:
    """Writes the access line of one request: no header, body or query string,
    so no token or password, ever. The line is built by hand (a fifth of what
    json.dumps of a dict costs); every string in it is JSON-escaped, in ASCII,
    so a method or path from the client cannot end the line or forge a field."""
    line = (f'{{"level": "INFO", "logger": "{ACCESS_LOGGER}", '
            f'"request_id": {_json_string(request_id)}, "method": {_json_string(method)}, '
            f'"route": {_json_string(route)}, "status": {int(status)}, '
            f'"duration_ms": {duration_ms:.2f}, "caller": {_json_value(caller)}')
    if status >= 400:
        line += f', "code": {_json_value(code)}'
    _write_access_line(line + "}")


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_request_id() -> str:
    """A random version 4 UUID in 32 hex digits, as uuid.uuid4().hex makes it,
    without the import of uuid (and platform) on every cold start."""
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET:032x}"


# API Gateway's ids are UUIDs; a client may override it (an x-amzn-RequestId
# request header), so anything else is replaced rather than echoed.
_GATEWAY_ID = re.compile(r"[0-9A-Za-z._-]{1,100}")


def _request_id_of(event: Request) -> str:
    """API Gateway's id of the request, or a fresh one where there is none
    (chalice local and chalice.test send no requestContext.requestId)."""
    request_id = (event.context or {}).get("requestId")
    if isinstance(request_id, str) and _GATEWAY_ID.fullmatch(request_id):
        return request_id
    return new_request_id()


def _error_code(body: object) -> str | None:
    """The "Code" of a JSON error body, or None."""
    if isinstance(body, str | bytes) and body[:1] in ("{", b"{"):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    code = body.get("Code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


# Every response is private to its caller: nothing may be cached on the way.
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def request() -> Request:
    """The request this thread is serving."""
    return _local.request


def set_user(user_id: object) -> None:
    """Names the caller in this request's access log line."""
    _local.user_id = user_id


def bearer_digest() -> bytes:
    """The digest of the current request's bearer credential (a login token
    or an API key) as the database takes it (credentials.bearer_digest), or 401."""
    header = request().headers.get("authorization")
    if not header:
        raise UnauthorizedError("Authorization: a bearer token is required")
    scheme, _, rest = header.strip().partition(" ")
    credential = rest.strip() if scheme.lower() == "bearer" else header.strip()
    digest = credentials.bearer_digest(credential)
    if digest is None:
        raise UnauthorizedError("Authorization: the token is invalid, expired or revoked")
    return digest


def json_response(body: str | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A response whose body is JSON text the database already built (with
    the owner sender's tracking URLs put in: chalicelib/tracking.py)."""
    if body is not None and '"tracking_url":' in body:
        from chalicelib import tracking

        body = tracking.render(body, request())
    return Response(body=body if body is not None else "",
                    status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Keeps the request and its id per thread, adds common headers and
    X-Request-Id, writes one access log line."""
    started = time.perf_counter()
    request_id = _request_id_of(event)
    _local.request_id = request_id
    _local.request = event
    _local.user_id = None
    try:
        response = get_response(event)
    finally:
        _local.request = None
        _local.request_id = None
    status = response.status_code
    if status == 415:
        # Chalice's own 415 names the media type sent, not the header to fix.
        response.body = {"Code": "UnsupportedMediaType",
                         "Message": "Content-Type: must be application/json"}
    headers = response.headers
    for name, value in COMMON_HEADERS.items():
        headers.setdefault(name, value)
    headers["X-Request-Id"] = request_id
    access_log(request_id, event.method, event.path, status,
               (time.perf_counter() - started) * 1000, _local.user_id,
               _error_code(response.body) if status >= 400 else None)
    return response
