"""Property: no request body, however malformed, gets a 5xx. Arbitrary byte
strings and arbitrary JSON texts (odd numbers, deep nesting, the routes' own
field names with values of every type) go to every route that takes a body,
through the Lambda entry point; each answer is a success or a 4xx in the
error shape."""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.lambda_events import LambdaContext, event

pytestmark = pytest.mark.slow

ROUTES = ["/signup", "/auth", "/deliveries", "/add_delivery"]
FIELDS = ["username", "password", "role", "company_name", "first_name", "last_name", "phone",
          "vehicle", "size", "cost", "description", "external_id"]
SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Number literals JSON allows, including ones no float or Decimal holds.
numbers = st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,25})?\Z")
scalars = st.one_of(
    st.text().map(json.dumps), numbers, st.sampled_from(["true", "false", "null"]),
    st.sampled_from(["sender", "courier", "van", "10x20x30", "+15550001234", "12.50",
                     "pass", "courier"]).map(json.dumps),
    st.sampled_from(["1E1000000000000000000", "1e-9999999999999999999", "9" * 5000,
                     "NaN", "-Infinity"]))


def _array(children):
    return st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]")


def _object(children):
    keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)).map(json.dumps)
    pairs = st.lists(st.tuples(keys, children), max_size=8)
    return pairs.map(lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}")


json_values = st.recursive(scalars, lambda children: st.one_of(_array(children),
                                                               _object(children)),
                           max_leaves=30)
json_texts = st.one_of(_object(json_values), json_values,
                       st.integers(1, 3000).map(lambda n: "[" * n + "]" * n))
whitespace = st.text(alphabet=string.whitespace, max_size=3)


def send(route: str, body: bytes, token: str, as_base64: bool) -> dict:
    import app

    request = event(app.app.routes, "POST", route, body=body, base64_body=as_base64,
                    headers={"Content-Type": "application/json",
                             "Authorization": f"Bearer {token}"})
    return app.app(request, LambdaContext())


def assert_not_a_server_error(reply: dict) -> None:
    status = reply["statusCode"]
    assert status < 500, reply
    if status >= 400:
        error = json.loads(reply["body"])
        assert set(error) == {"Code", "Message"} and error["Message"], reply
    else:
        assert 200 <= status < 300, reply


@pytest.mark.parametrize("route", ROUTES)
@SETTINGS
@given(body=st.binary(max_size=400))
def test_any_bytes_get_a_4xx_or_a_success(route, body, sender_token):
    assert_not_a_server_error(send(route, body, sender_token, as_base64=True))


@pytest.mark.parametrize("route", ROUTES)
@SETTINGS
@given(text=json_texts, pad=whitespace)
def test_any_json_text_gets_a_4xx_or_a_success(route, text, pad, sender_token):
    body = (pad + text + pad).encode("utf-8", "surrogatepass")
    assert_not_a_server_error(send(route, body, sender_token, as_base64=True))


@pytest.mark.parametrize("route", ROUTES)
def test_the_reported_numbers_are_refused_with_a_4xx(route, sender_token):
    for number in (b"1E1000000000000000000", b"1e-9999999999999999999"):
        reply = send(route, b'{"x": ' + number + b"}", sender_token, as_base64=False)
        assert 400 <= reply["statusCode"] < 500, reply
