"""`make run` on its own: embedded database, schema, demo data, chalice local; SIGTERM stops all."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, wait_until_serving

pytestmark = pytest.mark.slow


def test_make_run_serves_ok_and_demo_login_then_stops_on_sigterm():
    port = free_port()
    pgdata = Path(tempfile.mkdtemp(prefix="make-run-")) / "pgdata"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PORT=str(port), DELIVERY_PGDATA=str(pgdata))
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(base, process, 60):
            assert process.poll() is None, process.stdout.read().decode()
            raise AssertionError("make run did not serve within 60 s")
        login = requests.post(base + "/auth", json={"username": "courier", "password": "pass"},
                              timeout=10)
        assert login.status_code == 200 and login.json()["courier_id"] == 1
        assert (pgdata / "postmaster.pid").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while (pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (pgdata / "postmaster.pid").exists(), "the embedded database kept running"
    assert (pgdata / "PG_VERSION").exists(), "the data folder is kept between runs"
    shutil.rmtree(pgdata.parent, ignore_errors=True)
    try:
        requests.get(base + "/", timeout=1)
        raise AssertionError("the API still answers after SIGTERM")
    except requests.ConnectionError:
        pass
