"""Stops (third version): pickup and dropoff with addresses, locations,
contacts and windows; validation that names the path; distance_m; PATCH with
JSON Merge Patch semantics and the status rules; who sees contacts; the
erasure of contacts and instructions after a final status."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import retention
from tests.conftest import assert_error


def _at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0) \
        .isoformat().replace("+00:00", "Z")


def full_stops() -> dict:
    return {
        "pickup": {"address": {"line1": "Unter den Linden 1", "city": "Berlin",
                               "postal_code": "10117", "country": "de"},
                   "location": {"lat": 52.517037, "lng": 13.388860},
                   "contact": {"name": "Dock 4", "phone": "+49 30 901820"},
                   "instructions": "Ring twice",
                   "window": {"start": _at(1), "end": _at(2)}},
        "dropoff": {"address": {"line1": "Marienplatz 8", "line2": "3. OG", "city": "München",
                                "state": "Bayern", "postal_code": "80331", "country": "DE"},
                    "location": {"lat": 48.137154, "lng": 11.576124},
                    "contact": {"name": "Ann Lee", "phone": "+49 (89) 233-00"},
                    "instructions": "Leave with the porter",
                    "window": {"start": _at(3), "end": _at(30)},
                    "requires_pin": True},
    }


@pytest.fixture(scope="module")
def cast(api):
    return {"sender": api.new_sender(), "courier": api.new_courier(),
            "other": api.new_courier()}


def create(api, cast, **body):
    reply = api.post("/deliveries", {"size": "10x20x30", "cost": "12.00", **body},
                     token=cast["sender"]["token"])
    assert reply.status == 201, reply
    return reply.json


def test_a_delivery_with_both_stops_answers_every_key(api, cast):
    made = create(api, cast, **full_stops())
    pickup, dropoff = made["pickup"], made["dropoff"]
    assert pickup["address"] == {"line1": "Unter den Linden 1", "line2": None,
                                 "city": "Berlin", "state": None, "postal_code": "10117",
                                 "country": "DE"}
    assert pickup["location"] == {"lat": 52.517037, "lng": 13.38886}
    assert pickup["contact"] == {"name": "Dock 4", "phone": "+4930901820"}
    assert dropoff["contact"] == {"name": "Ann Lee", "phone": "+498923300"}
    assert set(pickup) == {"address", "location", "contact", "instructions", "window"}
    assert set(dropoff) == set(pickup) | {"requires_pin", "pin"}
    assert dropoff["requires_pin"] is True
    # Berlin Mitte to Munich's Marienplatz: about 504 km as the crow flies.
    assert 503_000 < made["distance_m"] < 506_000
    again = api.get(f"/deliveries/{made['id']}", token=cast["sender"]["token"]).json
    assert again == made


def test_a_first_version_delivery_has_no_stops(api, cast):
    made = create(api, cast)
    assert made["pickup"] is None and made["dropoff"] is None and made["distance_m"] is None


def test_distance_needs_both_locations(api, cast):
    stops = full_stops()
    del stops["dropoff"]["location"]
    assert create(api, cast, **stops)["distance_m"] is None


@pytest.mark.parametrize("change, path", [
    (lambda s: s["dropoff"]["address"].update(country="XX"), "dropoff.address.country"),
    (lambda s: s["dropoff"]["address"].update(country="DEU"), "dropoff.address.country"),
    (lambda s: s["dropoff"]["address"].pop("city"), "dropoff.address.city"),
    (lambda s: s["pickup"]["address"].update(line1=""), "pickup.address.line1"),
    (lambda s: s["pickup"]["address"].update(line1="a\nb"), "pickup.address.line1"),
    (lambda s: s["pickup"]["address"].update(postal_code="10117!"), "pickup.address.postal_code"),
    (lambda s: s["pickup"].pop("address"), "pickup.address"),
    (lambda s: s["pickup"].update(address="Berlin"), "pickup.address"),
    (lambda s: s["pickup"]["location"].update(lat=90.5), "pickup.location.lat"),
    (lambda s: s["pickup"]["location"].update(lng=-181), "pickup.location.lng"),
    (lambda s: s["pickup"]["location"].update(lat="52.5"), "pickup.location.lat"),
    (lambda s: s["pickup"]["location"].update(lat=True), "pickup.location.lat"),
    (lambda s: s["pickup"]["contact"].update(phone="030 901820"), "pickup.contact.phone"),
    (lambda s: s["pickup"]["contact"].update(phone="+49 1"), "pickup.contact.phone"),
    (lambda s: s["pickup"]["contact"].update(phone="+1 234"), "pickup.contact.phone"),
    (lambda s: s["pickup"]["contact"].update(name=""), "pickup.contact.name"),
    (lambda s: s["pickup"].update(contact={}), "pickup.contact"),
    (lambda s: s["pickup"].update(instructions="x" * 501), "pickup.instructions"),
    (lambda s: s["pickup"]["window"].update(end=_at(0.5)), "pickup.window.end"),
    (lambda s: s["pickup"]["window"].update(end=_at(-1)), "pickup.window.end"),
    (lambda s: s["pickup"]["window"].update(start="tomorrow"), "pickup.window.start"),
    (lambda s: s["pickup"]["window"].update(start="2026-05-01T09:00:00"), "pickup.window.start"),
    (lambda s: s["pickup"]["window"].update(start=_at(24 * 31), end=_at(24 * 32)),
     "pickup.window.start"),
    (lambda s: s["pickup"]["window"].pop("end"), "pickup.window.end"),
    (lambda s: s["dropoff"].update(window={"start": _at(0.1), "end": _at(0.5)}),
     "dropoff.window.end"),
    (lambda s: s["dropoff"].update(requires_pin="yes"), "dropoff.requires_pin"),
    (lambda s: s.update(pickup=[]), "pickup"),
])
def test_bad_stops_are_400_naming_the_path(api, cast, change, path):
    body = full_stops()
    change(body)
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1, **body},
                     token=cast["sender"]["token"])
    assert_error(reply, 400, path)
    assert reply.json["Message"].startswith(path + ":"), reply.json


# ---------------------------------------------------------------- PATCH


def patch(api, who, did, body, content_type="application/merge-patch+json", **kw):
    return api.request("PATCH", f"/deliveries/{did}", body=body, token=who["token"],
                       headers={"Content-Type": content_type, **kw.pop("headers", {})}, **kw)


def history(api, who, did) -> list[dict]:
    return api.get(f"/deliveries/{did}/events", token=who["token"]).json["items"]


def test_a_patch_merges_records_what_changed_and_leaves_the_rest(api, cast):
    made = create(api, cast, description="books", **full_stops())
    reply = patch(api, cast["sender"], made["id"], {
        "description": None,
        "dropoff": {"address": {"line2": None}, "instructions": "Call first",
                    "location": {"lat": 48.2}}})
    assert reply.status == 200, reply
    after = reply.json
    assert after["description"] is None
    assert after["dropoff"]["address"]["line2"] is None
    assert after["dropoff"]["address"]["line1"] == "Marienplatz 8"
    assert after["dropoff"]["location"] == {"lat": 48.2, "lng": 11.576124}
    assert after["dropoff"]["instructions"] == "Call first"
    assert after["pickup"] == made["pickup"]
    assert after["distance_m"] != made["distance_m"]
    assert after["updated_at"] >= made["updated_at"]
    events = history(api, cast["sender"], made["id"])
    assert [e["type"] for e in events] == ["delivery.created", "delivery.updated"]
    assert events[-1]["data"]["changed"] == [
        "description", "dropoff.address.line2", "dropoff.instructions", "dropoff.location.lat"]
    # Events carry the stops without contacts.
    assert events[-1]["data"]["dropoff"]["contact"] is None
    assert events[-1]["data"]["dropoff"]["instructions"] == "Call first"


def test_a_patch_that_changes_nothing_records_no_event(api, cast):
    made = create(api, cast, **full_stops())
    same = {"dropoff": {"address": {"city": "München"}, "location": {"lat": 48.137154}}}
    reply = patch(api, cast["sender"], made["id"], same, content_type="application/json")
    assert reply.status == 200 and reply.json == made
    assert len(history(api, cast["sender"], made["id"])) == 1


def test_a_patch_can_add_and_remove_a_whole_stop(api, cast):
    made = create(api, cast)
    stops = full_stops()
    added = patch(api, cast["sender"], made["id"], {"pickup": stops["pickup"]}).json
    assert added["pickup"]["address"]["country"] == "DE" and added["dropoff"] is None
    removed = patch(api, cast["sender"], made["id"], {"pickup": None}).json
    assert removed["pickup"] is None
    changed = history(api, cast["sender"], made["id"])[-1]["data"]["changed"]
    assert "pickup.address.line1" in changed and "pickup.contact.phone" in changed


@pytest.mark.parametrize("body, path", [
    ({"pickup": {"instructions": "no address"}}, "pickup.address"),
    ({"pickup": {"address": {"line1": "Somewhere 1"}}}, "pickup.address.city"),
    ({"dropoff": {"address": {"city": None}}}, "dropoff.address.city"),
    ({"dropoff": {"address": None}}, "dropoff.address"),
    ({"dropoff": {"window": {"end": _at(2.5)}}}, "dropoff.window.end"),
    ({"dropoff": {"window": {"start": _at(40)}}}, "dropoff.window.end"),
    ({"pickup": {"window": {"start": _at(31), "end": _at(32)}}}, "dropoff.window.end"),
    ({"dropoff": {"contact": {"phone": "+99 1234567"}}}, "dropoff.contact.phone"),
    ({"external_id": "no spaces allowed"}, "external_id"),
    ({"description": 5}, "description"),
])
def test_a_patch_is_checked_as_a_whole_naming_the_path(api, cast, body, path):
    new_pickup = "pickup" in body and "window" not in body["pickup"]
    made = create(api, cast, **({"dropoff": full_stops()["dropoff"]} if new_pickup
                                else full_stops()))
    reply = patch(api, cast["sender"], made["id"], body)
    assert_error(reply, 400, path)
    assert api.get(f"/deliveries/{made['id']}", token=cast["sender"]["token"]).json == made


def test_once_picked_up_only_the_dropoffs_instructions_and_contact_change(api, cast):
    made = create(api, cast, **full_stops())
    sender, courier = cast["sender"], cast["courier"]
    assert api.put(f"/assign/{made['id']}/{courier['courier_id']}",
                   token=sender["token"]).status == 200
    assert api.post(f"/deliveries/{made['id']}/pickup", token=courier["token"]).status == 200
    ok = patch(api, sender, made["id"], {"dropoff": {"instructions": "Back door",
                                                     "contact": {"name": "Bo"}}})
    assert ok.status == 200 and ok.json["dropoff"]["contact"]["name"] == "Bo"
    refused = patch(api, sender, made["id"], {"dropoff": {"address": {"line1": "Elsewhere 2"}}})
    assert_error(refused, 409, "dropoff.address.line1")
    assert "picked_up" in refused.json["Message"]
    assert api.post(f"/deliveries/{made['id']}/deliver", {"pin": made["dropoff"]["pin"]},
                    token=courier["token"]).status == 200
    final = patch(api, sender, made["id"], {"dropoff": {"instructions": "late"}})
    assert_error(final, 409, "status")


def test_only_the_owner_sender_patches(api, cast):
    made = create(api, cast, **full_stops())
    stranger = api.new_sender()
    assert_error(patch(api, stranger, made["id"], {"description": "x"}), 404, "delivery")
    assert api.put(f"/assign/{made['id']}/{cast['courier']['courier_id']}",
                   token=cast["sender"]["token"]).status == 200
    assert_error(patch(api, cast["courier"], made["id"], {"description": "x"}), 403, "sender")
    assert_error(patch(api, cast["other"], made["id"], {"description": "x"}), 404, "delivery")


def test_a_patch_with_the_same_idempotency_key_is_replayed(api, cast):
    made = create(api, cast, **full_stops())
    body = {"dropoff": {"instructions": "Knock"}}
    first = patch(api, cast["sender"], made["id"], body, headers={"Idempotency-Key": "p-1"})
    again = patch(api, cast["sender"], made["id"], body, headers={"Idempotency-Key": "p-1"})
    assert first.status == again.status == 200 and again.json == first.json
    assert again.headers.get("idempotent-replayed") == "true"
    other = patch(api, cast["sender"], made["id"], {"description": "y"},
                  headers={"Idempotency-Key": "p-1"})
    assert other.status == 422
    assert len(history(api, cast["sender"], made["id"])) == 2


def test_external_id_taken_by_another_delivery_is_409(api, cast):
    create(api, cast, external_id="patch-taken-1")
    made = create(api, cast)
    assert_error(patch(api, cast["sender"], made["id"], {"external_id": "patch-taken-1"}),
                 409, "external_id")


# ---------------------------------------------------------------- who sees contacts


def test_contacts_are_shown_to_the_sender_and_the_active_courier_only(api, cast):
    sender, courier = cast["sender"], cast["courier"]
    made = create(api, cast, **full_stops())
    did = made["id"]
    assert api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"]).status == 200
    seen = api.get(f"/deliveries/{did}", token=courier["token"]).json
    assert seen["dropoff"]["contact"]["phone"] == "+498923300"
    listed = api.get(f"/deliveries/courier/{courier['courier_id']}?per_page=100",
                     token=courier["token"]).json["items"]
    assert [d["dropoff"]["contact"] for d in listed if d["id"] == did] == \
        [seen["dropoff"]["contact"]]
    assert api.post(f"/deliveries/{did}/pickup", token=courier["token"]).status == 200
    done = api.post(f"/deliveries/{did}/deliver", {"pin": made["dropoff"]["pin"]},
                    token=courier["token"]).json
    # Final: the courier sees no contact any more, the instructions stay.
    assert done["dropoff"]["contact"] is None and done["pickup"]["contact"] is None
    assert done["dropoff"]["instructions"] == "Leave with the porter"
    assert api.get(f"/deliveries/{did}", token=courier["token"]).json["dropoff"]["contact"] \
        is None
    assert api.get(f"/deliveries/{did}", token=sender["token"]).json["dropoff"]["contact"] \
        is not None
    # The feed and the history never carry contacts.
    for item in api.get("/events?limit=100", token=sender["token"]).json["items"]:
        for kind in ("pickup", "dropoff"):
            assert (item["data"].get(kind) or {}).get("contact") is None


def test_a_former_courier_sees_no_contact(api, cast):
    sender, courier, other = cast["sender"], cast["courier"], cast["other"]
    did = create(api, cast, **full_stops())["id"]
    assert api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"]).status == 200
    assert api.put(f"/assign/{did}/{other['courier_id']}", token=sender["token"]).status == 200
    assert api.get(f"/deliveries/{did}", token=courier["token"]).status == 404
    assert api.get(f"/deliveries/{did}", token=other["token"]).json["pickup"]["contact"] \
        is not None


# ---------------------------------------------------------------- retention


def test_contacts_and_instructions_are_erased_after_the_retention(api, cast, db):
    sender = cast["sender"]
    tricky = full_stops()  # quotes and a backslash in what the erasure must find
    tricky["pickup"]["instructions"] = 'Gate "B", \\ then "instructions":"x"'
    old = create(api, cast, **tricky)
    young = create(api, cast, **full_stops())
    active = create(api, cast, **full_stops())
    for made in (old, young):
        assert api.post(f"/deliveries/{made['id']}/cancel", token=sender["token"]).status == 200
    with db.cursor() as cur:
        cur.execute("UPDATE deliveries SET updated_at = now() - interval '31 days'"
                    " WHERE id = ANY (%s)", ([old["id"], active["id"]],))
    events_before = len(history(api, sender, old["id"]))
    while retention.sweep()["contacts"]:
        pass
    erased = api.get(f"/deliveries/{old['id']}", token=sender["token"]).json
    for kind in ("pickup", "dropoff"):
        assert erased[kind]["contact"] is None and erased[kind]["instructions"] is None
        assert erased[kind]["address"] == old[kind]["address"]
    assert erased["updated_at"] == api.get(f"/deliveries/{old['id']}",
                                           token=sender["token"]).json["updated_at"]
    events = history(api, sender, old["id"])
    assert len(events) == events_before  # no event
    text = api.get(f"/deliveries/{old['id']}/events", token=sender["token"]).content.decode()
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    for event in events:  # and the events no longer carry the instructions
        for kind in ("pickup", "dropoff"):
            assert event["data"][kind]["instructions"] is None
            assert event["data"][kind]["address"] == old[kind]["address"]
    # Not final yet, or final too recently: kept.
    for made in (young, active):
        kept = api.get(f"/deliveries/{made['id']}", token=sender["token"]).json
        assert kept["dropoff"]["contact"] == made["dropoff"]["contact"]
    with db.cursor() as cur:
        cur.execute("SELECT erase_contacts(30, 1000)")
        assert cur.fetchone()[0] == 0  # nothing more is due


def test_instructions_may_have_line_breaks_and_empty_optional_lines_read_as_null(api, cast):
    body = full_stops()
    body["dropoff"]["instructions"] = "Ring twice\nThird floor\tleft"
    body["dropoff"]["address"].update(line2="", state="")
    made = create(api, cast, **body)
    assert made["dropoff"]["instructions"] == "Ring twice\nThird floor\tleft"
    assert made["dropoff"]["address"]["line2"] is None and made["dropoff"]["address"]["state"] \
        is None
    body["dropoff"]["instructions"] = "no\x07bell"
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1, **body},
                     token=cast["sender"]["token"])
    assert_error(reply, 400, "dropoff.instructions")


def test_a_delivery_is_changed_at_most_fifty_times(api, cast, db):
    made = create(api, cast, **full_stops())
    with db.cursor() as cur:
        cur.execute("UPDATE deliveries SET edits = 49 WHERE id = %s", (made["id"],))
    assert patch(api, cast["sender"], made["id"], {"description": "the 50th"}).status == 200
    refused = patch(api, cast["sender"], made["id"], {"description": "the 51st"})
    assert_error(refused, 409, "did")
    assert "changed 50 times" in refused.json["Message"]
    # A patch that changes nothing is still answered.
    assert patch(api, cast["sender"], made["id"], {"description": "the 50th"}).status == 200
