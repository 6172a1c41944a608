"""`make package`: the prod stage as AWS would receive it.

Builds the package once (chalice downloads the Linux wheels from PyPI), lints
the SAM template with cfn-lint, reads the zip, and finally runs the zip on its
own: an interpreter without site-packages imports the app from the unpacked
zip and serves Lambda events against the test database. The template carries
what .chalice/sam-merge.json adds: throttling, and API Gateway's own errors in
the app's error shape.
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
ALLOWED_TOP_LEVEL = {"app.py", "chalicelib", "chalice", "psycopg2", "psycopg2_binary.libs",
                     "phonenumbers", "iso3166"}


def _make_package(out: Path, *settings: str) -> Path:
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}",
         f"PACKAGE_DIR={out}", *settings, "package"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout.strip().splitlines()[-1])  # the zip's size
    assert sorted(p.name for p in out.iterdir()) == ["deployment.zip", "sam.json"]
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return _make_package(tmp_path_factory.mktemp("package") / "package")


@pytest.fixture(scope="module")
def xray_template(tmp_path_factory) -> Path:
    """The template of `make package XRAY=true` (its path)."""
    return _make_package(tmp_path_factory.mktemp("package") / "xray", "XRAY=true") / "sam.json"


@pytest.fixture(scope="module")
def template(package) -> dict:
    return json.loads((package / "sam.json").read_text())


@pytest.fixture(scope="module")
def archive(package):
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        yield zf


def _api(template: dict) -> dict:
    (api,) = [r["Properties"] for r in template["Resources"].values()
              if r.get("Type") == "AWS::Serverless::Api"]
    return api


def _function(template: dict, handler: str = "app.app") -> dict:
    (function,) = [r["Properties"] for r in template["Resources"].values()
                   if r["Type"] == "AWS::Serverless::Function"
                   and r["Properties"]["Handler"] == handler]
    return function


def test_the_webhook_sender_runs_every_minute_alone_in_the_vpc(template):
    sender, api = _function(template, "app.send_webhooks"), _function(template)
    assert sender["Events"]["SendWebhooksEvent"] == {
        "Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    # app.send_webhooks sweeps for up to 5 s and sends for 40 s; one sender at a time.
    assert sender["Timeout"] == 60 and sender["ReservedConcurrentExecutions"] == 1
    assert sender["VpcConfig"] == api["VpcConfig"]
    env = sender["Environment"]["Variables"]
    assert env["WEBHOOK_SIGNING_KEY_PARAMETER"].startswith("/delivery-api/")
    assert "WEBHOOK_SIGNING_KEY" not in env  # the key itself never sits in the template


def _assert_cfn_lint_passes(path: Path) -> None:
    result = subprocess.run([str(VENV / "bin" / "cfn-lint"), str(path)],
                            capture_output=True, text=True, timeout=300, check=False)
    print(result.stdout)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    assert result.returncode & ~(4 | 8) == 0, result.stdout + result.stderr


def test_template_passes_cfn_lint(package):
    _assert_cfn_lint_passes(package / "sam.json")


XRAY_WRITE = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


def _tracing(template: dict) -> dict[str, object]:
    """What each function and the API say about X-Ray, and which roles may send traces."""
    resources = template["Resources"]
    seen: dict[str, object] = {}
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            role = props["Role"]["Fn::GetAtt"][0]
            seen[name] = (props["Tracing"],
                          resources[role]["Properties"].get("ManagedPolicyArns", []))
        elif resource["Type"] == "AWS::Serverless::Api":
            seen[name] = props.get("TracingEnabled", False)
    return seen


def test_x_ray_is_off_by_default(template):
    assert _tracing(template) == {"APIHandler": ("PassThrough", []),
                                  "SendWebhooks": ("PassThrough", []), "RestAPI": False}


def test_xray_true_traces_both_functions_and_the_stage(xray_template, template):
    xray = json.loads(xray_template.read_text())
    assert _tracing(xray) == {"APIHandler": ("Active", [XRAY_WRITE]),
                              "SendWebhooks": ("Active", [XRAY_WRITE]), "RestAPI": True}
    # Everything else is the default package's.
    api, default_api = _api(xray), _api(template)
    assert api.pop("TracingEnabled") is True and api == default_api
    _assert_cfn_lint_passes(xray_template)


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
             and not re.fullmatch(r"(psycopg2_binary|phonenumberslite|iso3166)-[0-9.]+"
                                  r"\.dist-info", t)}
    assert extra == set()
    assert not any(n.endswith(("demo.sql", "scheme.sql")) for n in archive.namelist())


def _elf_machine(data: bytes) -> tuple[int, int]:
    assert data[:4] == b"\x7fELF"
    return data[4], int.from_bytes(data[18:20], "little")  # EI_CLASS, e_machine


def test_psycopg2_binaries_are_linux_x86_64_for_the_runtime(archive):
    names = archive.namelist()
    assert f"psycopg2/_psycopg.{ABI.replace('cp', 'cpython-')}-x86_64-linux-gnu.so" in names
    wheel = next(n for n in names
                 if n.startswith("psycopg2_binary-") and n.endswith(".dist-info/WHEEL"))
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


# -- throttling (docs/deploy.md, "Throttling")

STAGE_THROTTLE = (200, 20)  # requests per second, burst: every method by default
LOGIN_THROTTLES = {"/auth": (10, 5), "/signup": (2, 2)}
# How long one login or signup holds its Lambda environment: one scrypt hash,
# about 0.35 s at 1024 MB, rounded up for a slow or cold one.
LOGIN_SECONDS = 0.5


def _throttle(template: dict, path: str, method: str) -> tuple[float, float]:
    # MethodSettings write a path's every '/' as '~1', after a leading '/': /~1auth.
    resource = "/*" if path == "/*" else "/" + path.replace("/", "~1")
    (setting,) = [s for s in _api(template)["MethodSettings"]
                  if s["ResourcePath"] == resource and s["HttpMethod"] == method]
    return setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]


def test_stage_is_throttled(template):
    api = _api(template)
    assert _throttle(template, "/*", "*") == STAGE_THROTTLE
    # The merge template landed on the API that chalice made, not beside it.
    assert api["StageName"] == "api" and "DefinitionBody" in api
    # The stage may not log request bodies (passwords) or headers (tokens).
    assert all(not s.get("DataTraceEnabled") for s in api["MethodSettings"])
    # No more requests at once to one method than there are Lambda environments.
    assert STAGE_THROTTLE[1] <= CONFIG["reserved_concurrency"]


def test_login_and_signup_are_throttled_tighter_than_the_stage(template):
    paths = _api(template)["DefinitionBody"]["paths"]
    stage_rate, stage_burst = _throttle(template, "/*", "*")
    held = 0.0
    for path, expected in LOGIN_THROTTLES.items():
        assert "post" in paths[path]  # a setting for a path that is gone fails the deploy
        rate, burst = _throttle(template, path, "POST")
        assert (rate, burst) == expected
        assert rate < stage_rate and burst < stage_burst
        held += burst + rate * LOGIN_SECONDS
    # At their limits, logins and signups together hold at most this many
    # environments: a flood of them leaves the rest of the API some of its own.
    assert held <= CONFIG["reserved_concurrency"] * 2 / 3


# -- API Gateway's own errors (docs/deploy.md, "API Gateway's own errors")

# Every gateway response type, with the status and Code it answers with
# (None: the type keeps the status API Gateway gives it).
GATEWAY_RESPONSES = {
    "DEFAULT_4XX": (None, "BadRequestError"),
    "DEFAULT_5XX": (None, "InternalServerError"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "NotFoundError"),  # no such route or method
    "RESOURCE_NOT_FOUND": (404, "NotFoundError"),
    "INVALID_SIGNATURE": (404, "NotFoundError"),
    "EXPIRED_TOKEN": (404, "NotFoundError"),
    "THROTTLED": (429, "TooManyRequestsError"),
    "QUOTA_EXCEEDED": (429, "TooManyRequestsError"),
    "REQUEST_TOO_LARGE": (413, "PayloadTooLargeError"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "UnsupportedMediaType"),
    "BAD_REQUEST_BODY": (400, "BadRequestError"),
    "BAD_REQUEST_PARAMETERS": (400, "BadRequestError"),
    "UNAUTHORIZED": (401, "UnauthorizedError"),
    "ACCESS_DENIED": (403, "ForbiddenError"),
    "INVALID_API_KEY": (403, "ForbiddenError"),
    "WAF_FILTERED": (403, "ForbiddenError"),
    "INTEGRATION_FAILURE": (503, "ServiceUnavailableError"),  # Lambda throttled: all busy
    "INTEGRATION_TIMEOUT": (504, "GatewayTimeoutError"),
    "API_CONFIGURATION_ERROR": (500, "InternalServerError"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "InternalServerError"),
    "AUTHORIZER_FAILURE": (500, "InternalServerError"),
}
RETRY_AFTER = {"THROTTLED": "1", "INTEGRATION_FAILURE": "1", "QUOTA_EXCEEDED": "60"}


def _app_headers() -> dict[str, str]:
    """The headers that the app puts on every JSON answer."""
    from chalice.app import CORSConfig

    import app as app_module
    from chalicelib.web import COMMON_HEADERS

    cors = app_module.app.api.cors
    cors = CORSConfig() if cors is True else cors
    return {"Content-Type": "application/json", **COMMON_HEADERS,
            **cors.get_access_control_headers()}


def test_every_gateway_response_is_in_the_apps_error_shape(template):
    responses = _api(template)["GatewayResponses"]
    assert set(responses) == set(GATEWAY_RESPONSES)
    for kind, (status, code) in GATEWAY_RESPONSES.items():
        response = responses[kind]
        assert response.get("StatusCode") == (None if status is None else str(status)), kind
        (body,) = response["ResponseTemplates"].values()
        assert list(response["ResponseTemplates"]) == ["application/json"], kind
        # API Gateway substitutes $context, $input, $stageVariables... in the
        # template: none at all, so nothing of the request is echoed.
        assert "$" not in body, kind
        parsed = json.loads(body)
        assert set(parsed) == {"Code", "Message"}, kind
        assert parsed["Code"] == code and parsed["Message"], kind


def test_gateway_responses_carry_the_apps_headers_and_echo_none(template):
    expected = _app_headers()
    assert {"Content-Type", "Cache-Control", "X-Content-Type-Options",
            "Access-Control-Allow-Origin"} <= set(expected)
    for kind, response in _api(template)["GatewayResponses"].items():
        assert set(response["ResponseParameters"]) == {"Headers"}, kind  # no Paths, no QueryStrings
        headers = response["ResponseParameters"]["Headers"]
        for name, value in headers.items():
            # A quoted literal; anything else (method.request.header.X, ...)
            # would copy a part of the request into the answer.
            assert re.fullmatch(r"'[^'$]*'", value), (kind, name, value)
        literal = {name: value[1:-1] for name, value in headers.items()}
        retry = RETRY_AFTER.get(kind)
        assert literal == {**expected, **({"Retry-After": retry} if retry else {})}, kind


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """No AWS configuration at all: no region, no credentials, no ~/.aws."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    return env


def test_plain_chalice_package_needs_no_aws_configuration(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([str(VENV / "bin" / "chalice"), "package", str(out)], cwd=ROOT,
                          env=_bare_env(tmp_path), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "sam.json").exists() and (out / "deployment.zip").exists()


def test_an_offline_package_without_wheels_ends_in_one_line(tmp_path):
    """A copy of the project (its own, empty, chalice deployment cache) packaged
    with pip offline and no wheels at hand."""
    copy = tmp_path / "project"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    env = {**_bare_env(tmp_path), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}",
         f"PACKAGE_DIR={tmp_path / 'out'}", "package"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines()  # make's own "*** Error" aside
            if line.strip() and not re.match(r"make(\[\d+\])?: ", line)]
    assert len(said) == 1, done.stderr
    assert said[0].startswith("package: no Linux") and "PIP_FIND_LINKS" in said[0], said
    assert "Traceback" not in done.stderr
