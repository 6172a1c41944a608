"""`make package`: the prod stage as AWS would receive it.

Builds the package once (chalice downloads the Linux wheels from PyPI), lints
the SAM template with cfn-lint, reads the zip, and finally runs the zip on its
own: an interpreter without site-packages imports the app from the unpacked
zip and serves Lambda events against the test database.
"""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.lambda_events import event

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ABI = f"cp{sys.version_info[0]}{sys.version_info[1]}"
# glibc of the Lambda runtime's OS: Amazon Linux 2 up to python3.11, AL2023 after.
RUNTIME_GLIBC = (2, 26) if sys.version_info < (3, 12) else (2, 34)
ALLOWED_TOP_LEVEL = {"app.py", "chalicelib", "chalice", "psycopg2", "psycopg2_binary.libs"}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("package") / "package"
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}",
         f"PACKAGE_DIR={out}", "package"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout.strip().splitlines()[-1])  # the zip's size
    return out


@pytest.fixture(scope="module")
def template(package) -> dict:
    return json.loads((package / "sam.json").read_text())


@pytest.fixture(scope="module")
def archive(package):
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        yield zf


def _function(template: dict) -> dict:
    (function,) = [r["Properties"] for r in template["Resources"].values()
                   if r["Type"] == "AWS::Serverless::Function"]
    return function


def test_template_passes_cfn_lint(package):
    result = subprocess.run([str(VENV / "bin" / "cfn-lint"), str(package / "sam.json")],
                            capture_output=True, text=True, timeout=300, check=False)
    print(result.stdout)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    assert result.returncode & ~(4 | 8) == 0, result.stdout + result.stderr


def test_template_carries_the_prod_configuration(template):
    function = _function(template)
    assert function["Handler"] == "app.app"
    assert function["Runtime"] == RUNTIME and function["Architectures"] == ["x86_64"]
    assert function["Timeout"] == CONFIG["lambda_timeout"] < 29  # API Gateway's limit
    assert function["MemorySize"] == CONFIG["lambda_memory_size"]
    assert function["ReservedConcurrentExecutions"] == CONFIG["reserved_concurrency"]
    assert function["VpcConfig"] == {"SubnetIds": CONFIG["subnet_ids"],
                                     "SecurityGroupIds": CONFIG["security_group_ids"]}
    env = function["Environment"]["Variables"]
    assert env["DB_IAM_AUTH"] == "true" and env["DB_STATEMENT_TIMEOUT_MS"] == "0"
    assert "DATABASE_URL" not in env and "PGPASSWORD" not in env


def test_role_may_connect_through_the_proxy_and_use_the_vpc(template):
    roles = [r["Properties"] for r in template["Resources"].values()
             if r["Type"] == "AWS::IAM::Role"]
    actions = set()
    for role in roles:
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                actions.update([listed] if isinstance(listed, str) else listed)
    assert {"rds-db:connect", "ec2:CreateNetworkInterface", "logs:PutLogEvents"} <= actions


def test_zip_fits_lambdas_limits(package, archive):
    zipped = (package / "deployment.zip").stat().st_size
    unzipped = sum(info.file_size for info in archive.infolist())
    print(f"deployment.zip: {zipped / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped")
    assert zipped < 50 * 2**20 and unzipped < 250 * 2**20


def test_zip_carries_the_app_and_all_of_chalicelib(archive):
    names = set(archive.namelist())
    assert "app.py" in names
    ours = {f"chalicelib/{p.name}" for p in (ROOT / "chalicelib").glob("*.py")}
    assert ours <= names
    assert archive.read("app.py") == (ROOT / "app.py").read_bytes()


def test_zip_has_no_tests_tools_or_dev_dependencies(archive):
    top = {name.split("/")[0] for name in archive.namelist()}
    extra = {t for t in top if t not in ALLOWED_TOP_LEVEL
             and not re.fullmatch(r"psycopg2_binary-[0-9.]+\.dist-info", t)}
    assert extra == set()
    assert not any(n.endswith(("demo.sql", "scheme.sql")) for n in archive.namelist())


def _elf_machine(data: bytes) -> tuple[int, int]:
    assert data[:4] == b"\x7fELF"
    return data[4], int.from_bytes(data[18:20], "little")  # EI_CLASS, e_machine


def test_psycopg2_binaries_are_linux_x86_64_for_the_runtime(archive):
    names = archive.namelist()
    assert f"psycopg2/_psycopg.{ABI.replace('cp', 'cpython-')}-x86_64-linux-gnu.so" in names
    wheel = next(n for n in names if n.endswith(".dist-info/WHEEL"))
    tags = re.findall(r"^Tag: (\S+)$", archive.read(wheel).decode(), re.MULTILINE)
    assert tags and all(t.startswith(f"{ABI}-{ABI}-manylinux") and t.endswith("_x86_64")
                        for t in tags)
    shared = [n for n in names if re.search(r"\.so(\.[0-9.]+)?$", n)]
    assert len(shared) > 1  # the extension and the libraries it links (libpq, ...)
    needed = (0, 0)
    for name in shared:
        data = archive.read(name)
        assert _elf_machine(data) == (2, 62), name  # 64-bit, x86-64
        for major, minor in re.findall(rb"GLIBC_([0-9]+)\.([0-9]+)", data):
            needed = max(needed, (int(major), int(minor)))
    assert (2, 0) < needed <= RUNTIME_GLIBC


_RUN_FROM_ZIP = """
import json, sys
assert not [p for p in sys.path if "site-packages" in p], sys.path
import app, psycopg2
assert psycopg2.__file__.startswith(sys.argv[1]), psycopg2.__file__
replies = [app.app(e, None) for e in json.load(sys.stdin)]
print(json.dumps([[r["statusCode"], r["body"]] for r in replies]))
"""


def test_the_zip_alone_serves_lambda_events(archive, tmp_path, database_url):
    unpacked = tmp_path / "task"
    archive.extractall(unpacked)
    import app as app_module

    routes = app_module.app.routes
    events = [event(routes, "GET", "/health"),
              event(routes, "POST", "/auth", headers={"Content-Type": "application/json"},
                    body=json.dumps({"username": "courier", "password": "pass"}),
                    base64_body=True)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["DATABASE_URL"] = database_url
    # -S: no site-packages, only the standard library and the unpacked zip.
    result = subprocess.run([sys.executable, "-S", "-c", _RUN_FROM_ZIP, str(unpacked)],
                            cwd=unpacked, env=env, input=json.dumps(events),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    (health, login) = json.loads(result.stdout.strip().splitlines()[-1])
    assert health[0] == 200 and json.loads(health[1])["database"] == "ok"
    assert login[0] == 200 and json.loads(login[1])["courier_id"] == 1
