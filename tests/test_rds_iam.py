"""IAM authentication for RDS Proxy (chalicelib/rds_iam.py), and what it costs a cold start.

AWS is unreachable here: boto3 is replaced by a stub, except for one test that
signs a real token offline (signing needs credentials, not the network).
"""

import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import psycopg2
import pytest

from chalicelib import conn, rds_iam
from chalicelib.errors import ServiceUnavailableError
from tools.wirecount import StatementCounter

ROOT = Path(__file__).resolve().parent.parent


class FakeRDS:
    def __init__(self, region_name):
        self.region_name = region_name
        self.calls = []

    def generate_db_auth_token(self, **kwargs):
        self.calls.append(kwargs)
        return f"token-for-{kwargs['DBUsername']}"


@pytest.fixture
def fake_boto3(monkeypatch):
    """boto3 as a stub module; yields the list of RDS clients it made."""
    clients = []

    def client(service, region_name=None):
        assert service == "rds"
        clients.append(FakeRDS(region_name))
        return clients[-1]

    monkeypatch.setitem(sys.modules, "boto3", types.SimpleNamespace(client=client))
    rds_iam._client.cache_clear()
    yield clients
    rds_iam._client.cache_clear()


@pytest.fixture
def iam_env(monkeypatch):
    for name in ("DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "DB_IAM_REGION",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_IAM_AUTH", "true")
    return monkeypatch


def test_importing_app_and_serving_does_not_import_boto3(database_url):
    script = """
import json, sys
from tools.lambda_events import LambdaContext, event
import app
statuses = [app.app(event(app.app.routes, "GET", path), LambdaContext())["statusCode"]
            for path in ("/", "/health")]
print(json.dumps({"statuses": statuses,
                  "aws": sorted(m for m in sys.modules
                                if m.split(".")[0] in ("boto3", "botocore", "s3transfer"))}))
"""
    env = {k: v for k, v in os.environ.items() if k != "DB_IAM_AUTH"}
    env["DATABASE_URL"] = database_url
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True, timeout=60)
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert reply == {"statuses": [200, 200], "aws": []}


def test_token_for_pg_variables(iam_env, fake_boto3):
    iam_env.setenv("PGHOST", "delivery.proxy-abc.eu-west-1.rds.amazonaws.com")
    iam_env.setenv("PGPORT", "6543")
    iam_env.setenv("PGUSER", "delivery_api")
    iam_env.setenv("AWS_REGION", "eu-west-1")
    assert rds_iam.iam_password() == "token-for-delivery_api"
    assert rds_iam.iam_password() == "token-for-delivery_api"
    (client,) = fake_boto3  # made once, reused for the next connection
    assert client.region_name == "eu-west-1"
    assert client.calls[-1] == {"DBHostname": "delivery.proxy-abc.eu-west-1.rds.amazonaws.com",
                                "Port": 6543, "DBUsername": "delivery_api",
                                "Region": "eu-west-1"}


def test_database_url_wins_over_pg_variables(iam_env, fake_boto3):
    iam_env.setenv("DATABASE_URL", "postgresql://app@db.example:5433/delivery?sslmode=require")
    iam_env.setenv("PGHOST", "other.example")
    iam_env.setenv("PGUSER", "other")
    iam_env.setenv("AWS_DEFAULT_REGION", "us-east-2")
    iam_env.setenv("DB_IAM_REGION", "us-west-2")
    rds_iam.iam_password()
    assert fake_boto3[0].calls[-1] == {"DBHostname": "db.example", "Port": 5433,
                                       "DBUsername": "app", "Region": "us-west-2"}


def test_default_port_is_5432(iam_env, fake_boto3):
    iam_env.setenv("PGHOST", "db.example")
    iam_env.setenv("PGUSER", "app")
    iam_env.setenv("AWS_REGION", "us-east-1")
    rds_iam.iam_password()
    assert fake_boto3[0].calls[-1]["Port"] == 5432


