"""openapi.yaml is a valid OpenAPI document and describes exactly the app's routes."""

from pathlib import Path

import yaml
from openapi_spec_validator import validate

import app
from chalicelib import docs_page

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def test_openapi_document_is_valid():
    validate(load_spec())


def test_openapi_operations_are_exactly_the_app_routes():
    spec = load_spec()
    documented = {(path, method.upper())
                  for path, item in spec["paths"].items()
                  for method in item if method in HTTP_METHODS}
    routed = {(path, method.upper())
              for path, methods in app.app.routes.items() for method in methods}
    routed -= docs_page.ROUTES  # the reference page and its files, not API operations
    assert documented - routed == set(), "documented but not routed"
    assert routed - documented == set(), "routed but not documented"


def test_openapi_path_parameters_match_the_route_placeholders():
    spec = load_spec()
    for path, item in spec["paths"].items():
        placeholders = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = {_resolve(spec, p)["name"] for p in operation.get("parameters", [])
                        if _resolve(spec, p)["in"] == "path"}
            assert declared == placeholders, f"{method.upper()} {path}"


def test_authenticated_operations_declare_bearer_and_401():
    spec = load_spec()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            security = operation.get("security", spec["security"])
            if security:
                assert "401" in operation["responses"], f"{method.upper()} {path}"


def _resolve(spec: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    for part in ref.removeprefix("#/").split("/"):
        spec = spec[part]
    return spec
