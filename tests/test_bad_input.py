"""Bad input of every kind, on every endpoint: always a 4xx naming the field, never a 5xx.

Each case is one row of a table: the request, the status expected, and the
word the error message must contain (the field at fault).
"""

import json

import pytest

from chalicelib.validation import MAX_BODY_BYTES

LEAKS = ("Traceback", 'File "', "psycopg2", "PL/pgSQL", "CONTEXT:", "SQLSTATE")


def assert_client_error(reply, status: int, field: str) -> None:
    assert 400 <= reply.status < 500, reply
    assert reply.status == status, reply
    # Chalice's own errors carry no Content-Type in-process; API Gateway and
    # `chalice local` default it to application/json.
    assert reply.headers.get("content-type", "application/json").startswith(
        "application/json"), reply
    assert isinstance(reply.json, dict) and set(reply.json) == {"Code", "Message"}, reply
    assert isinstance(reply.json["Code"], str) and reply.json["Code"], reply
    assert field in reply.json["Message"], reply
    text = reply.content.decode("utf-8", errors="replace")
    for leak in LEAKS:
        assert leak not in text, reply


class Raw:
    """A JSON value written verbatim (numbers json.dumps cannot write)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text})"


MISSING = object()


def body_with(base: dict, field: str, value: object) -> bytes:
    body = {k: v for k, v in base.items() if k != field}
    if value is not MISSING:
        body[field] = "@@RAW@@" if isinstance(value, Raw) else value
    # ensure_ascii (the default) sends "\ud800" and "\u0000" as JSON escapes.
    text = json.dumps(body)
    if isinstance(value, Raw):
        text = text.replace('"@@RAW@@"', value.text)
    return text.encode()


# ---------------------------------------------------------------- whole bodies

BODY_ENDPOINTS = ["/signup", "/auth", "/deliveries", "/add_delivery"]

BIG_JSON = json.dumps({"size": "1x1x1", "cost": 1, "description": "x" * 80_000}).encode()

BODY_CASES = [
    # id, raw body, extra headers, status, field named
    ("not-json", b"{", {}, 400, "body"),
    ("truncated-json", b'{"username": "x", "password": ', {}, 400, "body"),
    ("plain-text", b"hello", {}, 400, "body"),
    ("json-array", b"[]", {}, 400, "body"),
    ("json-array-of-object", b'[{"username": "sender"}]', {}, 400, "body"),
    ("json-string", b'"x"', {}, 400, "body"),
    ("json-number", b"1", {}, 400, "body"),
    ("json-null", b"null", {}, 400, "body"),
    ("json-true", b"true", {}, 400, "body"),
    ("empty", b"", {}, 400, "body"),
    ("whitespace", b"   \n", {}, 400, "body"),
    ("not-utf8", b'{"username": "\xff\xfe"}', {}, 400, "body"),
    ("nan", b"NaN", {}, 400, "body"),
    ("nan-inside", b'{"cost": NaN, "size": "1x1x1"}', {}, 400, "body"),
    ("infinity-inside", b'{"cost": -Infinity, "size": "1x1x1"}', {}, 400, "body"),
    ("deep-arrays", b"[" * 5000 + b"]" * 5000, {}, 400, "body"),
    ("deep-objects", b'{"a":' * 2000 + b"1" + b"}" * 2000, {}, 400, "body"),
    ("80kb-json", BIG_JSON, {}, 413, "body"),
    ("80kb-junk", b"x" * 81_920, {}, 413, "body"),
    ("limit-plus-1", b" " * (MAX_BODY_BYTES + 1), {}, 413, "body"),
    ("text-plain", b'{"size": "1x1x1", "cost": 1}', {"Content-Type": "text/plain"},
     415, "Content-Type"),
    ("form", b"size=1x1x1&cost=1", {"Content-Type": "application/x-www-form-urlencoded"},
     415, "Content-Type"),
    ("xml", b"<delivery/>", {"Content-Type": "application/xml"}, 415, "Content-Type"),
    ("empty-content-type", b"{}", {"Content-Type": ""}, 415, "Content-Type"),
]


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("raw, headers, status, field",
                         [case[1:] for case in BODY_CASES], ids=[case[0] for case in BODY_CASES])
def test_malformed_body_is_a_4xx_naming_the_field(api, sender_token, path, raw, headers,
                                                  status, field):
    token = sender_token if path in ("/deliveries", "/add_delivery") else None
    headers = {"Content-Type": "application/json", **headers}
    reply = api.post(path, raw=raw, token=token, headers=headers)
    assert_client_error(reply, status, field)


# ---------------------------------------------------------------- fields of bodies

WRONG_TYPES = [None, 1, 1.5, True, [], {}, Raw("1e400"), Raw(str(10**30))]
STRING_ABUSE = ["", "a\x00b", "\ud800", "abc\udfff", "\udc00\ud800"]

SENDER = {"username": "bad_input_user", "password": "long enough", "role": "sender",
          "company_name": "Bad Input Co"}
COURIER = {"username": "bad_input_courier", "password": "long enough", "role": "courier",
           "first_name": "Ann", "last_name": "Lee", "phone": "+15551234567", "vehicle": "van"}
LOGIN = {"username": "no_such_user_here", "password": "not a password"}
DELIVERY = {"size": "1x1x1", "cost": "1.00", "description": "fine"}

FIELD_CASES = [
    # (path, valid body, field, bad values)
    ("/signup", SENDER, "role", [MISSING, *WRONG_TYPES, *STRING_ABUSE, "admin", "SENDER"]),
    ("/signup", SENDER, "username",
     [MISSING, *WRONG_TYPES, *STRING_ABUSE, "ab", "a" * 41, "a b", "a/b", "ab\x00c"]),
    ("/signup", SENDER, "password",
     [MISSING, *WRONG_TYPES, *STRING_ABUSE, "7 chars", "x" * 129, "password\x00",
      "\ud800" * 8]),
    ("/signup", SENDER, "company_name",
     [MISSING, *WRONG_TYPES, *STRING_ABUSE, " ", "x" * 129, "Acme\x00 Inc", "Acme \ud800"]),
    ("/signup", COURIER, "first_name", [MISSING, *WRONG_TYPES, *STRING_ABUSE, "x" * 65]),
    ("/signup", COURIER, "last_name", [MISSING, *WRONG_TYPES, *STRING_ABUSE, "\t", "x" * 65]),
    ("/signup", COURIER, "phone",
     [MISSING, *WRONG_TYPES, *STRING_ABUSE, "15551234567", "+155512", "+1234567890123456",
      "+1555123456\x00", "+1-555-123-4567", 15551234567]),
    ("/signup", COURIER, "vehicle", [MISSING, *WRONG_TYPES, *STRING_ABUSE, "plane", "Car "]),
    ("/auth", LOGIN, "username", [MISSING, *WRONG_TYPES, "", "a\x00b", "\ud800", "x\udfff"]),
    ("/auth", LOGIN, "password", [MISSING, *WRONG_TYPES, ""]),
    ("/deliveries", DELIVERY, "size",
     [MISSING, *WRONG_TYPES, *STRING_ABUSE, "1x1", "0x1x1", "1x1x1001", "1x1x1\x00",
      "\uff11x1x1", "1x1x-1", "10000x1x1"]),
    ("/deliveries", DELIVERY, "cost",
     [MISSING, None, True, False, [], {}, "", "abc", "a\x00", "\ud800", "1.001", 1.001, 0,
      -1, "-1", Raw("1e400"), Raw("-1e400"), Raw("1e-400"), Raw(str(10**400)),
      Raw("1000000.01"), "1e2", "0x10", "1_000"]),
    ("/deliveries", DELIVERY, "description",
     [1, 1.5, True, [], {}, Raw("1e400"), "x" * 1001, "a\x00b", "\ud800", "ok\udc00"]),
    ("/add_delivery", DELIVERY, "cost", [MISSING, True, "1.001", Raw("1e400"), "\ud800"]),
    ("/add_delivery", DELIVERY, "size", [MISSING, 1, "1x1", "\ud800"]),
    ("/add_delivery", DELIVERY, "description", [1, "x" * 1001, "a\x00b", "\ud800"]),
]

FIELD_ROWS = [(path, base, field, value)
              for path, base, field, values in FIELD_CASES for value in values]


def field_case_id(row) -> str:
    path, _, field, value = row
    shown = "missing" if value is MISSING else repr(value)
    return f"{path}-{field}-{shown[:24]}"


@pytest.mark.parametrize("path, base, field, value", FIELD_ROWS,
                         ids=[field_case_id(row) for row in FIELD_ROWS])
def test_bad_field_is_400_naming_it(api, sender_token, path, base, field, value):
    token = sender_token if path in ("/deliveries", "/add_delivery") else None
    reply = api.post(path, raw=body_with(base, field, value), token=token)
    assert_client_error(reply, 400, field)


@pytest.mark.parametrize("password", ["a\x00bcdefgh", "\ud800" * 8], ids=repr)
def test_unusable_password_at_login_is_just_wrong(api, password):
    # No password with these can exist, so it is the ordinary 401.
    reply = api.post("/auth", raw=body_with(LOGIN, "password", password))
    assert_client_error(reply, 401, "password")


# ---------------------------------------------------------------- path parameters

BAD_IDS = ["abc", "0", "-1", "1.5", "99999999999999999999", "9223372036854775808", "%20",
           "1%20", "+1", "1e3", "0x1", "%EF%BC%91", "1,2"]
BAD_INSTANTS = ["abc", "-1", "1.5", "99999999999999999999", "%20", "1e3", "2024-02-30",
                "2024-03-01T00:00:00", "10000-01-01", "%00"]

PATH_ENDPOINTS = [
    # method, path with {} for the bad value, field, who calls
    ("GET", "/deliveries/{}", "did", "sender", BAD_IDS),
    ("GET", "/deliveries/sender/{}", "sid", "sender", BAD_IDS),
    ("GET", "/deliveries/courier/{}", "cid", "sender", BAD_IDS),
    ("GET", "/deliveries/courier/{}", "cid", "courier", BAD_IDS),
    ("PUT", "/assign/{}/1", "did", "sender", BAD_IDS),
    ("PUT", "/assign/1/{}", "cid", "sender", BAD_IDS),
    ("GET", "/revenue/{}/0", "from", "courier", BAD_INSTANTS),
    ("GET", "/revenue/0/{}", "to", "courier", BAD_INSTANTS),
]
PATH_ROWS = [(method, template.format(value), field, who)
             for method, template, field, who, values in PATH_ENDPOINTS for value in values]


@pytest.mark.parametrize("method, path, field, who", PATH_ROWS,
                         ids=[f"{m} {p} as {w}" for m, p, _, w in PATH_ROWS])
def test_malformed_path_parameter_is_400_naming_it(api, sender_token, courier_token,
                                                    method, path, field, who):
    token = sender_token if who == "sender" else courier_token
    assert_client_error(api.request(method, path, token=token), 400, field)


# ---------------------------------------------------------------- query parameters

BAD_QUERIES = [
    ("page=abc", "page"), ("page=-1", "page"), ("page=1.5", "page"), ("page=1e3", "page"),
    ("page=", "page"), ("page=99999999999999999999", "page"), ("page=100001", "page"),
    ("page=%201", "page"), ("page=0x1", "page"),
    ("per_page=0", "per_page"), ("per_page=101", "per_page"), ("per_page=1e3", "per_page"),
    ("per_page=-1", "per_page"), ("per_page=abc", "per_page"), ("per_page=", "per_page"),
    ("per_page=10.0", "per_page"), ("per_page=99999999999999999999", "per_page"),
    ("page=0&per_page=1000", "per_page"), ("page=x&per_page=10", "page"),
]
LIST_ENDPOINTS = [("/couriers", "sender"), ("/deliveries/sender/1", "sender"),
                  ("/deliveries/courier/1", "sender"), ("/deliveries/courier/1", "courier")]
QUERY_ROWS = [(f"{path}?{query}", field, who)
              for path, who in LIST_ENDPOINTS for query, field in BAD_QUERIES]


@pytest.mark.parametrize("path, field, who", QUERY_ROWS,
                         ids=[f"{p} as {w}" for p, _, w in QUERY_ROWS])
def test_malformed_query_parameter_is_400_naming_it(api, sender_token, courier_token,
                                                     path, field, who):
    token = sender_token if who == "sender" else courier_token
    assert_client_error(api.get(path, token=token), 400, field)


# ---------------------------------------------------------------- the Authorization header

AUTH_ENDPOINTS = [
    ("GET", "/me", None), ("DELETE", "/auth", None), ("GET", "/couriers", None),
    ("POST", "/deliveries", {"size": "1x1x1", "cost": 1}),
    ("POST", "/add_delivery", {"size": "1x1x1", "cost": 1}),
    ("GET", "/deliveries/1", None), ("GET", "/deliveries/sender/1", None),
    ("GET", "/deliveries/courier/1", None), ("PUT", "/assign/1/1", None),
    ("GET", "/revenue/0/1", None),
]
BAD_AUTHORIZATION = [None, "", "Bearer", "Bearer not-a-token", "Basic c2VuZGVyOnBhc3M=",
                     "Bearer " + "0" * 40, "0" * 40, "Bearer " + "A" * 40,
                     "Bearer " + "0" * 39 + "\u00e9"]
AUTH_ROWS = [(method, path, body, header)
             for method, path, body in AUTH_ENDPOINTS for header in BAD_AUTHORIZATION]


@pytest.mark.parametrize("method, path, body, header", AUTH_ROWS,
                         ids=[f"{m} {p} {h!r}" for m, p, _, h in AUTH_ROWS])
def test_missing_or_bad_token_is_401_naming_authorization(api, method, path, body, header):
    headers = {} if header is None else {"Authorization": header}
    reply = api.request(method, path, body=body, headers=headers)
    assert_client_error(reply, 401, "Authorization")


# ---------------------------------------------------------------- the database away


def test_database_unavailable_is_503_not_500(api, sender_token, monkeypatch):
    from chalicelib import conn

    conn.drop()
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/nowhere")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "1")
    try:
        health = api.get("/health")
        assert health.status == 503, health
        assert health.json["database"] == "unavailable"
        reply = api.get("/me", token=sender_token)
        assert reply.status == 503, reply
        assert set(reply.json) == {"Code", "Message"} and "database" in reply.json["Message"]
        assert not any(leak in reply.content.decode() for leak in LEAKS)
    finally:
        monkeypatch.undo()
        conn.drop()
    assert api.get("/me", token=sender_token).status == 200


@pytest.mark.parametrize("number", [b"9" * 5000, b"1E1000000000000000000",
                                    b"-1e-9999999999999999999", b"1" + b"0" * 101])
def test_a_number_too_long_or_too_large_is_refused_naming_its_field(api, sender_token, number):
    body = b'{"size": "1x1x1", "cost": ' + number + b"}"
    assert_client_error(api.post("/deliveries", raw=body, token=sender_token), 400, "cost")


@pytest.mark.parametrize("number", [b"9" * 5000, b"1E1000000000000000000"])
def test_a_number_too_large_in_a_field_nobody_reads_is_ignored(api, sender_token, number):
    body = b'{"size": "1x1x1", "cost": "1.00", "extra": ' + number + b"}"
    assert api.post("/deliveries", raw=body, token=sender_token).status == 201


@pytest.mark.parametrize("raw, message", [
    ("\ufeff" '{"a": 1}', "byte order mark"),
    ('{"size": "1x1x1", "cost": 1}', "UTF-8"),
], ids=["utf8-bom", "utf16"])
def test_a_body_that_is_not_plain_utf8_is_refused(api, sender_token, raw, message):
    data = raw.encode("utf-8") if message != "UTF-8" else raw.encode("utf-16")
    reply = api.post("/deliveries", raw=data, token=sender_token)
    assert_client_error(reply, 400, "body")
    assert message in reply.json["Message"]


@pytest.mark.parametrize("raw", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 40 + b"1" + b"}" * 40])
def test_deep_nesting_is_named_as_such(api, sender_token, raw):
    reply = api.post("/deliveries", raw=raw, token=sender_token)
    assert_client_error(reply, 400, "body")
    assert "nested deeper than" in reply.json["Message"]
