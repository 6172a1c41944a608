"""Per-request plumbing: the current request, the caller, the access log, common headers.

The middleware is handed each request's own object and keeps it in a
thread-local, so views read their own request whatever the host does with
`app.current_request` (chalice local serves each request on its own thread).
"""

import logging
import sys
import threading
import time
from collections.abc import Callable

from chalice import Response, UnauthorizedError
from chalice.app import Request

from chalicelib import credentials

_local = threading.local()

log = logging.getLogger("delivery_api.access")
_handler: logging.StreamHandler | None = None
if not log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _access_log(fmt: str, *args: object) -> None:
    """One access log line. While the handler above is the logger's only one (as
    on Lambda), the line is written to its stream directly: the same bytes,
    without building a LogRecord, which costs more than the rest of the
    middleware. With any other handler, filter or level, the logger logs it."""
    handler = _handler
    if (handler is not None and log.handlers == [handler] and not log.filters
            and not handler.filters and log.isEnabledFor(logging.INFO)):
        try:
            line = fmt % args + handler.terminator
            with handler.lock:
                handler.stream.write(line)
                handler.stream.flush()
            return
        except Exception:
            pass  # the logger's own path reports it as logging does
    log.info(fmt, *args)


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
    """SHA-256 of the bearer token of the current request, or 401."""
    header = request().headers.get("authorization")
    if not header:
        raise UnauthorizedError("Authorization: a bearer token is required")
    scheme, _, rest = header.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header.strip()
    if not credentials.is_token(token):
        raise UnauthorizedError("Authorization: the token is invalid, expired or revoked")
    return credentials.token_digest(token)


def json_response(body: str | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A response whose body is JSON text the database already built."""
    return Response(body=body if body is not None else "",
                    status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Keeps the request per thread, adds common headers, writes one access log line."""
    started = time.perf_counter()
    _local.request = event
    _local.user_id = None
    try:
        response = get_response(event)
    finally:
        _local.request = None
    if response.status_code == 415:
        # Chalice's own 415 names the media type sent, not the header to fix.
        response.body = {"Code": "UnsupportedMediaType",
                         "Message": "Content-Type: must be application/json"}
    for name, value in COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
    _access_log("%s %s %s %.1fms user=%s", event.method, event.path, response.status_code,
                (time.perf_counter() - started) * 1000, _local.user_id or "-")
    return response
