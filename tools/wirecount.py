"""A PostgreSQL wire-protocol proxy that counts the statements clients send.

The app connects to the proxy instead of the server; every simple-query ('Q')
and extended-protocol parse ('P') message on the way is recorded, so a test
sees exactly what went over the wire, BEGIN and COMMIT included.
"""

import socket
import struct
import threading

import psycopg2.extensions


def _shut(*sockets: socket.socket) -> None:
    """Ends both directions of each socket, so the pump on the other side stops too."""
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class StatementCounter:
    def __init__(self, target_dsn: str):
        params = psycopg2.extensions.parse_dsn(target_dsn)
        host = params.get("host") or "/tmp"
        port = int(params.get("port") or 5432)
        if host.startswith("/"):
            self._target = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self._target = (socket.AF_INET, (host, port))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.dsn = psycopg2.extensions.make_dsn(
            target_dsn, host="127.0.0.1", port=self.port, sslmode="disable",
            gssencmode="disable")
        self._lock = threading.Lock()
        self.statements: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()

    def taken(self) -> list[str]:
        with self._lock:
            return list(self.statements)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            family, address = self._target
            server = socket.socket(family, socket.SOCK_STREAM)
            server.connect(address)
            threading.Thread(target=self._client_to_server, args=(client, server),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src, dst)

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        buffer = b""
        started = False  # the startup message has no type byte
        try:
            while data := client.recv(65536):
                # Record before forwarding: the reply (and so the test's next
                # look at the count) can only come after the server has it.
                buffer += data
                while True:
                    head = 4 if not started else 5
                    if len(buffer) < head:
                        break
                    if not started:
                        (length,) = struct.unpack("!I", buffer[:4])
                        kind, body_at, total = None, 4, length
                    else:
                        (length,) = struct.unpack("!I", buffer[1:5])
                        kind, body_at, total = buffer[:1], 5, length + 1
                    if len(buffer) < total:
                        break
                    body, buffer = buffer[body_at:total], buffer[total:]
                    started = True
                    if kind == b"Q":
                        self._record(body.rstrip(b"\x00").decode(errors="replace"))
                    elif kind == b"P":
                        _, _, rest = body.partition(b"\x00")
                        self._record(rest.split(b"\x00", 1)[0].decode(errors="replace"))
                server.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client, server)

    def _record(self, sql: str) -> None:
        with self._lock:
            self.statements.append(sql)

    def close(self) -> None:
        self._listener.close()
