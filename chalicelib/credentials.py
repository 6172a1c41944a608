"""Passwords and bearer tokens: how they are made, kept and checked."""

import base64
import hashlib
import hmac
import os
import re

# scrypt at one of OWASP's recommended settings (N=2^14, r=8, p=5: 16 MiB of
# memory per hash). The parameters are stored in each hash, so raising them
# later leaves existing hashes verifiable.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 5
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024

_TOKEN_RE = re.compile(r"[0-9a-f]{40}")

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
