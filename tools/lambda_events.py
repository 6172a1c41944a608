"""API Gateway REST proxy events for calling the Lambda entry point, `app.app(event, context)`.

Every event starts from tools/events/apigateway-aws-proxy.json, the sample that
`sam local generate-event apigateway aws-proxy` (aws-sam-cli 1.170.0) prints,
unchanged. A request changes only its method, path, headers, body and, when
asked, its query string. The path also decides the fields API Gateway derives
from it for the resource that `chalice package` declares: `resource` and
`requestContext.resourcePath` ("/deliveries/{did}"; the sample's is
"/{proxy+}") and `pathParameters` ({"did": "5"}). Chalice routes on those.

Headers go into both `headers` (the last value of each) and `multiValueHeaders`
(all values), as API Gateway sends them, with the names spelled as given, so a
client that sends `authorization` in lower case (HTTP/2 clients do) gets a
lower-case key.
"""

import base64
import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SAMPLE_PATH = Path(__file__).with_name("events") / "apigateway-aws-proxy.json"


@cache
def _sample() -> dict[str, Any]:
    return json.loads(SAMPLE_PATH.read_text())


def route_for(routes: Any, path: str) -> tuple[str, dict[str, str] | None]:
    """(resource template, path parameters) of the route that serves `path`."""
    for template in routes:
        names = re.findall(r"{([^}]+)}", template)
        pattern = re.sub(r"{[^}]+}", "([^/]+)", template)
        match = re.fullmatch(pattern, path)
        if match:
            return template, dict(zip(names, match.groups(), strict=True)) or None
    raise LookupError(f"no route serves {path}")


def event(routes: Any, method: str, path: str, *,
          headers: dict[str, str | list[str]] | None = None,
          body: bytes | str | None = None, base64_body: bool = False,
          query: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event for `method path` (routes: `app.routes`)."""
    result = copy.deepcopy(_sample())
    resource, path_params = route_for(routes, path)
    stage = result["requestContext"]["stage"]
    result["httpMethod"] = method
    result["path"] = path
    result["resource"] = resource
    result["pathParameters"] = path_params
    result["requestContext"].update(
        httpMethod=method, path=f"/{stage}{path}", resourcePath=resource)

    for name, value in (headers or {}).items():
        values = value if isinstance(value, list) else [value]
        for existing in [k for k in result["headers"] if k.lower() == name.lower()]:
            del result["headers"][existing]
            del result["multiValueHeaders"][existing]
        result["headers"][name] = values[-1]
        result["multiValueHeaders"][name] = values

    if query is not None:
        result["multiValueQueryStringParameters"] = query or None
        result["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None

    if body is None:
        result["body"], result["isBase64Encoded"] = None, False
    else:
        raw = body.encode() if isinstance(body, str) else body
        if base64_body:
            result["body"], result["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            result["body"], result["isBase64Encoded"] = raw.decode(), False
    return result


class LambdaContext:
    """The attributes of the context object the Python runtime passes."""

    function_name = "delivery-api-prod"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:delivery-api-prod"
    memory_limit_in_mb = 1024
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/delivery-api-prod"
    log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000
