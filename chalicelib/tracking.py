"""Tracking: the recipient's link to a delivery (`/track/{token}`).

A token is 32 URL-safe characters, the base64url of 24 bytes: the delivery's id
under a keyed permutation of 64-bit numbers (8 bytes, so that a token shows
neither the id nor how many deliveries there are), then the first 16 bytes of
an HMAC-SHA256 over those 8 (128 bits that nobody without the key can make).
The key is derived from the server key (config.webhook_signing_key, outside the
database): a dump of the database alone makes no token. A token is the same on
every read, is checked here without a round trip (an altered one never reaches
the database), and the database answers NULL for an unknown or expired
delivery; each is the same 404.

The database writes a delivery's `tracking_url` for its owner sender as the
delivery's id (`"tracking_url":123`); `render` turns each into the URL. Inside
a JSON string every quote is escaped, so that text appears only where the
database put it.
"""

import base64
import binascii
import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

from chalicelib import config

_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_MARK = re.compile(r'"tracking_url":([0-9]+)')
_HOST = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::[0-9]{1,5})?"
                   r"|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
_LOCAL = re.compile(r"(?:localhost|127\.0\.0\.1|\[::1\])(?::|$)")
_STAGE = re.compile(r"(?:/[A-Za-z0-9_-]{1,128})?")
_ROUNDS = 4
_MASK32 = 0xFFFFFFFF


@lru_cache(maxsize=4)
def _keys(server_key: bytes) -> tuple[bytes, bytes]:
    """(the permutation's key, the MAC's key), each derived from the server key."""
    return (hmac.new(server_key, b"tracking-permutation", hashlib.sha256).digest(),
            hmac.new(server_key, b"tracking-mac", hashlib.sha256).digest())


def _key_pair() -> tuple[bytes, bytes] | None:
    server_key = config.webhook_signing_key()
    return None if server_key is None else _keys(server_key)


def _round(key: bytes, number: int, half: int) -> int:
    message = bytes((number,)) + half.to_bytes(4, "big")
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:4], "big")


def _permute(key: bytes, value: int, inverse: bool = False) -> int:
    """A Feistel network of 4 rounds on the two 32-bit halves of value, with
    HMAC-SHA256 as the round function: a keyed permutation of 64-bit numbers."""
    left, right = value >> 32, value & _MASK32
    rounds = range(_ROUNDS - 1, -1, -1) if inverse else range(_ROUNDS)
    for number in rounds:
        if inverse:
            left, right = right ^ _round(key, number, left), left
        else:
            left, right = right, left ^ _round(key, number, right)
    return left << 32 | right


def token(delivery_id: int, keys: tuple[bytes, bytes] | None = None) -> str | None:
    """The delivery's tracking token; None when the server key is not set."""
    keys = keys or _key_pair()
    if keys is None:
        return None
    hidden = _permute(keys[0], delivery_id).to_bytes(8, "big")
    mac = hmac.new(keys[1], hidden, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(hidden + mac).decode()


def delivery_id(text: str) -> int | None:
    """The id a token stands for, or None for anything that is not a token this
    server made (wrong length or characters, an altered byte, another key)."""
    keys = _key_pair()
    if keys is None or not _TOKEN.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    hidden, mac = raw[:8], raw[8:]
    if not hmac.compare_digest(mac, hmac.new(keys[1], hidden, hashlib.sha256).digest()[:16]):
        return None
    number = _permute(keys[0], int.from_bytes(hidden, "big"), inverse=True)
    return number if 0 < number < 2**63 else None


def base_url(request: Any) -> str:
    """Where this deployment answers: PUBLIC_BASE_URL, else the request's own
    scheme, host and stage (API Gateway's path before the route's)."""
    configured = config.public_base_url()
    if configured:
        return configured
    headers = request.headers if request is not None else {}
    host = headers.get("host") or ""
    if not _HOST.fullmatch(host):  # a client's Host header goes into JSON: only a host
        host = "localhost"
    scheme = headers.get("x-forwarded-proto")
    if scheme not in ("http", "https"):
        scheme = "http" if _LOCAL.match(host) else "https"
    # API Gateway's own domain puts the stage first in the path; a custom
    # domain (or chalice local) does not.
    context = getattr(request, "context", None) or {}
    stage, full = str(context.get("stage") or ""), str(context.get("path") or "")
    prefix = f"/{stage}" if stage and full.startswith(f"/{stage}/") else ""
    return f"{scheme}://{host}{prefix if _STAGE.fullmatch(prefix) else ''}"


def render(body: str, request: Any) -> str:
    """The owner sender's tracking URLs put into a delivery answer."""
    if not _MARK.search(body):
        return body
    keys = _key_pair()
    if keys is None:
        return _MARK.sub('"tracking_url":null', body)
    base = base_url(request)
    return _MARK.sub(lambda m: f'"tracking_url":"{base}/track/{token(int(m[1]), keys)}"', body)
