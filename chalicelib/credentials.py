"""Passwords, login tokens and API keys: how they are made, kept and checked."""

import base64
import hashlib
import hmac
import os
import re
import time
import zlib

# scrypt at one of OWASP's recommended settings (N=2^14, r=8, p=5: 16 MiB of
# memory per hash). The parameters are stored in each hash, so raising them
# later leaves existing hashes verifiable.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 5
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024

_TOKEN_RE = re.compile(r"[0-9a-f]{40}")
# An API key: dk_, 37 random base62 characters (each uniform: 220 bits), 6 of
# the CRC-32 of those 37 (so that a scanner, or this service before any
# round trip, can tell a key from a typo), also base62.
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_RE = re.compile(r"dk_[0-9A-Za-z]{43}")
_KEY_RANDOM, _KEY_CHECK = 37, 6
KEY_PREFIX_LENGTH = 10
# A process refreshes a key's last_used_at at most this often (the database
# at most once a minute whatever the number of processes).
TOUCH_SECONDS = 60.0
_touched: dict[bytes, float] = {}

# Verified against when a username is unknown, so that an unknown username
# costs the same scrypt work as a wrong password. Its key matches no password
# anyone knows.
_DUMMY_HASH = ("scrypt$16384$8$5$AAAAAAAAAAAAAAAAAAAAAA=="
               "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=_MAXMEM, dklen=_DKLEN)


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: scrypt$N$r$p$salt$key (base64)."""
    salt = os.urandom(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    fields = ("scrypt", SCRYPT_N, SCRYPT_R, SCRYPT_P,
              base64.b64encode(salt).decode(), base64.b64encode(key).decode())
    return "$".join(str(field) for field in fields)


def verify_password(password: str, stored: str | None) -> bool:
    """True when the password matches the stored hash; None costs the same."""
    known = stored is not None
    try:
        _, n, r, p, salt, key = (stored or _DUMMY_HASH).split("$")
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(key)) and known


def new_token() -> str:
    """160 random bits as 40 lowercase hex characters (what secrets.token_hex(20)
    returns: os.urandom; the secrets module would bring random in at cold start)."""
    return os.urandom(20).hex()


def token_digest(token: str) -> bytes:
    """What the database keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


def is_token(value: str) -> bool:
    return _TOKEN_RE.fullmatch(value) is not None


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def _key_check(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), _KEY_CHECK)


def new_api_key() -> str:
    """dk_ and 43 base62 characters: 37 drawn uniformly from os.urandom (a byte
    below 248 = 4 x 62 gives one character, others are drawn again), then a
    6-character CRC-32 of them."""
    chars: list[str] = []
    while len(chars) < _KEY_RANDOM:
        chars += [_BASE62[b % 62] for b in os.urandom(48) if b < 248]
    random_part = "".join(chars[:_KEY_RANDOM])
    return f"dk_{random_part}{_key_check(random_part)}"


def is_api_key(value: str) -> bool:
    return (_KEY_RE.fullmatch(value) is not None
            and value[-_KEY_CHECK:] == _key_check(value[3:3 + _KEY_RANDOM]))


def api_key_sha256(key: str) -> bytes:
    """What the database keeps of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).digest()


def bearer_digest(credential: str) -> bytes | None:
    """What the database's session_of takes for a bearer credential: the
    SHA-256 of a login token (32 bytes), or b"k" and the SHA-256 of an API key
    (33 bytes); None when the value is neither."""
    if is_token(credential):
        return token_digest(credential)
    if is_api_key(credential):
        return KEY_DIGEST_MARK + api_key_sha256(credential)
    return None


# What bearer_digest puts before an API key's SHA-256 (the database's
# is_key_digest and key_sha256_of read it so).
KEY_DIGEST_MARK = b"k"


def is_key_digest(digest: bytes) -> bool:
    return len(digest) == 33 and digest[:1] == KEY_DIGEST_MARK


def touch_due(digest: bytes) -> bool:
    """True when the credential is an API key that this process has not
    refreshed (touched) in the last TOUCH_SECONDS."""
    if not is_key_digest(digest):
        return False
    last = _touched.get(digest)
    return last is None or time.monotonic() - last >= TOUCH_SECONDS


def touched(digest: bytes) -> None:
    """Notes that a request with this key, which refreshed it, succeeded."""
    if len(_touched) > 10_000:
        _touched.clear()
    _touched[digest] = time.monotonic()
