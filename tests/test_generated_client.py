"""A client generated from openapi.yaml works, with exact types.

openapi-python-client generates a Python client from the document into a
temporary folder (removed afterwards), as the package `delivery_api_client`.
Next to it goes tests/generated_flow.py, the code an integrator would write:
`mypy --strict` must pass on both (the generated package included), and the
flow must drive a whole delivery through a real local server: login as the demo
sender and courier, a create with an Idempotency-Key and its replay, assign to
courier 1, pickup, deliver, the revenue in a window around now, and a 404 read
as the generated Error with its ErrorCode; and an integration that works with
API keys alone (run_with_keys).

Skipped, saying why, when openapi-python-client (or mypy, for the type check)
is not installed: both are in requirements-dev.txt.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.yaml"
FLOW = Path(__file__).with_name("generated_flow.py")
PACKAGE = "delivery_api_client"
CONFIG = (f"package_name_override: {PACKAGE}\n"
          "project_name_override: delivery-api-client\n"
          "post_hooks: []\n")  # no ruff formatting: the code is checked, not read
# What the generator cannot use, and may say so: the delivery actions' text/plain
# alternative to their JSON body (the generated client sends JSON).
TOLERATED_WARNINGS = {"Unsupported content type text/plain"}
# The lines the generator writes per warning: "WARNING parsing POST /x within tag.",
# a blank line, the detail.
_WARNING = re.compile(r"^(WARNING|ERROR) (.*)\n\n(.*)$", re.MULTILINE)


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{what} is not installed: pip install -r requirements-dev.txt")


@pytest.fixture(scope="module")
def generated() -> Iterator[dict[str, Any]]:
    """The folder holding the generated package and a copy of generated_flow.py,
    and the generator's output."""
    _require("openapi_python_client", "openapi-python-client")
    folder = Path(tempfile.mkdtemp(prefix="generated-client-"))
    try:
        config = folder / "openapi-python-client.yaml"
        config.write_text(CONFIG, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(SPEC),
             "--meta", "none", "--output-path", str(folder / PACKAGE), "--config", str(config)],
            cwd=folder, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and (folder / PACKAGE / "__init__.py").exists(), output
        shutil.copyfile(FLOW, folder / FLOW.name)
        yield {"folder": folder, "output": output}
    finally:
        for name in [m for m in sys.modules
                     if m == FLOW.stem or m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        shutil.rmtree(folder, ignore_errors=True)


def test_the_generator_reads_the_whole_document(generated):
    warnings = _WARNING.findall(generated["output"])
    unexpected = [w for w in warnings if w[2].strip() not in TOLERATED_WARNINGS]
    assert unexpected == [], generated["output"]
    # Every operation became a function.
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    operation_ids = {operation["operationId"] for item in spec["paths"].values()
                     for operation in item.values() if isinstance(operation, dict)}
    modules = {path.stem for path in (generated["folder"] / PACKAGE / "api").rglob("*.py")
               if path.stem != "__init__"}
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower() for op in operation_ids}
    assert modules == snake


def test_every_generated_model_is_a_named_component_schema(generated):
    """No model named after an inline schema (MeSenderType0, Courier1, RoleModel,
    CreateDeliveryResponse422): each one a client sees is a schema of the document."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    models = (generated["folder"] / PACKAGE / "models" / "__init__.py").read_text()
    exported = set(re.findall(r'^    "(\w+)",$', models, re.MULTILINE))
    assert exported, models
    assert exported - set(spec["components"]["schemas"]) == set()


def test_the_client_and_an_integrators_flow_type_check_under_mypy_strict(generated):
    _require("mypy", "mypy")
    folder = generated["folder"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(folder / ".mypy_cache"), FLOW.name],
        cwd=folder, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_generated_client_drives_a_delivery_through_the_server(generated, live):
    sys.path.insert(0, str(generated["folder"]))
    flow_module = importlib.import_module(FLOW.stem)
    error_code = importlib.import_module(f"{PACKAGE}.models.error_code").ErrorCode

    flow = flow_module.run(live["base"])

    assert flow.sender.sender_id == 1 and flow.courier.courier_id == 1  # the demo users
    assert flow.replayed_header == "true"  # the create's replay under its Idempotency-Key
    assert flow.delivered.id == flow.created.id
    assert flow.delivered.delivered_at >= flow.delivered.picked_up_at
    assert flow.not_found.code == error_code("NotFoundError")
    assert flow.not_found.to_dict() == {"Code": "NotFoundError",
                                        "Message": "delivery 999999999 not found"}


def test_the_generated_client_works_with_api_keys(generated, live):
    sys.path.insert(0, str(generated["folder"]))
    flow_module = importlib.import_module(FLOW.stem)

    flow = flow_module.run_with_keys(live["base"])

    assert flow.created_with_key.sender_id == 1  # the demo sender's, made with its key
    assert flow.read_with_key.id == flow.created_with_key.id
    assert flow.refused_write.to_dict() == {"Code": "ForbiddenError",
                                            "Message": "scope: this key is read-only"}
    assert flow.after_delete.code.value == "UnauthorizedError"
    listed = {item.id: item for item in flow.listed.items}
    assert {flow.write_key.id, flow.read_key.id} <= set(listed)
    assert listed[flow.write_key.id].prefix == flow.write_key.key[:10]
    assert listed[flow.write_key.id].last_used_at is not None  # used by the create
    assert listed[flow.read_key.id].scope.value == "read"
    assert not hasattr(listed[flow.write_key.id], "key")
