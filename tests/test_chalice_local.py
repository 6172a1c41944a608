"""`chalice local` as a Chalice developer types it, from the venv `make run`
made: no DATABASE_URL, the embedded database that `make run` (here: the test)
started for this checkout, with and without the reloader, through a stretch of
ordinary reads and writes. The embedded data lives outside the project, so the
reloader, which watches every file of the project, has nothing to restart for.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from chalicelib import config, conn
from tests.conftest import assert_error
from tools import devdb, local_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHALICE = Path(sys.executable).with_name("chalice")
# A minute with the reloader on (where restarts used to drop requests), less without.
SECONDS = float(os.environ.get("CHALICE_LOCAL_SECONDS", "60"))


@pytest.fixture(scope="module")
def local_database():
    """An embedded server at a DELIVERY_PGDATA of its own, as `make run` starts it."""
    folder = Path(tempfile.mkdtemp(prefix="delivery-local-"))
    pgdata = folder / "pgdata"
    server = devdb.start_embedded(pgdata, keep=False)
    try:
        url = server.get_uri()
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        yield pgdata
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _env(pgdata: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DELIVERY_PGDATA=str(pgdata), AUTH_RATE_PER_MINUTE="0")
    return env


def test_the_local_data_folder_is_outside_the_project(monkeypatch):
    monkeypatch.delenv("DELIVERY_PGDATA", raising=False)
    folder = config.local_pgdata()
    assert ROOT not in folder.parents, folder
    monkeypatch.setenv("DELIVERY_PGDATA", "/somewhere/else")
    assert config.local_pgdata() == Path("/somewhere/else")


@pytest.mark.parametrize("reload", [True, False], ids=["autoreload", "no-autoreload"])
def test_plain_chalice_local_serves_the_local_database_without_dropping_a_request(
        local_database, reload, tmp_path):
    port = local_process.free_port()
    command = [str(CHALICE), "local", "--port", str(port)] + ([] if reload
                                                             else ["--no-autoreload"])
    log = (tmp_path / "chalice.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=_env(local_database), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        assert local_process.wait_until_serving(port, process, 60), \
            (tmp_path / "chalice.log").read_text()
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        login = session.post(f"{base}/auth", json={"username": "sender", "password": "pass"},
                             timeout=30)
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        answered, deadline = 0, time.monotonic() + (SECONDS if reload else SECONDS / 3)
        while time.monotonic() < deadline:
            made = session.post(f"{base}/deliveries", json={"size": "1x2x3", "cost": 5},
                                headers=auth, timeout=30)
            assert made.status_code == 201, made.text
            got = session.get(f"{base}/deliveries/{made.json()['id']}", headers=auth,
                              timeout=30)
            assert got.status_code == 200, got.text
            answered += 2
        assert answered > 20
        assert process.poll() is None
    finally:
        local_process.stop_process(process)
        log.close()
    text = (tmp_path / "chalice.log").read_text()
    assert "Restarting" not in text, text[-2000:]


def test_without_a_local_database_the_answer_names_the_command(api, sender_token,
                                                               monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CHALICE_CLI_MODE", "true")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DELIVERY_PGDATA", str(tmp_path / "none"))
    conn.drop()
    try:
        reply = api.get("/me", token=sender_token)
        assert_error(reply, 503, "make run")
    finally:
        conn.drop()


def test_devdb_url_prints_the_url_of_a_server_it_leaves_running(tmp_path):
    env = _env(tmp_path / "pgdata")
    done = subprocess.run([sys.executable, "-m", "tools.devdb", "url"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    try:
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        assert url.startswith("postgresql://"), done.stdout
        import psycopg2

        with psycopg2.connect(url) as db, db.cursor() as cur:
            cur.execute("SELECT count(*) FROM users WHERE username = 'sender'")
            assert cur.fetchone() == (1,)
        again = subprocess.run([sys.executable, "-m", "tools.devdb", "url"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and again.stdout.strip() == url
    finally:
        stopped = subprocess.run([sys.executable, "-m", "tools.devdb", "stop"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def test_a_configured_region_is_left_alone_and_none_gets_a_default(tmp_path):
    """app.py gives the Chalice command line us-east-1 only when no region is
    configured anywhere: a profile's region wins."""
    code = "import os, app; print(os.environ.get('AWS_DEFAULT_REGION'))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CHALICE_CLI_MODE="true", HOME=str(tmp_path),
               AWS_CONFIG_FILE=str(tmp_path / "config"))
    runs = {}
    for name, config_text in (("none", ""), ("profile", "[default]\nregion = eu-west-1\n")):
        (tmp_path / "config").write_text(config_text)
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        runs[name] = done.stdout.strip()
    assert runs == {"none": "us-east-1", "profile": "None"}


def test_devdb_clean_removes_only_the_data_and_its_key(tmp_path):
    """`make clean` (python -m tools.devdb clean) with DELIVERY_PGDATA: the data
    folder and its webhook key go, the folder the user named them in stays."""
    pgdata = tmp_path / "mine" / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")
    (tmp_path / "mine" / "pgdata.webhook-key").write_text("k")
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "tools.devdb", "clean"], cwd=ROOT,
                          env=_env(pgdata), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["keep.txt"]
