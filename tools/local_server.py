"""The local server of `make run` and the tests: Chalice's own dev server (what
`chalice local --stage STAGE --no-autoreload` runs), with guards against hostile
clients that `chalice local` lacks.

- Body: a Content-Length that is not a plain number (or two that differ), or a
  Transfer-Encoding, is answered 400; a body over the app's limit
  (validation.MAX_BODY_BYTES) 413 without reading it; a body shorter than its
  Content-Length (the client gave up) 400, or nothing if the client is gone; a
  body that stalls for LOCAL_READ_TIMEOUT_SECONDS (default 10) 408. None of these
  reaches the app. Each refusal closes the connection.
- TCP_NODELAY on every connection: an answer's body is not held back until the
  client acknowledges its headers.
- Database: after each request the thread's connection goes back to a small
  process-wide idle pool (conn.release()), so idle keep-alive clients, each on
  its own thread, hold no PostgreSQL backend.

    python -m tools.local_server --host 127.0.0.1 --port 8000 --stage dev
"""

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalice import local
from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes

ROOT = Path(__file__).resolve().parent.parent
_LENGTH_RE = re.compile(r"[0-9]+")


class NoRouteError(local.LocalGatewayException):
    """No route matches: the deployed API's answer (.chalice/sam-merge.json's
    MISSING_AUTHENTICATION_TOKEN response), not chalice local's 403, which
    repeats the caller's Authorization header back (and fails on one that
    is not ASCII)."""

    CODE = 404
    BODY = json.dumps({"Code": "NotFoundError",
                       "Message": "path: no route of this API matches this method and path"})


class _ReleasingGateway(local.LocalGateway):
    """Chalice's local API Gateway; the thread's database connection is released
    as soon as the app has answered, before the response is written."""

    def handle_request(self, method: str, path: str, headers: dict[str, Any],
                       body: bytes | None) -> dict[str, Any]:
        from chalicelib import conn, web

        try:
            if not self._has_route(path):
                raise NoRouteError({"Content-Type": "application/json", **web.COMMON_HEADERS},
                                   NoRouteError.BODY.encode())
            return super().handle_request(method, path, headers, body)
        except local.LocalGatewayException as refusal:
            # chalice local's own answers carry an id too, as the app's do.
            refusal.headers["X-Request-Id"] = web.new_request_id()
            raise
        finally:
            conn.release()

    def _has_route(self, path: str) -> bool:
        """Whether a route matches the path, as chalice local matches it."""
        try:
            self.event_converter._route_matcher.match_route(path)
        except ValueError:
            return False
        return True


