"""The Lambda entry point, `app.app(event, context)`, under API Gateway REST proxy events.

The events are the aws-sam-cli sample with only method, path, headers, body
(and a query string where a test says so) changed: see tools/lambda_events.py.
"""

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.lambda_events import LambdaContext, event

ROOT = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def handler(database_url):
    import app as app_module

    def invoke(method, path, **kw):
        response = app_module.app(event(app_module.app.routes, method, path, **kw),
                                  LambdaContext())
        assert isinstance(response["body"], str)
        return response

    return invoke


def body_of(response):
    if response.get("isBase64Encoded"):
        return json.loads(base64.b64decode(response["body"]))
    return json.loads(response["body"])


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def test_liveness_answers_plain_text(handler):
    response = handler("GET", "/")
    assert response["statusCode"] == 200 and response["body"] == "OK"
    assert response["headers"]["Content-Type"].startswith("text/plain")


def test_login_with_base64_encoded_body(handler):
    raw = json.dumps({"username": "sender", "password": "pass"})
    response = handler("POST", "/auth", headers=JSON, body=raw, base64_body=True)
    assert response["statusCode"] == 200, response
    reply = body_of(response)
    assert reply["token_type"] == "Bearer" and reply["sender_id"] == 1
    assert len(reply["token"]) == 40 and reply["hash"] == reply["token"]
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "no-store"


def test_wrong_password_is_401(handler, api):
    user = api.new_courier()
    raw = json.dumps({"username": user["username"], "password": "not it at all"})
    response = handler("POST", "/auth", headers=JSON, body=raw, base64_body=True)
    assert response["statusCode"] == 401
    assert body_of(response)["Code"] == "UnauthorizedError"


def test_create_delivery_with_lower_case_authorization(handler, sender_token):
    raw = json.dumps({"size": "22x33x44", "cost": "23.45", "description": "<b>fragile</b>"})
    response = handler("POST", "/deliveries", headers={**JSON, **bearer(sender_token)},
                       body=raw, base64_body=True)
    assert response["statusCode"] == 201, response
    delivery = body_of(response)
    assert delivery["sender_id"] == 1 and delivery["size"] == "22x33x44"
    assert delivery["cost"] == "23.45" and delivery["description"] == "<b>fragile</b>"
    assert delivery["courier_id"] is None


def test_create_delivery_with_plain_body_and_bare_token(handler, sender_token):
    response = handler("POST", "/add_delivery",
                       headers={"content-type": "application/json; charset=utf-8",
                                "authorization": sender_token},
                       body=json.dumps({"size": "1x2x3", "cost": 5}))
    assert response["statusCode"] == 200, response
    assert body_of(response)["cost"] == "5.00"


def test_get_one_delivery_by_path_parameter(handler, sender_token):
    raw = json.dumps({"size": "10x10x10", "cost": "1.00"})
    created = body_of(handler("POST", "/deliveries", headers={**JSON, **bearer(sender_token)},
                              body=raw, base64_body=True))
    response = handler("GET", f"/deliveries/{created['id']}", headers=bearer(sender_token))
    assert response["statusCode"] == 200
    assert body_of(response) == created


def test_list_deliveries_with_query_string(handler, sender_token):
    for cost in ("1.00", "2.00"):
        handler("POST", "/deliveries", headers={**JSON, **bearer(sender_token)},
                body=json.dumps({"size": "1x1x1", "cost": cost}))
    response = handler("GET", "/deliveries/sender/1", headers=bearer(sender_token),
                       query={"per_page": ["1"], "page": ["0"]})
    assert response["statusCode"] == 200, response
    page = body_of(response)
    assert page["per_page"] == 1 and page["page"] == 0 and page["next_page"] == 1
    assert len(page["items"]) == 1 and page["items"][0]["sender_id"] == 1


def test_list_keeps_the_samples_unrelated_query_string(handler, sender_token):
    response = handler("GET", "/deliveries/sender/1", headers=bearer(sender_token))
    assert response["statusCode"] == 200
    assert body_of(response)["per_page"] == 10


def test_missing_token_is_401(handler):
    response = handler("GET", "/me")
    assert response["statusCode"] == 401
    assert body_of(response) == {"Code": "UnauthorizedError",
                                 "Message": "Authorization: a bearer token is required"}


def test_unknown_token_is_401(handler):
    response = handler("GET", "/me", headers=bearer("0" * 40))
    assert response["statusCode"] == 401


def test_me_with_token_from_multi_value_header(handler, courier_token):
    response = handler("GET", "/me", headers={"authorization": [f"Bearer {courier_token}"]})
    assert response["statusCode"] == 200
    assert body_of(response)["role"] == "courier"


def test_bad_json_is_400(handler, sender_token):
    response = handler("POST", "/deliveries", headers={**JSON, **bearer(sender_token)},
                       body=b"{not json", base64_body=True)
    assert response["statusCode"] == 400
    assert body_of(response)["Message"].startswith("body:")


def test_bad_size_is_400_naming_the_field(handler, sender_token):
    response = handler("POST", "/deliveries", headers={**JSON, **bearer(sender_token)},
                       body=json.dumps({"size": "22x33", "cost": "1.00"}), base64_body=True)
    assert response["statusCode"] == 400
    reply = body_of(response)
    assert reply["Code"] == "BadRequestError" and reply["Message"].startswith("size:")


def test_bad_path_parameter_is_400(handler, sender_token):
    response = handler("GET", "/deliveries/abc", headers=bearer(sender_token))
    assert response["statusCode"] == 400


def test_wrong_content_type_is_415(handler, sender_token):
    response = handler("POST", "/deliveries",
                       headers={"Content-Type": "text/plain", **bearer(sender_token)},
                       body="size=1x1x1", base64_body=True)
    assert response["statusCode"] == 415
    assert body_of(response)["Code"] == "UnsupportedMediaType"


# Run in a fresh interpreter so that the peak belongs to one cold container:
# import the app, then one login (one scrypt hash at N=2^14, r=8, p=5).
# getrusage's ru_maxrss is the figure Lambda's "Max Memory Used" resembles, but
# Linux carries the parent's RSS over fork and exec into it, so a child of
# pytest reports pytest's size; VmHWM (this process image's own peak) does not.
_MEASURE = textwrap.dedent("""
    import json, resource, sys
    from tools.lambda_events import LambdaContext, event
    def peaks():
        hwm = None
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        hwm = int(line.split()[1]) / 1024
        except OSError:
            pass
        return {"getrusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "hwm": hwm}
    start = peaks()
    import app
    imported = peaks()
    reply = app.app(event(app.app.routes, "POST", "/auth",
                          headers={"Content-Type": "application/json"},
                          body=json.dumps({"username": "sender", "password": "pass"})),
                    LambdaContext())
    print(json.dumps({"status": reply["statusCode"], "start": start,
                      "imported": imported, "login": peaks()}))
""")


def test_a_login_fits_the_prod_memory_size_with_room_to_spare(database_url):
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    memory_mb = config["stages"]["prod"]["lambda_memory_size"]
    result = subprocess.run([sys.executable, "-c", _MEASURE], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=120)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"peak RSS MiB: {measured}")
    assert measured["status"] == 200
    key = "hwm" if measured["login"]["hwm"] is not None else "getrusage"
    imported, login = measured["imported"][key], measured["login"][key]
    if key == "hwm":
        # scrypt's working array is 128 * r * N = 16 MiB, on top of the app.
        assert login - imported >= 15
    assert login * 2 <= memory_mb
