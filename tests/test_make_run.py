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

from tests.conftest import ROOT
from tests.webhook_receiver import Receiver
from tools.local_process import free_port, wait_until_serving

pytestmark = pytest.mark.slow


@pytest.fixture
def pgdata():
    folder = Path(tempfile.mkdtemp(prefix="make-run-"))
    yield folder / "pgdata"
    shutil.rmtree(folder, ignore_errors=True)


def test_make_run_serves_ok_and_demo_login_then_stops_on_sigterm(pgdata):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "WEBHOOK_SIGNING_KEY", "WEBHOOK_ALLOW_HTTP")}
    env.update(PORT=str(port), DELIVERY_PGDATA=str(pgdata))
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(port, process, 60):
            assert process.poll() is None, process.stdout.read().decode()
            raise AssertionError("make run did not serve within 60 s")
        login = requests.post(base + "/auth", json={"username": "courier", "password": "pass"},
                              timeout=10)
        assert login.status_code == 200 and login.json()["courier_id"] == 1
        assert (pgdata / "postmaster.pid").exists()
        # The local webhook sender runs beside the API: an event reaches a
        # receiver within seconds, signed with the key kept beside the data.
        receiver = Receiver()
        try:
            sender = requests.post(base + "/auth", json={"username": "sender", "password": "pass"},
                                   timeout=10).json()["token"]
            auth = {"Authorization": f"Bearer {sender}"}
            sub = requests.post(base + "/webhooks", json={"url": receiver.url,
                                                          "events": ["delivery.created"]},
                                headers=auth, timeout=10)
            assert sub.status_code == 201, sub.text
            receiver.secret = sub.json()["secret"]
            made = requests.post(base + "/deliveries", json={"size": "1x1x1", "cost": 1},
                                 headers=auth, timeout=10).json()
            deadline = time.monotonic() + 15
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [m["payload"]["data"]["delivery_id"] for m in receiver.received] == \
                [made["id"]]
            assert (pgdata.parent / "pgdata.webhook-key").exists()
        finally:
            receiver.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while (pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (pgdata / "postmaster.pid").exists(), "the embedded database kept running"
    # Nothing that make run started is left: the API, the webhook sender (all in
    # the session's process group).
    deadline = time.monotonic() + 15
    while True:
        left = subprocess.run(["pgrep", "-a", "-g", str(process.pid)], capture_output=True,
                              text=True).stdout.strip()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == "", f"make run left processes running: {left}"
    assert (pgdata / "PG_VERSION").exists(), "the data folder is kept between runs"
    try:
        requests.get(base + "/", timeout=1)
        raise AssertionError("the API still answers after SIGTERM")
    except requests.ConnectionError:
        pass