class _BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class GuardedRequestHandler(local.ChaliceRequestHandler):
    """ChaliceRequestHandler that reads the body whole or not at all."""

    read_timeout = 10.0
    # An answer goes out as two writes (headers, then body). With Nagle's
    # algorithm the body waited for the client's ACK of the headers, which a
    # keep-alive client delays by up to 40 ms: every answer took that long.
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any,
                 app_object: Any, config: Any) -> None:
        self.local_gateway = _ReleasingGateway(app_object, config)
        self._body: bytes | None = None
        local.BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Nothing: the app's JSON access line (or _refuse's) is the one line of
        a request. http.server's own errors still reach stderr (log_error)."""

    def handle_one_request(self) -> None:
        # A keep-alive client may stay idle between requests as long as it likes
        # (it holds a thread, not a database connection); once a request line
        # has come, the rest must not stall.
        self.connection.settimeout(None)
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.connection.settimeout(self.read_timeout)
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        """No `100 Continue` for a body that would be refused unread."""
        try:
            self._declared_length()
        except _BodyRefused as refusal:
            self._refuse(refusal)
            return False
        return super().handle_expect_100()

    def _declared_length(self) -> int:
        if self.headers.get_all("transfer-encoding"):
            raise _BodyRefused(400, "BadRequestError",
                               "body: Transfer-Encoding is not supported, send Content-Length")
        values = self.headers.get_all("content-length") or []
        if not values:
            return 0
        digits = values[0].strip()
        if len({v.strip() for v in values}) != 1 or not _LENGTH_RE.fullmatch(digits):
            raise _BodyRefused(400, "BadRequestError", "body: Content-Length is malformed")
        from chalicelib.validation import MAX_BODY_BYTES

        digits = digits.lstrip("0") or "0"  # int() of thousands of digits is refused
        length = int(digits) if len(digits) <= 18 else MAX_BODY_BYTES + 1
        if length > MAX_BODY_BYTES:
            raise _BodyRefused(413, "PayloadTooLargeError",
                               f"body: larger than {MAX_BODY_BYTES} bytes")
        return length

    def _read_body(self) -> bytes | None:
        length = self._declared_length()
        if length == 0:
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise _BodyRefused(408, "RequestTimeoutError",
                               f"body: not received within {self.read_timeout:g} s") from None
        if len(body) < length:
            raise _BodyRefused(400, "BadRequestError",
                               f"body: {len(body)} of {length} bytes (Content-Length) received")
        return body

    def _parse_payload(self) -> tuple[dict[str, Any], bytes | None]:
        return dict(self.headers), self._body

    def _generic_handle(self) -> None:
        started = time.perf_counter()
        try:
            self._body = self._read_body()
        except _BodyRefused as refusal:
            self._refuse(refusal, started)
            return
        except OSError:  # the client reset the connection while sending
            self.close_connection = True
            return
        super()._generic_handle()

    def _refuse(self, refusal: _BodyRefused, started: float | None = None) -> None:
        """Answers in the app's error shape and closes: the rest of the body, if
        any, is never read."""
        from chalicelib import web

        self.close_connection = True
        request_id = web.new_request_id()
        body = json.dumps({"Code": refusal.code, "Message": refusal.message},
                          separators=(",", ":"))
        headers = {"Content-Type": "application/json", "Connection": "close",
                   "X-Request-Id": request_id, **web.COMMON_HEADERS}
        try:
            self._send_http_response(refusal.status, headers, body)
        except OSError:
            pass  # the client is gone: nobody to tell
        elapsed = (time.perf_counter() - (started or time.perf_counter())) * 1000
        web.access_log(request_id, self.command, urlsplit(self.path).path, refusal.status,
                       elapsed, code=refusal.code)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


class GuardedHTTPServer(local.ThreadedHTTPServer):
    # 200 clients connecting at once are not turned away by a backlog of 5.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not a server error: no traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def create_server(host: str, port: int, stage: str,
                  project_dir: Path = ROOT) -> local.LocalDevServer:
    """What `chalice local` builds (the stage's config and environment, the app
    imported from project_dir), with the guarded handler."""
    factory = CLIFactory(str(project_dir), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # As chalice.local.create_local_server does: app.current_request per thread.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app_obj, config, host, port,
                                handler_cls=GuardedRequestHandler,
                                server_cls=GuardedHTTPServer)


def _settings_problem() -> str | None:
    """Reads LOCAL_READ_TIMEOUT_SECONDS and checks DB_IDLE_CONNECTIONS; a message
    naming a wrong setting, or None."""
    from chalicelib import conn

    try:
        GuardedRequestHandler.read_timeout = float(
            os.environ.get("LOCAL_READ_TIMEOUT_SECONDS", "10"))
        if not 0 < GuardedRequestHandler.read_timeout <= 3600:
            raise ValueError
    except ValueError:
        return "LOCAL_READ_TIMEOUT_SECONDS: must be a number of seconds above 0, at most 3600"
    try:
        if conn.idle_limit() < 0:
            raise ValueError
    except ValueError:
        return "DB_IDLE_CONNECTIONS: must be a whole number, 0 or more"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # as the chalice CLI sets it
    # `chalice local` logs to stdout this way (the app's access log has its own handler).
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    project_dir = args.project_dir.resolve()
    os.chdir(project_dir)  # as `chalice local` runs: from the project folder
    server = create_server(args.host, args.port, args.stage, project_dir)
    problem = _settings_problem()  # after the stage's environment is applied
    if problem:
        server.server.server_close()
        print(problem, file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
