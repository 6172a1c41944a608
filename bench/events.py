"""API Gateway REST proxy events, shaped as API Gateway sends them to the Lambda.

The shape follows the `aws-proxy` sample (resource, path, httpMethod, headers and
multiValueHeaders with the CloudFront and X-Forwarded headers API Gateway adds,
query strings in both forms, pathParameters, stageVariables, a requestContext
with resourcePath/httpMethod/path/stage/requestId/identity, body, isBase64Encoded).
"""

import json
from typing import Any

STAGE = "api"

_BASE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate, br",
    "CloudFront-Forwarded-Proto": "https",
    "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Is-Mobile-Viewer": "false",
    "CloudFront-Is-SmartTV-Viewer": "false",
    "CloudFront-Is-Tablet-Viewer": "false",
    "CloudFront-Viewer-Country": "DE",
    "Host": "a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com",
    "User-Agent": "delivery-bench/1.0",
    "Via": "2.0 4b3c2a1f0e9d8c7b6a5f4e3d2c1b0a9f.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "cDehVQoZnx43VYQb9j2-nvCh-9z396Uhbp027Y2JvkCPNLmGJHqlaA==",
    "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
    "X-Forwarded-For": "203.0.113.10, 130.176.0.1",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}


def rest_event(method: str, resource: str, path: str, *,
               path_params: dict[str, str] | None = None,
               query: dict[str, str] | None = None,
               body: Any = None, token: str | None = None,
               request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef") -> dict[str, Any]:
    """One API Gateway REST (v1) proxy event for a route of the app."""
    headers = dict(_BASE_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw_body = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        raw_body = body if isinstance(body, str) else json.dumps(body)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": (
            {name: [value] for name, value in query.items()} if query else None),
        "pathParameters": dict(path_params) if path_params else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": "KFqTbGqyFiAFd9w=",
            "requestTime": "26/Nov/2026:04:56:00 +0000",
            "path": f"/{STAGE}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": "a1b2c3d4e5",
            "requestTimeEpoch": 1795496160000,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.10",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "delivery-bench/1.0",
                "user": None,
            },
            "domainName": "a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com",
            "apiId": "a1b2c3d4e5",
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


class LambdaContext:
    """The attributes of the context object the Python runtime passes."""

    function_name = "delivery-api-prod"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:delivery-api-prod"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/delivery-api-prod"
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000
