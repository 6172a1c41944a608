"""The recipient's side (third version): the dropoff PIN and deliver's check of
it, the courier's position (PUT /me/location) with courier_location and eta
in the delivery, and tracking (tracking_url, GET /track/{token}/status and the
HTML page GET /track/{token}). The browser checks of the page are in
tests/test_track_page_browser.py."""

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import track_page, tracking
from tests.conftest import assert_error
from tests.test_stops import full_stops

SPEED_MS = {"bicycle": 15 / 3.6, "scooter": 25 / 3.6, "motorcycle": 35 / 3.6,
            "car": 30 / 3.6, "van": 30 / 3.6, "truck": 25 / 3.6}
STATUS_KEYS = {"status", "updated_at", "courier", "courier_location", "eta", "pickup",
               "dropoff", "events"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def haversine(lat1, lng1, lat2, lng2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin(math.radians(lat2 - lat1) / 2) ** 2 \
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(min(1, math.sqrt(a)))


@pytest.fixture
def people(api):
    return {"sender": api.new_sender(), "courier": api.new_courier(),
            "other_sender": api.new_sender()}


def _create(api, sender, **stops):
    body = {"size": "10x20x30", "cost": "12.00", "description": "secret parcel",
            **(stops or full_stops())}
    reply = api.post("/deliveries", body, token=sender["token"])
    assert reply.status == 201, reply
    return reply.json


def _assign(api, people, did):
    reply = api.put(f"/assign/{did}/{people['courier']['courier_id']}",
                    token=people["sender"]["token"])
    assert reply.status == 200, reply
    return reply.json


def _picked_up(api, people, did):
    _assign(api, people, did)
    reply = api.post(f"/deliveries/{did}/pickup", token=people["courier"]["token"])
    assert reply.status == 200, reply
    return reply.json


def _deliver(api, courier, did, body=None):
    return api.post(f"/deliveries/{did}/deliver", body=body, token=courier["token"])


def _token_of(delivery) -> str:
    return delivery["tracking_url"].rsplit("/", 1)[1]


# ---------------------------------------------------------------- PIN


def test_a_pin_dropoff_shows_its_pin_to_the_owner_only(api, people):
    made = _create(api, people["sender"])
    pin = made["dropoff"]["pin"]
    assert re.fullmatch(r"[0-9]{4}", pin)
    assert made["dropoff"]["requires_pin"] is True
    did = made["id"]
    assert api.get(f"/deliveries/{did}", token=people["sender"]["token"]).json["dropoff"][
        "pin"] == pin  # the same PIN on every read
    as_courier = _picked_up(api, people, did)
    assert as_courier["dropoff"]["pin"] is None
    assert as_courier["dropoff"]["contact"] is not None  # the courier does see the contact
    courier_view = api.get(f"/deliveries/{did}", token=people["courier"]["token"]).json
    assert courier_view["dropoff"]["pin"] is None
    listed = api.get(f"/deliveries/courier/{people['courier']['courier_id']}",
                     token=people["courier"]["token"]).json["items"]
    assert all(item["dropoff"] is None or item["dropoff"]["pin"] is None for item in listed)
    history = api.get(f"/deliveries/{did}/events", token=people["sender"]["token"]).json
    assert all(e["data"]["dropoff"]["pin"] is None for e in history["items"])
    feed = api.get("/events", token=people["courier"]["token"]).json["items"]
    assert all((e["data"]["dropoff"] or {}).get("pin") is None for e in feed)


def test_a_dropoff_without_requires_pin_has_no_pin_and_delivers_without_one(api, people):
    stops = full_stops()
    stops["dropoff"]["requires_pin"] = False
    made = _create(api, people["sender"], **stops)
    assert made["dropoff"]["pin"] is None
    _picked_up(api, people, made["id"])
    reply = _deliver(api, people["courier"], made["id"])
    assert reply.status == 200 and reply.json["status"] == "delivered"
    events = api.get(f"/deliveries/{made['id']}/events", token=people["sender"]["token"]).json
    assert events["items"][-1]["data"]["pin_verified"] is False


def test_deliver_needs_the_right_pin(api, people):
    made = _create(api, people["sender"])
    did, pin = made["id"], made["dropoff"]["pin"]
    _picked_up(api, people, did)
    assert_error(_deliver(api, people["courier"], did), 400, "pin")
    assert_error(_deliver(api, people["courier"], did, {"pin": 1234}), 400, "pin")
    assert_error(_deliver(api, people["courier"], did, {"pin": "12345"}), 400, "pin")
    wrong = f"{(int(pin) + 1) % 10000:04d}"
    reply = _deliver(api, people["courier"], did, {"pin": wrong})
    assert_error(reply, 400, "pin")
    assert reply.json["Message"] == "pin: does not match"
    assert api.get(f"/deliveries/{did}", token=people["sender"]["token"]).json[
        "status"] == "picked_up"
    reply = _deliver(api, people["courier"], did, {"pin": pin})
    assert reply.status == 200 and reply.json["status"] == "delivered", reply
    events = api.get(f"/deliveries/{did}/events", token=people["sender"]["token"]).json
    assert events["items"][-1]["type"] == "delivery.delivered"
    assert events["items"][-1]["data"]["pin_verified"] is True


def test_five_wrong_pins_end_the_deliver_path_and_only_fail_remains(api, people, db):
    made = _create(api, people["sender"])
    did, pin = made["id"], made["dropoff"]["pin"]
    _picked_up(api, people, did)
    wrong = f"{(int(pin) + 5000) % 10000:04d}"
    for attempt in range(5):
        reply = _deliver(api, people["courier"], did, {"pin": wrong},)
        assert reply.status == 400 and reply.json["Message"] == "pin: does not match", attempt
    with db.cursor() as cur:
        cur.execute("SELECT pin_failures FROM deliveries WHERE id = %s", (did,))
        assert cur.fetchone()[0] == 5
    for given in (wrong, pin):
        reply = _deliver(api, people["courier"], did, {"pin": given})
        assert_error(reply, 409, "pin")
        assert "too many wrong attempts" in reply.json["Message"]
    reply = api.post(f"/deliveries/{did}/fail", {"reason": "recipient_unavailable"},
                     token=people["courier"]["token"])
    assert reply.status == 200 and reply.json["status"] == "failed", reply


def test_a_wrong_pin_under_an_idempotency_key_is_counted_and_frees_the_key(api, people, db):
    made = _create(api, people["sender"])
    did, pin = made["id"], made["dropoff"]["pin"]
    _picked_up(api, people, did)
    wrong = f"{(int(pin) + 1) % 10000:04d}"
    headers = {"Idempotency-Key": "pin-try-1"}
    first = api.post(f"/deliveries/{did}/deliver", {"pin": wrong}, token=people["courier"][
        "token"], headers=headers)
    assert first.status == 400
    right = api.post(f"/deliveries/{did}/deliver", {"pin": pin},
                     token=people["courier"]["token"], headers={"Idempotency-Key": "pin-try-2"})
    assert right.status == 200 and right.json["status"] == "delivered"
    with db.cursor() as cur:
        cur.execute("SELECT pin_failures FROM deliveries WHERE id = %s", (did,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM idempotency_keys WHERE key = 'pin-try-1'")
        assert cur.fetchone()[0] == 0


def test_patch_gives_and_takes_the_pin(api, people):
    stops = full_stops()
    stops["dropoff"]["requires_pin"] = False
    made = _create(api, people["sender"], **stops)
    path = f"/deliveries/{made['id']}"
    on = api.request("PATCH", path, body={"dropoff": {"requires_pin": True}},
                     token=people["sender"]["token"])
    assert on.status == 200 and re.fullmatch(r"[0-9]{4}", on.json["dropoff"]["pin"])
    again = api.request("PATCH", path, body={"description": "still"},
                        token=people["sender"]["token"])
    assert again.json["dropoff"]["pin"] == on.json["dropoff"]["pin"]
    off = api.request("PATCH", path, body={"dropoff": {"requires_pin": False}},
                      token=people["sender"]["token"])
    assert off.status == 200 and off.json["dropoff"]["pin"] is None


def test_pins_are_spread_over_all_four_digits(db):
    with db.cursor() as cur:
        cur.execute("SELECT count(DISTINCT p), min(p), max(p) FROM"
                    " (SELECT random_pin() p FROM generate_series(1, 20000)) s")
        distinct, low, high = cur.fetchone()
    assert distinct > 8500 and low < "0050" and high > "9950"


# ---------------------------------------------------------------- position and ETA


def _put(api, who, body):
    return api.put("/me/location", body=body, token=who["token"])


def test_put_location_checks_its_input(api, people):
    courier = people["courier"]
    assert_error(_put(api, people["sender"], {"lat": 1, "lng": 2}), 403, "couriers")
    assert_error(_put(api, courier, {"lng": 2}), 400, "lat")
    assert_error(_put(api, courier, {"lat": 91, "lng": 2}), 400, "lat")
    assert_error(_put(api, courier, {"lat": "52.5", "lng": 2}), 400, "lat")
    assert_error(_put(api, courier, {"lat": 1, "lng": 180.5}), 400, "lng")
    assert_error(_put(api, courier, {"lat": 1, "lng": 2, "accuracy_m": -1}), 400, "accuracy_m")
    assert_error(_put(api, courier, {"lat": 1, "lng": 2, "accuracy_m": 10001}), 400,
                 "accuracy_m")
    now = datetime.now(UTC)
    assert_error(_put(api, courier, {"lat": 1, "lng": 2, "at": _iso(now + timedelta(
        seconds=120))}), 400, "at")
    assert_error(_put(api, courier, {"lat": 1, "lng": 2, "at": _iso(now - timedelta(
        hours=2))}), 400, "at")
    assert_error(_put(api, courier, {"lat": 1, "lng": 2, "at": "yesterday"}), 400, "at")
    assert api.put("/me/location", body={"lat": 1, "lng": 2}).status == 401


def test_the_latest_position_is_kept_and_an_older_one_ignored(api, people, db):
    courier = people["courier"]
    now = datetime.now(UTC).replace(microsecond=0)
    assert _put(api, courier, {"lat": 52.5, "lng": 13.4, "accuracy_m": 8.25,
                               "at": _iso(now - timedelta(seconds=30))}).status == 204
    assert _put(api, courier, {"lat": 10, "lng": 10,
                               "at": _iso(now - timedelta(seconds=60))}).status == 204
    with db.cursor() as cur:
        cur.execute("SELECT lat, lng, accuracy_m, at FROM courier_positions"
                    " WHERE courier_id = %s", (courier["courier_id"],))
        lat, lng, accuracy, at = cur.fetchone()
        cur.execute("SELECT count(*) FROM courier_positions WHERE courier_id = %s",
                    (courier["courier_id"],))
        assert cur.fetchone()[0] == 1
    assert (float(lat), float(lng), float(accuracy)) == (52.5, 13.4, 8.2)
    assert at == now - timedelta(seconds=30)
    assert _put(api, courier, {"lat": 1.5, "lng": 2.5}).status == 204  # at: now
    with db.cursor() as cur:
        cur.execute("SELECT lat::float8, accuracy_m FROM courier_positions"
                    " WHERE courier_id = %s", (courier["courier_id"],))
        assert cur.fetchone() == (1.5, None)


def test_courier_location_and_eta_while_assigned_and_picked_up(api, people):
    stops = full_stops()
    made = _create(api, people["sender"], **stops)
    did = made["id"]
    pickup, dropoff = stops["pickup"]["location"], stops["dropoff"]["location"]
    assert made["courier_location"] is None and made["eta"] is None
    _assign(api, people, did)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    here = {"lat": 52.52, "lng": 13.40}
    assert _put(api, people["courier"], {**here, "accuracy_m": 12, "at": _iso(at)}).status == 204
    seen = api.get(f"/deliveries/{did}", token=people["sender"]["token"]).json
    assert seen["courier_location"] == {**here, "accuracy_m": 12, "at": _iso(at)}
    way = haversine(here["lat"], here["lng"], pickup["lat"], pickup["lng"]) \
        + haversine(pickup["lat"], pickup["lng"], dropoff["lat"], dropoff["lng"])
    expected = at + timedelta(seconds=way / SPEED_MS["van"])
    assert abs((_parse(seen["eta"]) - expected).total_seconds()) <= 1
    assert api.get(f"/deliveries/{did}", token=people["courier"]["token"]).json[
        "courier_location"] == seen["courier_location"]
    assert api.get(f"/deliveries/{did}", token=people["other_sender"]["token"]).status == 404
    api.post(f"/deliveries/{did}/pickup", token=people["courier"]["token"])
    seen = api.get(f"/deliveries/{did}", token=people["sender"]["token"]).json
    way = haversine(here["lat"], here["lng"], dropoff["lat"], dropoff["lng"])
    expected = at + timedelta(seconds=way / SPEED_MS["van"])
    assert abs((_parse(seen["eta"]) - expected).total_seconds()) <= 1
    listed = api.get(f"/deliveries/sender/{people['sender']['sender_id']}",
                     token=people["sender"]["token"]).json["items"]
    assert [d["eta"] for d in listed if d["id"] == did] == [seen["eta"]]
    events = api.get(f"/deliveries/{did}/events", token=people["sender"]["token"]).json
    assert all(e["data"]["courier_location"] is None and e["data"]["eta"] is None
               for e in events["items"])
    _deliver(api, people["courier"], did, {"pin": made["dropoff"]["pin"]})
    done = api.get(f"/deliveries/{did}", token=people["sender"]["token"]).json
    assert done["courier_location"] is None and done["eta"] is None


def test_a_stale_position_shows_no_location_and_no_eta(api, people):
    made = _create(api, people["sender"])
    _assign(api, people, made["id"])
    old = datetime.now(UTC) - timedelta(minutes=11)
    assert _put(api, people["courier"], {"lat": 52.5, "lng": 13.4, "at": _iso(old)}).status == 204
    seen = api.get(f"/deliveries/{made['id']}", token=people["sender"]["token"]).json
    assert seen["courier_location"] is None and seen["eta"] is None


def test_no_eta_without_the_locations_it_needs(api, people):
    stops = full_stops()
    del stops["pickup"]["location"]
    made = _create(api, people["sender"], **stops)
    _assign(api, people, made["id"])
    assert _put(api, people["courier"], {"lat": 52.5, "lng": 13.4}).status == 204
    seen = api.get(f"/deliveries/{made['id']}", token=people["sender"]["token"]).json
    assert seen["courier_location"] is not None and seen["eta"] is None


# ---------------------------------------------------------------- tracking


def test_the_owner_gets_a_stable_tracking_url_and_nobody_else_does(api, people):
    made = _create(api, people["sender"])
    url = made["tracking_url"]
    assert re.fullmatch(r"https?://[^/]+(/[A-Za-z0-9_-]+)?/track/[A-Za-z0-9_-]{32}", url), url
    assert api.get(f"/deliveries/{made['id']}", token=people["sender"]["token"]).json[
        "tracking_url"] == url
    listed = api.get(f"/deliveries/sender/{people['sender']['sender_id']}",
                     token=people["sender"]["token"]).json["items"]
    assert [d["tracking_url"] for d in listed if d["id"] == made["id"]] == [url]
    as_courier = _assign(api, people, made["id"])
    assert as_courier["tracking_url"] == url  # the sender assigned it: the sender's answer
    assert api.get(f"/deliveries/{made['id']}", token=people["courier"]["token"]).json[
        "tracking_url"] is None
    history = api.get(f"/deliveries/{made['id']}/events", token=people["sender"]["token"]).json
    assert all(e["data"]["tracking_url"] is None for e in history["items"])


def test_a_replay_answers_the_tracking_url_too(api, people):
    body = {"size": "1x2x3", "cost": "3.00", **full_stops()}
    headers = {"Idempotency-Key": "track-replay"}
    first = api.post("/deliveries", body, token=people["sender"]["token"], headers=headers)
    again = api.post("/deliveries", body, token=people["sender"]["token"], headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json["tracking_url"] == first.json["tracking_url"] is not None


def test_tokens_hide_the_id_and_refuse_any_change():
    tokens = {tracking.token(i) for i in range(1, 2001)}
    assert len(tokens) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", t) for t in tokens)
    assert [tracking.delivery_id(tracking.token(i)) for i in (1, 2, 99, 2**40)] == \
        [1, 2, 99, 2**40]
    # consecutive ids share no prefix: the id is not readable in the token
    assert len({tracking.token(i)[:6] for i in range(1, 200)}) == 199
    good = tracking.token(42)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(good)):
        changed = alphabet[(alphabet.index(good[position]) + 1) % 64]
        assert tracking.delivery_id(good[:position] + changed + good[position + 1:]) is None
    for bad in ("", good[:-1], good + "A", good.replace(good[0], "+"), "é" * 32, "=" * 32):
        assert tracking.delivery_id(bad) is None


def test_tokens_need_the_server_key(monkeypatch):
    good = tracking.token(42)
    monkeypatch.setenv("WEBHOOK_SIGNING_KEY", "another-server-key-" + "x" * 20)
    assert tracking.delivery_id(good) is None
    assert tracking.token(42) != good


def _status(api, token):
    return api.get(f"/track/{token}/status")


def test_the_status_shows_what_the_contract_lists_and_nothing_else(api, people):
    stops = full_stops()
    made = _create(api, people["sender"], **stops)
    token = _token_of(made)
    reply = _status(api, token)
    assert reply.status == 200, reply
    status = reply.json
    assert set(status) == STATUS_KEYS
    assert status["status"] == "created" and status["courier"] is None
    assert status["pickup"] == {"city": "Berlin", "window": {
        "start": stops["pickup"]["window"]["start"], "end": stops["pickup"]["window"]["end"]}}
    assert set(status["dropoff"]) == {"city", "window", "pin"}
    assert status["dropoff"]["pin"] == made["dropoff"]["pin"]
    assert status["events"] == [{"type": "delivery.created", "at": made["created_at"]}]
    for header, value in (("cache-control", "no-store"), ("referrer-policy", "no-referrer"),
                          ("x-robots-tag", "noindex")):
        assert reply.headers[header] == value
    text = reply.content.decode()
    for secret in ("secret parcel", "12.00", "Dock 4", "Ann Lee", "+4930901820", "Ring twice",
                   "Leave with the porter", "Unter den Linden", people["sender"]["username"],
                   '"id"', "sender", "cost", "external_id"):
        assert secret not in text, secret
    _picked_up(api, people, made["id"])
    api.request("PATCH", f"/deliveries/{made['id']}",
                body={"dropoff": {"instructions": "Back door"}}, token=people["sender"]["token"])
    assert _put(api, people["courier"], {"lat": 52.52, "lng": 13.40}).status == 204
    status = _status(api, token).json
    assert status["courier"] == {"first_name": "Ann", "vehicle": "van"}
    assert set(status["courier_location"]) == {"lat", "lng", "at"}
    assert status["eta"] is not None
    assert [e["type"] for e in status["events"]] == [
        "delivery.created", "delivery.assigned", "delivery.picked_up"]  # no delivery.updated
    text = _status(api, token).content.decode()
    for secret in ("Lee", "+1", "Back door", "accuracy", "last_name", "phone"):
        assert secret not in text, secret


def test_location_shows_on_tracking_only_while_picked_up(api, people):
    made = _create(api, people["sender"])
    _assign(api, people, made["id"])
    assert _put(api, people["courier"], {"lat": 52.52, "lng": 13.40}).status == 204
    status = _status(api, _token_of(made)).json
    assert status["status"] == "assigned" and status["courier_location"] is None
    assert status["eta"] is not None


def test_unknown_altered_and_expired_tokens_are_the_same_404(api, people, db):
    made = _create(api, people["sender"])
    token = _token_of(made)
    _picked_up(api, people, made["id"])
    assert _deliver(api, people["courier"], made["id"], {"pin": made["dropoff"]["pin"]}).status \
        == 200
    assert _status(api, token).status == 200  # final, not yet 7 days
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    unknown = tracking.token(2**62)
    with db.cursor() as cur:
        cur.execute("UPDATE deliveries SET updated_at = now() - interval '7 days 1 minute'"
                    " WHERE id = %s", (made["id"],))
    answers = [_status(api, t) for t in (token, altered, unknown, "short", "x" * 200)]
    assert {a.status for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    pages = [api.get(f"/track/{t}") for t in (token, altered, unknown)]
    assert {p.status for p in pages} == {404} and len({p.content for p in pages}) == 1


def test_the_page_shows_the_status_eta_courier_and_pin(api, people):
    made = _create(api, people["sender"])
    token = _token_of(made)
    page = api.get(f"/track/{token}")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.content.decode()
    assert 'data-status="created"' in text
    assert f'<p class="pin" id="pin">{made["dropoff"]["pin"]}</p>' in text
    assert '<meta http-equiv="refresh"' in text
    assert 'name="viewport"' in text
    _picked_up(api, people, made["id"])
    assert _put(api, people["courier"], {"lat": 52.52, "lng": 13.40}).status == 204
    text = api.get(f"/track/{token}").content.decode()
    eta = _status(api, token).json["eta"]
    assert f'<time datetime="{eta}">' in text and 'id="eta"' in text
    assert "Ann, in a van" in text and "Lee" not in text
    assert "secret parcel" not in text and "Dock 4" not in text


def test_the_page_sets_a_strict_policy_and_stops_refreshing_when_final(api, people):
    made = _create(api, people["sender"])
    token = _token_of(made)
    _picked_up(api, people, made["id"])
    _deliver(api, people["courier"], made["id"], {"pin": made["dropoff"]["pin"]})
    page = api.get(f"/track/{token}")
    text = page.content.decode()
    assert 'data-status="delivered"' in text and "refresh" not in text
    assert 'id="pin"' not in text  # no PIN once the delivery is over
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-robots-tag"] == "noindex"
    assert "<script" not in text and " style=" not in text
    assert re.search(r"https?://", text) is None  # nothing names another origin


def test_page_text_is_escaped():
    status = {"status": "assigned", "updated_at": "2026-12-02T10:00:00Z",
              "courier": {"first_name": "<b>Al</b>", "vehicle": "van"},
              "courier_location": None, "eta": None, "pickup": {"city": "A&B", "window": None},
              "dropoff": {"city": "\"><script>", "window": None, "pin": None}, "events": []}
    text = track_page.html(status)
    assert "<b>Al</b>" not in text and "<script>" not in text
    assert "&lt;b&gt;Al&lt;/b&gt;" in text and "A&amp;B" in text


def test_base_url_trusts_only_a_host_in_the_host_header(monkeypatch):
    class Request:
        def __init__(self, headers, path="/deliveries/{did}", context=None):
            self.headers, self.path = headers, path
            self.context = context or {"path": "/deliveries/7", "stage": "dev"}

    assert tracking.base_url(Request({"host": "api.example.com"})) == "https://api.example.com"
    assert tracking.base_url(Request({"host": "127.0.0.1:8000"})) == "http://127.0.0.1:8000"
    assert tracking.base_url(Request({"host": 'evil"}'})) == "http://localhost"
    assert tracking.base_url(Request({"host": "x.execute-api.eu-west-1.amazonaws.com"},
                                     context={"path": "/api/deliveries/7", "stage": "api"})) \
        == "https://x.execute-api.eu-west-1.amazonaws.com/api"
    assert tracking.base_url(Request({"host": "h", "x-forwarded-proto": "javascript"})) \
        == "https://h"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://track.example.com/d")
    assert tracking.base_url(Request({"host": "evil"})) == "https://track.example.com/d"


@pytest.mark.parametrize("value", ["track.example.com", "https://x.example.com/", "ftp://x",
                                   'https://x"y', "https://x.example.com/a b"])
def test_a_wrong_public_base_url_stops_the_start(monkeypatch, value):
    from chalicelib import config

    monkeypatch.setenv("PUBLIC_BASE_URL", value)
    with pytest.raises(config.ConfigError, match="PUBLIC_BASE_URL"):
        config.check()
