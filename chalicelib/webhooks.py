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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from chalice import BadRequestError

from chalicelib import config, conn
from chalicelib.errors import ServiceUnavailableError

TIMEOUT_SECONDS = 10.0  # a slower receiver counts as a failure
LEASE_SECONDS = 60
BATCH = 16
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
# IPv4-compatible (::a.b.c.d, deprecated) and SIIT's IPv4-translated
# (::ffff:0:a.b.c.d) addresses: the last 32 bits are an IPv4 address.
_LOW_32 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (mapped, IPv4-compatible, SIIT,
    NAT64, 6to4, Teredo), or None."""
    embedded = address.ipv4_mapped or address.sixtofour or (
        address.teredo[1] if address.teredo else None)
    if embedded is None and any(address in net for net in _NAT64 + _LOW_32):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (the cloud metadata address among them),
    and every other address that is not on the public internet; an IPv6
    address that carries an IPv4 one is refused when either is not public."""
    if isinstance(address, ipaddress.IPv6Address):
        if not address.is_global or address.is_multicast:
            return True
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            address = embedded
    return not address.is_global or address.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _parts(url: str, allow_local: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a webhook URL, judged by its text alone
    (no DNS), or ValueError saying why it is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_local):
        raise ValueError("must be an https:// URL")
    try:
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError("has an invalid host or port") from None
    if not hostname or parts.username or parts.password:
        raise ValueError("must have a host and no user or password")
    port = port if port is not None else _default_port(parts.scheme)
    if not 1 <= port <= 65535:
        raise ValueError("has an invalid port")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, hostname, port, path


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def needs_dns(url: str) -> bool:
    """Whether judging the URL means resolving its host (a name, not an address)."""
    host = urlsplit(url).hostname or ""
    return _literal(host) is None


def target(url: str, allow_local: bool) -> tuple[str, str, int, str, list[str]]:
    """(scheme, host, port, path, addresses to connect to) of a webhook URL,
    or ValueError saying why it is refused. With allow_local (local runs),
    http:// and any address are allowed; otherwise https:// only, and every
    address the host resolves to must be public."""
    scheme, host, port, path = _parts(url, allow_local)
    literal = _literal(host)
    if literal is not None and not allow_local and _refused(literal):
        raise ValueError(f"host {host} is an address that is not public "
                         "(loopback, private, link-local or metadata)")
    addresses = [host] if literal is not None else _resolve(host, port)
    if not addresses:
        raise ValueError(f"host {host} does not resolve")
    if not allow_local and any(_refused(ipaddress.ip_address(a.split("%")[0]))
                               for a in addresses):
        raise ValueError(f"host {host} is, or resolves to, an address that is not "
                         "public (loopback, private, link-local or metadata)")
    return scheme, host, port, path, addresses


def check_url(body: dict[str, Any]) -> str:
    """The subscription's URL, judged by its text alone: no DNS query is made
    here, so that a caller who is not (yet) known learns nothing from it
    (check_target resolves it, once the caller is)."""
    value = body.get("url")
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise BadRequestError(f"url: is required, at most {MAX_URL} characters")
    if any(not "\x21" <= ch <= "\x7e" for ch in value):
        raise BadRequestError("url: must be printable ASCII without spaces "
                              "(percent-encode the rest)")
    if not value.startswith(("https://", "http://")):
        raise BadRequestError("url: must be an https:// URL (lower-case scheme)")
    try:
        _parts(value, config.webhook_allow_http())
    except ValueError as exc:
        raise BadRequestError(f"url: {exc}") from None
    return value


def check_target(url: str) -> None:
    """400 unless the URL's host resolves, to public addresses only where
    https:// is required. Call it only for an authenticated caller."""
    try:
        target(url, config.webhook_allow_http())
    except ValueError as exc:
        raise BadRequestError(f"url: {exc}") from None


def check_events(body: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    value = body.get("events")
    if (not isinstance(value, list) or not value or len(value) > len(known)
            or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value)
            or not (value == ["*"] or all(v in known for v in value))):
        raise BadRequestError(f"events: must be [\"*\"] or a list of distinct event types "
                              f"({', '.join(known)})")
    return value


# ---------------------------------------------------------------- sending


def _host_header(host: str, port: int, scheme: str) -> str:
    """The Host header of a request to host:port (an IPv6 literal in brackets)."""
    name = f"[{host}]" if ":" in host else host
    return name if port == _default_port(scheme) else f"{name}:{port}"


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
        connection.request("POST", path, body=body, headers={
            "Host": _host_header(host, port, scheme), **headers})
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


MAX_ERROR = 500


def error_text(exc: BaseException) -> str:
    """What an attempt's failure is recorded as: the exception's name and text,
    whatever the receiver put in it (a NUL, control bytes, lone surrogates,
    megabytes), made printable and cut to MAX_ERROR characters."""
    text = f"{type(exc).__name__}: {exc}"[:MAX_ERROR * 4]
    safe = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256
                   else f"\\u{ord(ch):04x}" for ch in text)
    return safe[:MAX_ERROR]


