"""One request, one round trip: count the statements that reach the wire."""

import pytest

from chalicelib import conn
from tools.wirecount import StatementCounter


@pytest.fixture
def wire(database_url, monkeypatch):
    counter = StatementCounter(database_url)
    monkeypatch.setenv("DATABASE_URL", counter.dsn)
    conn.drop()
    yield counter
    conn.drop()
    counter.close()


@pytest.fixture(scope="module")
def scene(api):
    sender = api.new_sender()
    courier = api.new_courier()
    delivery = api.new_delivery(sender["token"])
    spare = api.new_delivery(sender["token"])
    to_cancel = api.new_delivery(sender["token"])
    to_fail = api.new_delivery(sender["token"])
    for did in (delivery["id"], to_fail["id"]):
        assert api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"]).status \
            == 200
    assert api.post(f"/deliveries/{to_fail['id']}/pickup", token=courier["token"]).status == 200
    first = api.get(f"/deliveries/sender/{sender['sender_id']}?per_page=1", token=sender["token"])
    return {"sender": sender, "courier": courier, "delivery": delivery, "spare": spare,
            "to_cancel": to_cancel["id"], "to_fail": to_fail["id"],
            "cursor": first.json["next_cursor"]}


def _statements(wire, api, method, path, body=None, token=None):
    api.get("/")  # warm: the connection is open before counting
    api.get("/health")
    wire.reset()
    reply = api.request(method, path, body=body, token=token)
    return reply, wire.taken()


def _authenticated_calls(scene):
    s, c = scene["sender"], scene["courier"]
    d, spare = scene["delivery"]["id"], scene["spare"]["id"]
    return [
        ("GET", "/me", None, s["token"], "me"),
        ("GET", "/couriers", None, s["token"], "list_couriers"),
        ("POST", "/deliveries", {"size": "1x2x3", "cost": 5}, s["token"], "create_delivery"),
        ("POST", "/add_delivery", {"size": "1x2x3", "cost": "5.5"}, s["token"],
         "create_delivery"),
        ("GET", f"/deliveries/{d}", None, s["token"], "get_delivery"),
        ("GET", f"/deliveries/sender/{s['sender_id']}", None, s["token"],
         "list_sender_deliveries"),
        ("GET", f"/deliveries/courier/{c['courier_id']}", None, s["token"],
         "list_courier_deliveries"),
        ("PUT", f"/assign/{spare}/{c['courier_id']}", None, s["token"], "assign_delivery"),
        ("GET", f"/deliveries/courier/{c['courier_id']}?page=0&per_page=5", None, c["token"],
         "list_courier_deliveries"),
        ("GET", "/revenue/2020-01-01/2100-01-01", None, c["token"], "courier_revenue"),
        ("GET", f"/deliveries/{spare}/events", None, s["token"], "delivery_history"),
        ("GET", "/events?after=0&limit=5&type=delivery.created", None, s["token"], "event_feed"),
        ("POST", f"/deliveries/{spare}/pickup", None, c["token"], "delivery_action"),
        ("POST", f"/deliveries/{spare}/deliver", {"recipient_name": "Ann"}, c["token"],
         "delivery_action"),
        ("POST", f"/deliveries/{d}/unassign", None, c["token"], "delivery_action"),
        ("POST", f"/deliveries/{scene['to_cancel']}/cancel", {"reason": "no longer needed"},
         s["token"], "delivery_action"),
        ("POST", f"/deliveries/{scene['to_fail']}/fail", {"reason": "refused"}, c["token"],
         "delivery_action"),
        ("GET", f"/deliveries/sender/{s['sender_id']}?after={scene['cursor']}&per_page=2",
         None, s["token"], "list_sender_deliveries"),
        ("GET", f"/deliveries/sender/{s['sender_id']}?status=created,assigned"
                f"&created_from=2020-01-01&courier_id={c['courier_id']}", None, s["token"],
         "list_sender_deliveries"),
        ("GET", "/couriers?per_page=1", None, s["token"], "list_couriers"),
        ("POST", "/deliveries", {"size": "1x2x3", "cost": 5, "pickup": {
            "address": {"line1": "A 1", "city": "Berlin", "country": "DE"},
            "contact": {"phone": "+49 30 901820"}}, "dropoff": {
            "address": {"line1": "B 2", "city": "Berlin", "country": "DE"},
            "location": {"lat": 52.5, "lng": 13.4}}}, s["token"], "create_delivery"),
        ("PATCH", f"/deliveries/{d}", {"description": "patched"}, s["token"],
         "patch_delivery"),
        ("PUT", "/me/location", {"lat": 52.5, "lng": 13.4, "accuracy_m": 5}, c["token"],
         "put_courier_location"),
    ]


@pytest.mark.parametrize("index", range(23))
def test_authenticated_endpoint_sends_exactly_one_statement(wire, api, scene, index):
    method, path, body, token, function = _authenticated_calls(scene)[index]
    reply, statements = _statements(wire, api, method, path, body, token)
    assert reply.status in (200, 201, 204), reply
    assert len(statements) == 1, statements
    assert statements[0].startswith(f"SELECT * FROM {function}("), statements


