"""Property tests (hypothesis) of the stops: the database's JSON Merge Patch
against a plain Python model of RFC 7396, the changed paths against a plain
walk, PATCH /deliveries/{did} against the model applied to what the delivery
showed, and the validation against its stated rules."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import stops

pytestmark = pytest.mark.slow

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def merge_patch(target, patch):
    """RFC 7396, section 2, as written there."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        target = dict(target)
        for name, value in patch.items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = merge_patch(target.get(name), value)
        return target
    return patch


def changed_paths(old, new, prefix=""):
    """The dotted paths of the leaves that differ (absent reads as null)."""
    if isinstance(old, dict) or isinstance(new, dict):
        old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
        out = []
        for key in sorted(set(old) | set(new)):
            out += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    # JSON's equality: false is not 0 (Python's == says it is).
    same = json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
    return [] if same else [prefix]


keys = st.sampled_from(["a", "b", "c", "d"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["x", "y"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=8)
documents = st.dictionaries(keys, values, max_size=4)


def _sql(db, sql: str, *args):
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


@SETTINGS
@given(target=documents, patch=documents)
def test_the_databases_merge_patch_is_rfc_7396(db, target, patch):
    got = _sql(db, "SELECT json_merge_patch(%s::jsonb, %s::jsonb)::text",
               json.dumps(target), json.dumps(patch))
    assert json.loads(got) == merge_patch(target, patch)


@SETTINGS
@given(old=documents, new=documents)
def test_the_databases_changed_paths_are_the_leaves_that_differ(db, old, new):
    got = _sql(db, "SELECT json_changed_paths(%s::jsonb, %s::jsonb, '')",
               json.dumps(old), json.dumps(new))
    assert got == changed_paths(old, new)


# ---------------------------------------------------------------- the endpoint

LATER = datetime.now(UTC) + timedelta(days=2)
lines = st.text(alphabet="abc XYZ123äß-", min_size=1, max_size=12).filter(str.strip)
coordinates = st.decimals(min_value=-89, max_value=89, places=6, allow_nan=False)
address_patch = st.fixed_dictionaries({}, optional={
    "line1": lines, "line2": st.one_of(st.none(), lines), "city": lines,
    "state": st.one_of(st.none(), lines), "postal_code": st.one_of(st.none(), st.just("10117")),
    "country": st.sampled_from(["DE", "fr", "NL"])})
stop_patch = st.fixed_dictionaries({}, optional={
    "address": address_patch,
    "location": st.one_of(st.none(), st.fixed_dictionaries({"lat": coordinates,
                                                           "lng": coordinates})),
    "contact": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "name": st.one_of(st.none(), lines),
        "phone": st.sampled_from(["+4930901820", "+33 1 42 68 53 00", "+31 20 624 1111"])})),
    "instructions": st.one_of(st.none(), lines),
    "window": st.one_of(st.none(), st.just({
        "start": (LATER).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (LATER + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")}))})
patches = st.fixed_dictionaries({}, optional={
    "description": st.one_of(st.none(), lines), "pickup": stop_patch, "dropoff": stop_patch})

BASE = {"pickup": {"address": {"line1": "Unter den Linden 1", "line2": None, "city": "Berlin",
                               "state": None, "postal_code": "10117", "country": "DE"},
                   "location": None, "contact": {"name": "Dock", "phone": "+4930901820"},
                   "instructions": None, "window": None},
        "dropoff": {"address": {"line1": "Marienplatz 8", "line2": "3. OG", "city": "München",
                                "state": None, "postal_code": "80331", "country": "DE"},
                    "location": {"lat": 48.137154, "lng": 11.576124}, "contact": None,
                    "instructions": "Porter", "window": None}}


def _shown(delivery: dict) -> dict:
    """The patchable part of a delivery as the API shows it."""
    out = {"description": delivery["description"]}
    for kind in ("pickup", "dropoff"):
        stop = delivery[kind]
        out[kind] = None if stop is None else {
            k: v for k, v in stop.items() if k not in ("requires_pin", "pin")}
    return out


def _normal(value):
    """As the API answers a value the model computed: upper-case countries,
    E.164 phones, trimmed names, six-decimal coordinates."""
    if isinstance(value, dict):
        value = {k: _normal(v) for k, v in value.items()}
        if "country" in value and isinstance(value["country"], str):
            value["country"] = value["country"].upper()
        if "phone" in value and isinstance(value["phone"], str):
            value["phone"] = re.sub(r"[ ().-]", "", value["phone"])
        if "name" in value and isinstance(value["name"], str):
            value["name"] = value["name"].strip()  # names are trimmed, as at signup
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return float(Decimal(str(value)).quantize(Decimal("0.000001")))
    return value


def _complete(stop):
    """A stop as the API shows it: every key present, null where unset."""
    if stop is None:
        return None
    address = {k: stop.get("address", {}).get(k) for k in stops.ADDRESS_FIELDS}
    contact = stop.get("contact")
    if contact is not None:
        contact = {"name": contact.get("name"), "phone": contact.get("phone")}
        if contact == {"name": None, "phone": None}:
            contact = None
    return {"address": address, "location": stop.get("location"), "contact": contact,
            "instructions": stop.get("instructions"), "window": stop.get("window")}


@SETTINGS
@given(patch=patches)
def test_a_patch_answers_what_the_model_says_or_a_400(api, patch):
    from tests.conftest import assert_error

    sender = _sender(api)
    made = api.post("/deliveries", {"size": "1x2x3", "cost": 1, "description": "d", **BASE},
                    token=sender["token"])
    assert made.status == 201, made
    before = _shown(made.json)
    body = json.loads(json.dumps(patch, default=float))
    expected = merge_patch(before, _normal(body))
    expected = {"description": expected.get("description"),
                "pickup": _complete(expected.get("pickup")),
                "dropoff": _complete(expected.get("dropoff"))}
    expected = _normal(expected)
    whole = all(s is None or (s["address"]["line1"] and s["address"]["city"]
                              and s["address"]["country"]) for s in
                (expected["pickup"], expected["dropoff"]))
    reply = api.request("PATCH", f"/deliveries/{made.json['id']}", body=body,
                        token=sender["token"],
                        headers={"Content-Type": "application/merge-patch+json"})
    if not whole:
        assert_error(reply, 400, "address")
        return
    assert reply.status == 200, (reply, body)
    assert _normal(_shown(reply.json)) == expected
    events = api.get(f"/deliveries/{made.json['id']}/events",
                     token=sender["token"]).json["items"]
    changed = changed_paths(_normal(before), expected)
    if changed:
        assert events[-1]["type"] == "delivery.updated"
        assert events[-1]["data"]["changed"] == changed
    else:
        assert [e["type"] for e in events] == ["delivery.created"]


_cast: dict = {}


def _sender(api) -> dict:
    if "sender" not in _cast:
        _cast["sender"] = api.new_sender()
    return _cast["sender"]


# ---------------------------------------------------------------- validation


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.text(alphabet="+0123456789 -.()x", max_size=22))
def test_a_phone_is_accepted_exactly_when_its_rules_hold(raw):
    digits = re.sub(r"[ ().-]", "", raw)
    try:
        got = stops.phone(raw, "p")
    except Exception as exc:
        assert str(exc).startswith("p: ")
        import phonenumbers

        if re.fullmatch(r"\+[1-9][0-9]{1,14}", digits):
            try:
                number = phonenumbers.parse(digits, None)
            except phonenumbers.NumberParseException:
                return  # no such country calling code: refused, as it must be
            assert not phonenumbers.is_possible_number(number)
        return
    assert got == digits and re.fullmatch(r"\+[1-9][0-9]{1,14}", got)


@settings(max_examples=300, deadline=None, database=None)
@given(code=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz", min_size=1, max_size=3))
def test_a_country_is_accepted_exactly_when_it_is_an_iso_code(code):
    import iso3166

    exists = len(code) == 2 and code.upper() in iso3166.countries_by_alpha2
    try:
        assert stops.country(code, "c") == code.upper() and exists
    except Exception as exc:
        assert not exists and str(exc).startswith("c: ")


@settings(max_examples=300, deadline=None, database=None)
@given(value=st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=8),
                       st.integers(-400, 400), st.booleans(), st.text(max_size=3)))
def test_a_latitude_is_accepted_exactly_in_range_and_kept_to_six_places(value):
    in_range = not isinstance(value, bool | str) and -90 <= Decimal(value) <= 90
    try:
        got = stops.coordinate(value, "lat", 90)
    except Exception as exc:
        assert not in_range and str(exc).startswith("lat: ")
        return
    assert in_range and got == Decimal(value).quantize(Decimal("0.000001"))
