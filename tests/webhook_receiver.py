"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that
verifies every request with the `standardwebhooks` package (a client nobody
here wrote) and records what it got. Its answer can be set: a status, a
number of failures per message before it answers 2xx, or a hang."""

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class Receiver:
    def __init__(self, port: int = 0):
        self.secret: str | None = None
        self.received: list[dict] = []      # verified messages, in arrival order
        self.unverified: list[str] = []     # requests whose signature failed
        self.status = 204
        self.fail_first = 0                 # answer 500 this many times per webhook-id
        self.hang_seconds = 0.0
        self._tries: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._handle(self, body, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _handle(self, handler, body: bytes, headers: dict[str, str]) -> None:
        if self.hang_seconds:
            time.sleep(self.hang_seconds)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except Exception as exc:  # recorded: the test asserts there are none
            with self._lock:
                self.unverified.append(f"{type(exc).__name__}: {exc}")
            handler.send_response(400)
            handler.end_headers()
            return
        msg_id = headers["webhook-id"]
        with self._lock:
            self._tries[msg_id] += 1
            failing = self._tries[msg_id] <= self.fail_first
            if not failing:
                self.received.append({"id": msg_id, "payload": payload,
                                      "raw": json.loads(body), "headers": headers})
        handler.send_response(500 if failing else self.status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def tries(self, msg_id: str) -> int:
        return self._tries[msg_id]

    def ids(self) -> list[int]:
        with self._lock:
            return [int(m["id"]) for m in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
