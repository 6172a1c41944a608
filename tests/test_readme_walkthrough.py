"""The README's curl walkthrough, run as a reader would paste it, twice, against
its own `chalice local` and database: every command answers, one line each,
and the second run goes as the first did."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import start_chalice_local, stop
from tools import devdb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    (block,) = [b for b in blocks if b.startswith("API=http://127.0.0.1:8000")]
    return block


@pytest.fixture(scope="module")
def own_server(server_url):
    with devdb.scratch_database(server_url) as url:
        devdb.apply_sql(url, devdb.SCHEME)
        devdb.apply_sql(url, devdb.DEMO)
        process, base, _ = start_chalice_local(url)
        try:
            yield base
        finally:
            stop(process)


def run_once(base: str) -> list[str]:
    script = walkthrough().replace("API=http://127.0.0.1:8000", f"API={base}", 1)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout.splitlines()


def shape(line: str) -> object:
    value = json.loads(line)
    if isinstance(value, dict):
        return sorted(value)
    return type(value).__name__


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")),
                    reason="the walkthrough needs curl and jq")
def test_the_walkthrough_runs_twice_one_answer_per_line(own_server):
    first, second = run_once(own_server), run_once(own_server)
    # One line of output per command that prints (those not assigning a variable).
    assert len(first) == sum(1 for line in walkthrough().splitlines()
                             if line.startswith("curl "))
    for line in first + second:
        value = json.loads(line)  # each line is one JSON value
        assert not (isinstance(value, dict) and "Code" in value), line
    assert [shape(line) for line in first] == [shape(line) for line in second]
    assert '{"status":"delivered"}' in first and '{"status":"delivered"}' in second
