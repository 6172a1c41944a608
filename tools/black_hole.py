"""A webhook receiver that accepts every connection on 127.0.0.1 and never
answers: each attempt to it lasts the sender's whole timeout. Shared by the
tests (tests/test_webhook_sender.py) and `make bench-webhooks`."""

import socket
import threading
import time


class BlackHole:
    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(256)
        self.held: list[socket.socket] = []
        self.accepted_at: list[float] = []  # time.monotonic() of each connection
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hooks"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
                self.accepted_at.append(time.monotonic())
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for held in self.held:
            held.close()