def test_settings_in_iam_mode_carry_the_token_and_no_options(iam_env, fake_boto3):
    iam_env.setenv("PGHOST", "db.example")
    iam_env.setenv("PGUSER", "app")
    iam_env.setenv("AWS_REGION", "us-east-1")
    iam_env.setenv("DB_STATEMENT_TIMEOUT_MS", "0")
    settings = conn._settings()
    assert settings["password"] == "token-for-app"
    assert "options" not in settings  # RDS Proxy refuses the startup option


@pytest.mark.parametrize("missing", ["PGHOST", "PGUSER", "AWS_REGION"])
def test_incomplete_iam_configuration_is_a_503_not_a_500(iam_env, fake_boto3, missing):
    values = {"PGHOST": "db.example", "PGUSER": "app", "AWS_REGION": "us-east-1"}
    for name, value in values.items():
        if name != missing:
            iam_env.setenv(name, value)
    outcome = []

    def connect():  # a thread of its own: its own connection slot in conn
        try:
            conn.connection()
        except ServiceUnavailableError as exc:
            outcome.append(exc.STATUS_CODE)
        finally:
            conn.drop()

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join()
    assert outcome == [503]


def test_a_failing_token_call_is_an_operational_error(iam_env, monkeypatch):
    def client(service, region_name=None):
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setitem(sys.modules, "boto3", types.SimpleNamespace(client=client))
    rds_iam._client.cache_clear()
    iam_env.setenv("PGHOST", "db.example")
    iam_env.setenv("PGUSER", "app")
    iam_env.setenv("AWS_REGION", "us-east-1")
    try:
        with pytest.raises(psycopg2.OperationalError):
            rds_iam.iam_password()
    finally:
        rds_iam._client.cache_clear()


def test_iam_mode_opens_a_working_connection_over_tcp(iam_env, fake_boto3, database_url, db):
    """The whole path against the test server: the token goes as the password (the
    test server trusts it), and with DB_STATEMENT_TIMEOUT_MS=0 the timeout comes
    from the role's setting for the database, as docs/deploy.md sets it up."""
    dbname = psycopg2.extensions.parse_dsn(database_url)["dbname"]
    counter = StatementCounter(database_url)  # a TCP front for the unix socket
    iam_env.setenv("DATABASE_URL", counter.dsn)
    iam_env.setenv("AWS_REGION", "us-east-1")
    iam_env.setenv("DB_STATEMENT_TIMEOUT_MS", "0")
    with db.cursor() as cur:
        cur.execute(f'ALTER ROLE CURRENT_USER IN DATABASE "{dbname}" '
                    "SET statement_timeout = '25s'")
    seen = []

    def work():
        try:
            seen.append(conn.call("current_setting", "statement_timeout")[0])
            seen.append(conn.call("health")[0])
        finally:
            conn.drop()

    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        with db.cursor() as cur:
            cur.execute(f'ALTER ROLE CURRENT_USER IN DATABASE "{dbname}" '
                        "RESET statement_timeout")
        counter.close()
    assert seen[0] == "25s"
    assert json.loads(seen[1])["database"] == "ok"
    call = fake_boto3[0].calls[-1]
    assert call["DBHostname"] == "127.0.0.1" and call["Port"] == counter.port


def test_real_token_is_signed_offline(iam_env, tmp_path):
    boto3 = pytest.importorskip("boto3")
    assert boto3
    iam_env.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    iam_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    iam_env.delenv("AWS_SESSION_TOKEN", raising=False)
    iam_env.delenv("AWS_PROFILE", raising=False)
    iam_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    iam_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    iam_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    iam_env.setenv("PGHOST", "delivery.proxy-abc.us-east-1.rds.amazonaws.com")
    iam_env.setenv("PGUSER", "delivery_api")
    iam_env.setenv("AWS_REGION", "us-east-1")
    rds_iam._client.cache_clear()
    try:
        token = rds_iam.iam_password()
    finally:
        rds_iam._client.cache_clear()
    assert token.startswith("delivery.proxy-abc.us-east-1.rds.amazonaws.com:5432/?")
    assert "Action=connect" in token and "DBUser=delivery_api" in token
    assert "X-Amz-Signature=" in token and "X-Amz-Expires=900" in token
    assert "/us-east-1/rds-db/aws4_request" in token.replace("%2F", "/")
