"""Webhooks: subscription URLs, signing secrets, and the sender.

A subscription's signing secret is never stored: it is derived from the server
key (config.webhook_signing_key, outside the database) and the subscription's
id and random nonce, so that a dump of the database alone cannot sign. The
sender takes due deliveries from the database (webhook_claim: FOR UPDATE SKIP
LOCKED, leased), POSTs each with the Standard Webhooks headers, and records
every attempt (webhook_record), which schedules the next one.
"""

import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from chalice import BadRequestError

from chalicelib import config, conn
from chalicelib.errors import ServiceUnavailableError

TIMEOUT_SECONDS = 10.0  # a slower receiver counts as a failure
LEASE_SECONDS = 60
BATCH = 16
WORKERS = 8
MAX_URL = 2048
_log = logging.getLogger("delivery_api.webhooks")


# ---------------------------------------------------------------- secrets


def secret(subscription_id: int, nonce: bytes) -> bytes:
    """The 32 key bytes a subscription's signatures are made with."""
    key = config.webhook_signing_key()
    if key is None:
        raise ServiceUnavailableError("webhooks: not configured on this deployment")
    message = b"webhook-secret:%d:" % subscription_id + nonce
    return hmac.new(key, message, hashlib.sha256).digest()


def secret_text(key: bytes) -> str:
    """The secret as shown once to the subscriber (Standard Webhooks' form)."""
    return "whsec_" + base64.b64encode(key).decode()


def signature(key: bytes, msg_id: str, timestamp: int, body: str) -> str:
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# ---------------------------------------------------------------- URLs


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (the cloud metadata address among them),
    and every other address that is not on the public internet; an IPv6
    address that carries an IPv4 one (mapped, NAT64, 6to4, Teredo) is judged
    by the IPv4 address it leads to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (
            address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    return not address.is_global or address.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def target(url: str, allow_local: bool) -> tuple[str, str, int, str, list[str]]:
    """(scheme, host, port, path, addresses to connect to) of a webhook URL,
    or ValueError saying why it is refused. With allow_local (local runs),
    http:// and any address are allowed; otherwise https:// only, and every
    address the host resolves to must be public."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_local):
        raise ValueError("must be an https:// URL")
    if not parts.hostname or parts.username or parts.password:
        raise ValueError("must have a host and no user or password")
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not 1 <= port <= 65535:
        raise ValueError("has an invalid port")
    addresses = _resolve(parts.hostname, port)
    if not addresses:
        raise ValueError(f"host {parts.hostname} does not resolve")
    if not allow_local and any(_refused(ipaddress.ip_address(a.split("%")[0]))
                               for a in addresses):
        raise ValueError(f"host {parts.hostname} is, or resolves to, an address that is not "
                         "public (loopback, private, link-local or metadata)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, addresses


def check_url(body: dict[str, Any]) -> str:
    value = body.get("url")
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise BadRequestError(f"url: is required, at most {MAX_URL} characters")
    if any(not "\x21" <= ch <= "\x7e" for ch in value):
        raise BadRequestError("url: must be printable ASCII without spaces "
                              "(percent-encode the rest)")
    if not value.startswith(("https://", "http://")):
        raise BadRequestError("url: must be an https:// URL (lower-case scheme)")
    try:
        target(value, config.webhook_allow_http())
    except ValueError as exc:
        raise BadRequestError(f"url: {exc}") from None
    return value


def check_events(body: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    value = body.get("events")
    if (not isinstance(value, list) or not value or len(value) > len(known)
            or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value)
            or not (value == ["*"] or all(v in known for v in value))):
        raise BadRequestError(f"events: must be [\"*\"] or a list of distinct event types "
                              f"({', '.join(known)})")
    return value


# ---------------------------------------------------------------- sending


def post(url: str, headers: dict[str, str], body: bytes, allow_local: bool,
         timeout: float | None = None) -> int:
    """POSTs body to url and returns the status. The host is resolved and
    checked now (again) and the connection goes to the address checked, so
    that a name that changed its address since the subscription cannot lead
    inward. The whole exchange (connect, TLS, request, answer) has `timeout`
    seconds: at the deadline the socket is shut, whatever is in progress.
    Raises (OSError, http.client.HTTPException, ValueError) when there is no
    answer in time."""
    import http.client
    import ssl

    timeout = timeout or TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    scheme, host, port, path, addresses = target(url, allow_local)
    raw = socket.create_connection((addresses[0], port),
                                   timeout=max(0.1, deadline - time.monotonic()))
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    watchdog.start()
    sock = raw
    try:
        if scheme == "https":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.sock = sock
        default_port = 443 if scheme == "https" else 80
        connection.request("POST", path, body=body, headers={
            "Host": host if port == default_port else f"{host}:{port}", **headers})
        response = connection.getresponse()
        response.read(65536)
        if expired.is_set():
            raise TimeoutError(f"the receiver took longer than {timeout:g} s")
        return response.status
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError(f"the receiver took longer than {timeout:g} s") from None
        raise
    finally:
        watchdog.cancel()
        sock.close()


def _deliver(row: tuple, allow_local: bool) -> tuple[int, int, int | None, str | None, int]:
    delivery_id, attempt, subscription_id, url, nonce, event_id, payload = row
    started = time.monotonic()
    status, error = None, None
    try:
        key = secret(subscription_id, bytes(nonce))
        now = int(time.time())
        headers = {"Content-Type": "application/json",
                   "User-Agent": "delivery-api-webhooks",
                   "webhook-id": str(event_id),
                   "webhook-timestamp": str(now),
                   "webhook-signature": signature(key, str(event_id), now, payload)}
        status = post(url, headers, payload.encode(), allow_local)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except Exception as exc:  # whatever went wrong, this attempt failed: recorded as such
        status, error = None, f"{type(exc).__name__}: {exc}"
    return delivery_id, attempt, status, error, int((time.monotonic() - started) * 1000)


def send_due(limit: int = BATCH) -> int:
    """One round: claims up to `limit` due deliveries, sends them in parallel,
    records each attempt. Returns how many were attempted."""
    rows = conn.rows("webhook_claim", limit, LEASE_SECONDS)
    if not rows:
        return 0
    allow_local, delays = config.webhook_allow_http(), config.webhook_retry_delays()
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(rows))) as pool:
        outcomes = list(pool.map(lambda row: _deliver(row, allow_local), rows))
    for delivery_id, attempt, status, error, duration in outcomes:
        conn.rows("webhook_record", delivery_id, attempt, status, error, duration, delays)
        if error:
            _log.info("webhook attempt failed", extra={"fields": {
                "webhook_delivery": delivery_id, "attempt": attempt, "error": error[:200]}})
    return len(rows)


def run(seconds: float, idle_sleep: float = 1.0,
        stop: Callable[[], bool] = lambda: False) -> int:
    """Sends for about `seconds` (a scheduled invocation, or the local loop);
    returns how many attempts were made."""
    deadline, total = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and not stop():
        sent = send_due()
        total += sent
        if sent < BATCH:
            time.sleep(min(idle_sleep, max(0.0, deadline - time.monotonic())))
    return total