def _deliver(row: tuple, allow_local: bool) -> tuple[int, int, int | None, str | None, int]:
    delivery_id, attempt, subscription_id, url, nonce, event_id, payload = row[:7]
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
        status, error = None, error_text(exc)
    return delivery_id, attempt, status, error, int((time.monotonic() - started) * 1000)


def _record(outcome: tuple[int, int, int | None, str | None, int], delays: list[int]) -> None:
    """Records one attempt. A failure to record it (the database away) is
    logged, not raised: the row's lease runs out and it is attempted again,
    and every other row goes on."""
    delivery_id, attempt, status, error, duration = outcome
    try:
        conn.rows("webhook_record", delivery_id, attempt, status, error, duration, delays)
    except Exception as exc:
        _log.warning("webhook attempt not recorded", extra={"fields": {
            "webhook_delivery": delivery_id, "attempt": attempt, "error": error_text(exc)}})
        conn.drop()
    if error:
        _log.info("webhook attempt failed", extra={"fields": {
            "webhook_delivery": delivery_id, "attempt": attempt, "error": error[:200]}})


# Fairness. A subscription has at most one attempt in flight (its first
# attempts go out one at a time, in the order of its rows); a user at most
# USER_IN_FLIGHT (ten subscriptions to one black hole take four workers, not
# all); subscriptions that are failing at most FAILING_IN_FLIGHT together, so
# that WORKERS - FAILING_IN_FLIGHT workers are always there for the healthy.
WORKERS = 32
USER_IN_FLIGHT = 4
FAILING_IN_FLIGHT = 8


def _claim(limit: int, in_flight: dict[int, tuple[int, bool]]) -> list[tuple]:
    """Claims up to `limit` due rows that the fairness rules allow beside the
    rows in flight (subscription id -> (user id, failing)). Each row is
    (delivery id, attempt, subscription id, url, nonce, event id, payload,
    user id, failing)."""
    per_user: dict[int, int] = {}
    failing = 0
    for user_id, is_failing in in_flight.values():
        per_user[user_id] = per_user.get(user_id, 0) + 1
        failing += is_failing
    return conn.rows("webhook_claim", limit, LEASE_SECONDS, list(in_flight),
                     list(per_user), [USER_IN_FLIGHT - n for n in per_user.values()],
                     USER_IN_FLIGHT, max(0, FAILING_IN_FLIGHT - failing))


def send_due(limit: int = BATCH) -> int:
    """One round: claims up to `limit` due rows (at most one per subscription),
    sends them in parallel, records each attempt. Returns how many were
    attempted."""
    rows = _claim(limit, {})
    if not rows:
        return 0
    allow_local, delays = config.webhook_allow_http(), config.webhook_retry_delays()
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(rows))) as pool:
        outcomes = list(pool.map(lambda row: _deliver(row, allow_local), rows))
    for outcome in outcomes:
        _record(outcome, delays)
    return len(rows)


def run(seconds: float, idle_sleep: float = 1.0,
        stop: Callable[[], bool] = lambda: False) -> int:
    """Sends for about `seconds` (a scheduled invocation, or the local loop);
    returns how many attempts were made. Attempts run side by side on WORKERS
    threads; each is recorded as soon as it ends, and the freed worker takes
    the next due row at once: nobody waits for a slow receiver but that
    receiver's own rows. New rows are looked for at least every `idle_sleep`
    seconds. At the deadline no new row is taken; those in flight end within
    TIMEOUT_SECONDS."""
    deadline, total = time.monotonic() + seconds, 0
    allow_local, delays = config.webhook_allow_http(), config.webhook_retry_delays()
    futures: dict[Future, tuple] = {}
    in_flight: dict[int, tuple[int, bool]] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        while True:
            taking = time.monotonic() < deadline and not stop()
            claimed: list[tuple] = []
            if taking and len(futures) < WORKERS:
                try:
                    claimed = _claim(WORKERS - len(futures), in_flight)
                except Exception as exc:  # the database away: try again after a pause
                    _log.warning("webhook claim failed", extra={"fields": {
                        "error": error_text(exc)}})
                    conn.drop()
                for row in claimed:
                    in_flight[row[2]] = (row[7], row[8])
                    futures[pool.submit(_deliver, row, allow_local)] = row
                total += len(claimed)
            if not futures:
                if not taking:
                    return total
                time.sleep(min(idle_sleep, max(0.0, deadline - time.monotonic())))
                continue
            # A claim takes all it may: the next can only find more once an
            # attempt ends (its subscription's next row) or new rows are due.
            done, _ = wait(futures, timeout=idle_sleep, return_when=FIRST_COMPLETED)
            for future in done:
                row = futures.pop(future)
                in_flight.pop(row[2], None)
                _record(future.result(), delays)
