"""API Gateway REST proxy events for the benchmark: the same events the tests
send (tools/lambda_events.py builds them from the `aws-proxy` sample that
`sam local generate-event` prints), with a bearer token and a JSON body."""

import json
from typing import Any

from tools.lambda_events import LambdaContext, event

__all__ = ["LambdaContext", "rest_event"]


def rest_event(method: str, path: str, *, query: dict[str, str] | None = None,
               body: Any = None, token: str | None = None) -> dict[str, Any]:
    """One event for `method path`; the route and its path parameters come from the app."""
    import app  # no connection at import time

    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = body if isinstance(body, str) else json.dumps(body)
    return event(app.app.routes, method, path, headers=headers, body=body,
                 query={k: [v] for k, v in query.items()} if query else None)
