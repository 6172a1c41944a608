"""IAM database authentication: a fresh RDS auth token as the password of each connection.

Used by conn.py only when DB_IAM_AUTH is true, so boto3 (present in the Lambda
runtime, and not in requirements.txt) is imported only in that mode, and a cold
start without it does not pay for the import.

The token is a SigV4-presigned "connect" request for one host, port and user,
signed locally with the function's role credentials (no network call); it is
valid for 15 minutes and is checked only when a connection opens, so making one
per new connection is enough, and connections opened earlier keep working.

Where the connection goes, and as whom, comes from DATABASE_URL when it names
them, otherwise from libpq's own variables (PGHOST, PGPORT, PGUSER), which
libpq reads too. The region comes from DB_IAM_REGION, or AWS_REGION (set by
Lambda), or AWS_DEFAULT_REGION. RDS Proxy requires TLS for IAM authentication:
set PGSSLMODE=require (or verify-full with PGSSLROOTCERT).
"""

import logging
import os
from functools import cache
from typing import Any

import psycopg2
import psycopg2.extensions

log = logging.getLogger("delivery_api.rds_iam")


def target() -> tuple[str, int, str]:
    """(host, port, user) the connection will use, as libpq resolves them."""
    url = os.environ.get("DATABASE_URL", "")
    params = psycopg2.extensions.parse_dsn(url) if url else {}
    host = params.get("host") or os.environ.get("PGHOST", "")
    port = int(params.get("port") or os.environ.get("PGPORT") or 5432)
    user = params.get("user") or os.environ.get("PGUSER", "")
    if not host or host.startswith("/") or not user:
        raise psycopg2.OperationalError(
            "DB_IAM_AUTH needs a TCP host and a user (PGHOST and PGUSER, or DATABASE_URL)")
    return host, port, user


def region() -> str:
    name = (os.environ.get("DB_IAM_REGION") or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION"))
    if not name:
        raise psycopg2.OperationalError("DB_IAM_AUTH needs AWS_REGION (or DB_IAM_REGION)")
    return name


@cache
def _client(region_name: str) -> Any:
    """One RDS client per container: building it costs far more than signing."""
    import boto3

    return boto3.client("rds", region_name=region_name)


def iam_password() -> str:
    """A new RDS IAM auth token for the configured host, port and user."""
    host, port, user = target()
    region_name = region()
    try:
        return _client(region_name).generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user, Region=region_name)
    except Exception as exc:  # no credentials, bad region: the database is unreachable
        log.error("IAM auth token for %s@%s:%s failed: %s", user, host, port,
                  type(exc).__name__)
        raise psycopg2.OperationalError("could not make an IAM auth token") from exc
