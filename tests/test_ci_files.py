"""The CI definitions for GitHub and Travis, and docker-compose.yml: they parse, and they
run what .ci/run runs (`make test`) against a PostgreSQL service. No Docker engine
or CI service is here, so this checks their content, not a run."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def ci_run_makes() -> list[str]:
    """The `make` commands that .ci/run runs, in order."""
    text = (ROOT / ".ci" / "run").read_text()
    return re.findall(r"^(make \S+)$", text, re.MULTILINE)


def test_ci_run_runs_make_test():
    assert "make test" in ci_run_makes()


def test_github_workflow_runs_make_test_against_a_postgres_service():
    workflow = load(".github/workflows/ci.yml")
    assert "push" in workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as True
    (job,) = workflow["jobs"].values()
    service = job["services"]["postgres"]
    assert "--health-cmd" in service["options"]
    url = job["env"]["DATABASE_URL"]
    password = service["env"]["POSTGRES_PASSWORD"]
    assert url == f"postgresql://postgres:{password}@localhost:5432/postgres"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert set(ci_run_makes()) <= set(runs) and "make test" in runs
    assert service["image"] == "postgres:${{ matrix.postgres }}"
    assert "15" in job["strategy"]["matrix"]["postgres"]
    python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == load(".travis.yml")["python"]


def test_travis_runs_make_test_against_its_postgres_service():
    travis = load(".travis.yml")
    assert "postgresql" in travis["services"]
    assert any(str(v).startswith("DATABASE_URL=") for v in travis["env"]["global"])
    assert set(ci_run_makes()) <= set(travis["script"]) and "make test" in travis["script"]


def test_compose_serves_chalice_local_against_a_healthy_postgres_with_a_volume():
    compose = load("docker-compose.yml")
    db, api = compose["services"]["db"], compose["services"]["api"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in compose["volumes"]
    for volume in db["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_file(), source
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    # The Makefile's variables: DATABASE_URL and PORT.
    env = api["environment"]
    user, password, name = (db["environment"][k] for k in
                            ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
    assert env["DATABASE_URL"] == f"postgresql://{user}:{password}@db:5432/{name}"
    assert f"{env['PORT']}:{env['PORT']}" in api["ports"]
    command = " ".join(api["command"])
    assert "chalice local --host 0.0.0.0" in command and "tools.devdb migrate" in command
    assert re.search(r"^chalice==\S+$", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert api["image"] == f"python:{load('.travis.yml')['python']}-slim"