def test_a_keyed_write_and_its_replay_send_one_statement_each(wire, api, scene):
    body, token = {"size": "1x2x3", "cost": 5}, scene["sender"]["token"]
    for replayed in (None, "true"):
        api.get("/")
        wire.reset()
        reply = api.request("POST", "/deliveries", body=body, token=token,
                            headers={"Idempotency-Key": "round-trip-key"})
        statements = wire.taken()
        assert reply.status == 201 and reply.headers.get("idempotent-replayed") == replayed
        assert len(statements) == 1 and statements[0].startswith("SELECT * FROM create_delivery(")


@pytest.mark.parametrize("suffix", ["/status", ""])
def test_the_tracking_routes_send_one_statement_and_a_bad_token_none(wire, api, scene, suffix):
    from chalicelib import tracking

    token = tracking.token(scene["delivery"]["id"])
    reply, statements = _statements(wire, api, "GET", f"/track/{token}{suffix}")
    assert reply.status == 200, reply
    assert len(statements) == 1 and statements[0].startswith("SELECT * FROM track_status(")
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    reply, statements = _statements(wire, api, "GET", f"/track/{altered}{suffix}")
    assert reply.status == 404 and statements == []


def test_refusals_also_send_one_statement(wire, api, scene):
    reply, statements = _statements(wire, api, "GET", "/deliveries/999999999",
                                    token=scene["sender"]["token"])
    assert reply.status == 404
    assert len(statements) == 1


def test_logout_sends_one_statement(wire, api, scene):
    token = api.login(scene["courier"]["username"], scene["courier"]["password"])
    reply, statements = _statements(wire, api, "DELETE", "/auth", token=token)
    assert reply.status == 204
    assert statements == [statements[0]] and statements[0].startswith("SELECT * FROM logout(")


def test_login_sends_at_most_two_statements(wire, api, scene):
    reply, statements = _statements(
        wire, api, "POST", "/auth",
        body={"username": scene["sender"]["username"], "password": scene["sender"]["password"]})
    assert reply.status == 200
    assert [s.split("(")[0] for s in statements] == [
        "SELECT * FROM login_lookup", "SELECT * FROM login_record"]


def test_signup_sends_two_statements_the_limit_before_the_hashing(wire, api):
    from tests.conftest import unique

    reply, statements = _statements(
        wire, api, "POST", "/signup",
        body={"username": unique("s"), "password": "correct horse", "role": "sender",
              "company_name": unique("Co ")})
    assert reply.status == 201
    assert [s.split("(")[0] for s in statements] == [
        "SELECT * FROM signup_allowance", "SELECT * FROM signup_sender"]


def test_malformed_token_costs_no_statement(wire, api):
    reply, statements = _statements(wire, api, "GET", "/me", token="not-a-token")
    assert reply.status == 401
    assert statements == []


def test_no_transaction_wrapping(wire, api, scene):
    """The first version sent BEGIN/COMMIT around each call: nothing of the kind now."""
    seen = []
    for method, path, body, token, _ in _authenticated_calls(scene):
        _, statements = _statements(wire, api, method, path, body, token)
        seen += statements
    words = {s.split()[0].upper() for s in seen}
    assert words == {"SELECT"}, seen


def test_a_webhook_to_a_host_name_checks_the_token_first_in_its_own_statement(
        wire, api, scene, monkeypatch):
    """POST /webhooks resolves a host name only for a known caller: the token's
    check, then the write (two statements); an address needs no DNS (one)."""
    token = scene["sender"]["token"]
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    by_name, statements = _statements(wire, api, "POST", "/webhooks",
                                      {"url": "http://localhost:9/h", "events": ["*"]}, token)
    assert by_name.status == 201, by_name
    assert [s.split("(")[0] for s in statements] == [
        "SELECT * FROM token_caller", "SELECT * FROM create_webhook"]
    by_address, statements = _statements(wire, api, "POST", "/webhooks",
                                         {"url": "http://127.0.0.1:9/h", "events": ["*"]}, token)
    assert by_address.status == 201, by_address
    assert [s.split("(")[0] for s in statements] == ["SELECT * FROM create_webhook"]
    unknown, statements = _statements(wire, api, "POST", "/webhooks",
                                      {"url": "http://localhost:9/h", "events": ["*"]},
                                      "0" * 40)
    assert unknown.status == 401
    assert [s.split("(")[0] for s in statements] == ["SELECT * FROM token_caller"]


def test_an_api_key_sends_one_statement_and_its_refresh_rides_in_it(wire, api, scene):
    from chalicelib import credentials

    made = api.post("/api-keys", {"name": "wire"}, token=scene["sender"]["token"])
    assert made.status == 201, made
    key, path = made.json["key"], f"/deliveries/{scene['delivery']['id']}"
    credentials._touched.clear()
    reply, statements = _statements(wire, api, "GET", path, token=key)
    assert reply.status == 200 and len(statements) == 1, statements
    assert statements[0].startswith("SELECT f.* FROM get_delivery(")
    assert "CROSS JOIN touch_api_key(" in statements[0]
    for method, body in (("GET", None), ("POST", {"size": "1x2x3", "cost": 5})):
        reply, statements = _statements(wire, api, method,
                                        path if method == "GET" else "/deliveries",
                                        body=body, token=key)
        assert reply.status in (200, 201) and len(statements) == 1, statements
        assert statements[0].startswith("SELECT * FROM "), statements
