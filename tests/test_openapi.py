"""openapi.yaml is a valid OpenAPI 3.1 document and describes exactly the app's
routes, the headers every answer carries, and the error codes the service sends.
(tools/lint_openapi.sh lints it with Redocly and Spectral; tests/test_fuzz.py
fuzzes it against a server; tests/test_generated_client.py generates a client.)"""

import json
import re
from pathlib import Path

import yaml
from chalice import app as chalice_app
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

import app
from chalicelib import docs_page

ROOT = Path(__file__).resolve().parent.parent

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def test_openapi_document_is_valid():
    spec = load_spec()
    assert spec["openapi"] == "3.1.0"
    validate(spec, cls=OpenAPIV31SpecValidator)


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


def operations(spec: dict, section: str = "paths"):
    """(METHOD, path, operation) of every operation of a section of the document."""
    for path, item in spec.get(section, {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def _walk(node: object, where: str = "#"):
    """Every (pointer, mapping) of the document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}/{index}")


def test_nullability_is_in_the_3_1_form():
    assert [where for where, node in _walk(load_spec()) if "nullable" in node] == []


def test_every_operation_is_described():
    spec = load_spec()
    tags = {tag["name"] for tag in spec["tags"] if tag.get("description")}
    for section in ("paths", "webhooks"):
        for method, path, operation in operations(spec, section):
            for field in ("operationId", "summary", "description"):
                assert operation.get(field), f"{method} {path}: {field}"
            assert operation.get("tags") and set(operation["tags"]) <= tags, f"{method} {path}"


def test_every_body_is_a_named_schema_and_every_answer_has_an_example():
    """Request and response bodies name a component schema (a generated client gets
    a class of that name, not one made up from the operation), and every answer with
    a body shows it."""
    spec = load_spec()
    for section in ("paths", "webhooks"):
        for method, path, operation in operations(spec, section):
            body = _resolve(spec, operation.get("requestBody", {"content": {}}))
            for media, content in body["content"].items():
                assert "$ref" in content["schema"], f"{method} {path} request {media}"
            for status, response in operation["responses"].items():
                for media, content in _resolve(spec, response).get("content", {}).items():
                    assert "$ref" in content["schema"], f"{method} {path} {status} {media}"
                    assert "example" in content or content.get("examples"), \
                        f"{method} {path} {status} {media}: no example"


def test_every_answer_declares_the_headers_the_service_sends():
    spec = load_spec()
    common = {"Cache-Control", "X-Content-Type-Options", "Access-Control-Allow-Origin",
              "Access-Control-Allow-Headers", "X-Request-Id"}
    for method, path, operation in operations(spec):
        keyed = any(_resolve(spec, p)["name"] == "Idempotency-Key"
                    for p in operation.get("parameters", []))
        for status, response in operation["responses"].items():
            headers = _resolve(spec, response).get("headers", {})
            where = f"{method} {path} {status}"
            assert common <= set(headers), where
            assert all("$ref" in header for header in headers.values()), where
            assert ("Retry-After" in headers) == (status == "429"), where
            assert ("Idempotent-Replayed" in headers) == (keyed and status.startswith("2")), \
                where
            required = {name for name, header in headers.items()
                        if _resolve(spec, header).get("required")}
            # Only what the local server refuses before the app sees it (a body's
            # framing, its size) may come without the CORS headers and the request id.
            early = status in ("400", "413")
            assert required >= ({"Cache-Control", "X-Content-Type-Options"} if early
                                else common), where


def _codes_the_service_sends() -> dict[str, int | None]:
    """Code -> status of every error body the app (Chalice's error classes and its
    own), the middleware, the local server and API Gateway's responses send."""

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes: dict[str, int | None] = {
        cls.__name__: cls.STATUS_CODE for cls in subclasses(chalice_app.ChaliceViewError)}
    codes["UnsupportedMediaType"] = 415  # Chalice's 415, reworded by chalicelib/web.py
    codes["InternalServerError"] = 500  # Chalice's answer to an unhandled exception
    local = (ROOT / "tools" / "local_server.py").read_text(encoding="utf-8")
    for status, code in re.findall(r'_BodyRefused\((\d+), "(\w+)"', local):
        codes[code] = int(status)
    gateway = json.loads((ROOT / ".chalice" / "sam-merge.json").read_text(encoding="utf-8"))
    responses = gateway["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    for response in responses.values():
        body = json.loads(response["ResponseTemplates"]["application/json"])
        codes.setdefault(body["Code"], int(response.get("StatusCode", 0)) or None)
    return codes


def test_error_codes_are_exactly_those_the_service_sends():
    spec = load_spec()
    assert set(spec["components"]["schemas"]["ErrorCode"]["enum"]) == set(
        _codes_the_service_sends())


def test_every_error_example_has_the_code_of_its_status():
    spec = load_spec()
    code_of = {status: code for code, status in _codes_the_service_sends().items()
               if status is not None}
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")) or status == "503" and path == "/health":
                continue
            body = _resolve(spec, response)["content"]
            if "application/json" not in body:  # the tracking page's own 404 page
                assert (path, set(body)) == ("/track/{token}", {"text/html"}), path
                continue
            content = body["application/json"]
            examples = ([content["example"]] if "example" in content else
                        [example["value"] for example in content["examples"].values()])
            for example in examples:
                assert example["Code"] == code_of[int(status)], f"{method} {path} {status}"


def test_login_and_me_are_unions_discriminated_by_role():
    schemas = load_spec()["components"]["schemas"]
    for union, sender, courier in (("LoginResult", "SenderLogin", "CourierLogin"),
                                   ("Me", "SenderMe", "CourierMe"),
                                   ("SignupResult", "SenderSignupResult",
                                    "CourierSignupResult"),
                                   ("SignupRequest", "SenderSignup", "CourierSignup")):
        refs = {"sender": f"#/components/schemas/{sender}",
                "courier": f"#/components/schemas/{courier}"}
        assert schemas[union]["discriminator"] == {"propertyName": "role", "mapping": refs}
        assert [one["$ref"] for one in schemas[union]["oneOf"]] == list(refs.values())
    for name, present, absent in (("SenderLogin", "sender_id", "courier_id"),
                                  ("CourierLogin", "courier_id", "sender_id")):
        properties = schemas[name]["properties"]
        assert properties[present] == {"$ref": "#/components/schemas/Id"}, name
        assert properties[absent]["type"] == "null", name


def test_the_webhook_is_a_3_1_webhook():
    spec = load_spec()
    operation = spec["webhooks"]["deliveryEvent"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WebhookPayload"}
    headers = {_resolve(spec, p)["name"] for p in operation["parameters"]
               if _resolve(spec, p)["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
