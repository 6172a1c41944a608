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
    image = compose["services"]["db"]["image"]
    assert env["POSTGRES_IMAGE"] == image
    assert any("docker run" in step and "$POSTGRES_IMAGE" in step
               for step in travis["before_install"])
    assert env["DATABASE_URL"].strip('"').startswith("postgresql://postgres:postgres@127.0.0.1")
    assert travis["script"] == ["make lint", "make test"]


def test_github_workflow_runs_the_same_make_targets():
    (job,) = load(".github/workflows/ci.yml")["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make lint", "make test"]
    assert job["services"]["postgres"]["image"].startswith("postgres:")


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
