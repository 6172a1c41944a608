"""The service's settings, from environment variables. check() runs when the
app is imported (a Lambda cold start, chalice local's start), so that a wrong
value stops the start with a message naming the variable instead of failing
requests one by one. Each value is read where it is used, from the environment
as it is then."""

import hashlib
import os
import re
from pathlib import Path

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")
INT32_MAX = 2**31 - 1


class ConfigError(RuntimeError):
    """A setting the service cannot run with."""


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be an integer from {low} to {high}, not {raw!r}")
    return value


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name}: must be one of {', '.join(_TRUE + _FALSE)}, not {raw!r}")
    return raw in _TRUE


def token_ttl_seconds() -> int:
    """How long a login's token lives (the database takes an integer)."""
    return _int("TOKEN_TTL_SECONDS", 24 * 3600, 1, INT32_MAX)


def auth_rate_per_minute() -> int:
    """Failed logins, and signups, allowed per client address per minute; 0: no limit."""
    return _int("AUTH_RATE_PER_MINUTE", 20, 0, 1_000_000)


def signup_enabled() -> bool:
    return _flag("SIGNUP_ENABLED", True)


def event_retention_days() -> int:
    """How long events are kept before the sweep removes them (the contract
    promises at least 30 days)."""
    return _int("EVENT_RETENTION_DAYS", 30, 30, 36500)


def contact_retention_days() -> int:
    """Days after a final status that a delivery's contacts and instructions
    are kept before the sweep erases them."""
    return _int("CONTACT_RETENTION_DAYS", 30, 1, 36500)


def webhook_allow_http() -> bool:
    """Plain http:// webhook URLs, and ones on loopback or private addresses:
    for local runs only (never on a deployment that others can reach)."""
    return _flag("WEBHOOK_ALLOW_HTTP", False)


CONTRACT_RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 86400)


def webhook_retry_delays() -> list[int]:
    """Seconds to wait after each failed attempt; after the last, the event is given up."""
    raw = os.environ.get("WEBHOOK_RETRY_DELAYS", "").strip()
    if not raw:
        return list(CONTRACT_RETRY_DELAYS)
    try:
        delays = [int(part) for part in raw.split(",")]
    except ValueError:
        delays = []
    if not delays or not all(0 <= d <= 7 * 86400 for d in delays):
        raise ConfigError("WEBHOOK_RETRY_DELAYS: must be comma-separated seconds (0 to 604800), "
                          f"not {raw!r}")
    return delays


def webhook_signing_key() -> bytes | None:
    """The server key webhook secrets are derived from: WEBHOOK_SIGNING_KEY (at
    least 32 characters), or the SecureString SSM parameter named by
    WEBHOOK_SIGNING_KEY_PARAMETER (read once per cold start). None: webhooks
    are not configured on this deployment."""
    raw = os.environ.get("WEBHOOK_SIGNING_KEY", "")
    if not raw and os.environ.get("WEBHOOK_SIGNING_KEY_PARAMETER"):
        raw = _ssm_key(os.environ["WEBHOOK_SIGNING_KEY_PARAMETER"])
    if not raw:
        return None
    if len(raw) < 32:
        raise ConfigError("WEBHOOK_SIGNING_KEY: must be at least 32 characters")
    return raw.encode()


def public_base_url() -> str | None:
    """PUBLIC_BASE_URL: where recipients reach this deployment (tracking URLs
    start with it), http(s)://host[:port][/path] without a trailing slash;
    None: the request's own host and stage."""
    raw = os.environ.get("PUBLIC_BASE_URL", "")
    if not raw:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*", raw):
        raise ConfigError("PUBLIC_BASE_URL: must be http(s)://host[:port][/path] without a "
                          f"trailing slash, not {raw!r}")
    return raw


_ssm_cache: dict[str, str] = {}


def local_pgdata() -> Path:
    """Where `make run` keeps the embedded database of this checkout: DELIVERY_PGDATA,
    else a folder of its own under $XDG_DATA_HOME (~/.local/share), named after
    the checkout's path. Outside the project, so that `chalice local`'s reloader,
    which watches every file of the project, does not restart on the
    database's writes."""
    given = os.environ.get("DELIVERY_PGDATA")
    if given:
        return Path(given).resolve()
    project = Path(__file__).resolve().parent.parent
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    tag = hashlib.sha256(str(project).encode()).hexdigest()[:12]
    return base / "delivery-api" / f"{project.name}-{tag}" / "pgdata"


def local_webhook_key_file(pgdata: Path) -> Path:
    """Where local runs on the data folder pgdata keep their webhook signing
    key: beside it (tools/serve.py makes it, `tools.devdb clean` deletes it)."""
    return pgdata.parent / (pgdata.name + ".webhook-key")


def local_database_dsn() -> str | None:
    """The DSN of the embedded server `make run` started for this checkout
    (read from its postmaster.pid: socket folder and port), or None when it
    is not running."""
    try:
        lines = (local_pgdata() / "postmaster.pid").read_text().splitlines()
        port, socket_dir = int(lines[3]), lines[4].strip()
    except (OSError, IndexError, ValueError):
        return None
    if not socket_dir:
        return None
    return f"host={socket_dir} port={port} dbname=postgres user=postgres"


def _ssm_key(name: str) -> str:
    if name not in _ssm_cache:
        import boto3  # in the Lambda runtime; only in this mode

        reply = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)
        _ssm_cache[name] = reply["Parameter"]["Value"]
    return _ssm_cache[name]


def check() -> None:
    """Raises ConfigError for the first setting that is wrong."""
    token_ttl_seconds()
    auth_rate_per_minute()
    signup_enabled()
    event_retention_days()
    contact_retention_days()
    _flag("DB_IAM_AUTH", False)
    _int("DB_CONNECT_TIMEOUT", 3, 1, 3600)
    _int("DB_STATEMENT_TIMEOUT_MS", 5000, 0, INT32_MAX)
    _int("DB_TCP_USER_TIMEOUT_MS", 10000, 0, INT32_MAX)
    webhook_allow_http()
    webhook_retry_delays()
    public_base_url()
    if os.environ.get("WEBHOOK_SIGNING_KEY"):
        webhook_signing_key()
