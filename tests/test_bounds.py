"""Bounds: a delivery's history is paged and has an end (a delivery is assigned
at most max_assignments() times), and every answer of the API stays below the
size docs/robustness.md states, filled with the largest values the contract
allows (far below Lambda's 6 MB response limit)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import assert_error

# docs/robustness.md, "Answer sizes": the largest answer of each kind.
MAX_ANSWER_BYTES = 2_500_000
MAX_PAGE = 100
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
MAX_ASSIGNMENTS = 20
SOON = datetime.now(UTC).replace(microsecond=123456) + timedelta(days=1)
HOUR = timedelta(hours=1)


def _churn(api, sender: dict, courier: dict, did: int, times: int) -> None:
    for _ in range(times):
        assert api.put(f"/assign/{did}/{courier['courier_id']}",
                       token=sender["token"]).status == 200
        assert api.post(f"/deliveries/{did}/unassign", token=courier["token"]).status == 200


def test_a_delivery_is_assigned_at_most_twenty_times(api, db):
    sender, courier, other = api.new_sender(), api.new_courier(), api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    _churn(api, sender, courier, did, MAX_ASSIGNMENTS - 1)
    # A reassignment counts too.
    assert api.put(f"/assign/{did}/{other['courier_id']}", token=sender["token"]).status == 200
    refused = api.put(f"/assign/{did}/{courier['courier_id']}", token=sender["token"])
    assert_error(refused, 409, "did")
    assert f"assigned {MAX_ASSIGNMENTS} times" in refused.json["Message"]
    # Assigning it to the courier it has is still the no-op it was.
    assert api.put(f"/assign/{did}/{other['courier_id']}", token=sender["token"]).status == 200
    with db.cursor() as cur:
        cur.execute("SELECT assignments, courier_id FROM deliveries WHERE id = %s", (did,))
        assert cur.fetchone() == (MAX_ASSIGNMENTS, other["courier_id"])
        cur.execute("SELECT count(*) FROM delivery_events WHERE delivery_id = %s", (did,))
        assert cur.fetchone()[0] == 1 + 2 * (MAX_ASSIGNMENTS - 1) + 1


def test_the_history_pages_like_the_feed(api):
    sender, courier = api.new_sender(), api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    _churn(api, sender, courier, did, 10)
    whole = api.get(f"/deliveries/{did}/events", token=sender["token"]).json
    assert len(whole["items"]) == 21 and whole["next_after"] == whole["items"][-1]["id"]
    ids = [e["id"] for e in whole["items"]]
    assert ids == sorted(ids)
    seen, after = [], 0
    while True:
        page = api.get(f"/deliveries/{did}/events?after={after}&limit=4",
                       token=sender["token"]).json
        assert len(page["items"]) <= 4
        if not page["items"]:
            assert page["next_after"] == after
            break
        seen += page["items"]
        after = page["next_after"]
        assert after == page["items"][-1]["id"]
    assert seen == whole["items"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "after=-1", "after=1.5"])
def test_history_paging_parameters_are_checked(api, sender_token, query):
    field = query.split("=")[0]
    assert_error(api.get(f"/deliveries/1/events?{query}", token=sender_token), 400, field)


def test_the_largest_answers_stay_below_the_documented_bound(api):
    """Descriptions of 1,000 characters that JSON escapes to six bytes each,
    both stops with every text at its longest in four-byte characters, the
    longest external_id, reason, note and recipient name, at the largest page
    of every list."""
    sender, courier = api.new_sender(), api.new_courier()
    worst = "\x01" * 1000
    wide = "\U0001d11e"  # four bytes of UTF-8, which JSON carries unescaped

    def stop(kind: str) -> dict:
        return {"address": {"line1": wide * 200, "line2": wide * 200, "city": wide * 100,
                            "state": wide * 100, "postal_code": "9" * 20, "country": "DE"},
                "location": {"lat": -89.123456, "lng": -179.123456},
                "contact": {"name": wide * 128, "phone": "+4930901820"},
                "instructions": wide * 500,
                "window": {"start": SOON.isoformat(), "end": (SOON + HOUR).isoformat()}} \
            if kind == "pickup" else {**stop("pickup"), "requires_pin": True}

    made, pins = [], {}
    for n in range(100):
        new = api.new_delivery(sender["token"], cost="999999.99", description=worst,
                               external_id=f"{n:03d}".ljust(64, "~"),
                               pickup=stop("pickup"), dropoff=stop("dropoff"))
        made.append(new["id"])
        pins[new["id"]] = new["dropoff"]["pin"]
    for did in made[:2]:
        assert api.put(f"/assign/{did}/{courier['courier_id']}",
                       token=sender["token"]).status == 200
        assert api.post(f"/deliveries/{did}/pickup", token=courier["token"]).status == 200
        assert api.post(f"/deliveries/{did}/deliver",
                        {"recipient_name": "\x01" * 128, "note": "\x01" * 500,
                         "pin": pins[did]},
                        token=courier["token"]).status == 200
    for did in made[2:]:
        assert api.post(f"/deliveries/{did}/cancel", {"reason": "\x01" * 200},
                        token=sender["token"]).status == 200
    answers = {
        "sender list": api.get(f"/deliveries/sender/{sender['sender_id']}?per_page=100",
                               token=sender["token"]),
        "feed": api.get("/events?limit=100", token=sender["token"]),
        "feed, later page": api.get("/events?limit=100&after=0&type=delivery.cancelled",
                                    token=sender["token"]),
        "history": api.get(f"/deliveries/{made[0]}/events", token=sender["token"]),
        "one delivery": api.get(f"/deliveries/{made[0]}", token=sender["token"]),
    }
    sizes = {kind: len(reply.content) for kind, reply in answers.items()}
    assert all(reply.status == 200 for reply in answers.values()), answers
    assert len(answers["sender list"].json["items"]) == 100
    assert len(answers["feed"].json["items"]) == 100
    # Filled as said: the description arrived escaped, six bytes a character.
    assert answers["one delivery"].content.count(b"\\u0001") == 1000
    assert max(sizes.values()) <= MAX_ANSWER_BYTES < LAMBDA_RESPONSE_LIMIT, sizes
    # The largest event (a delivery.delivered with every field at its
    # longest) a hundred times over: the largest feed page there can be.
    largest_event = max(len(json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode())
                        for e in answers["history"].json["items"])
    largest_delivery = len(answers["one delivery"].content)
    assert MAX_PAGE * largest_event + 100 <= MAX_ANSWER_BYTES, largest_event
    assert MAX_PAGE * largest_delivery + 200 <= MAX_ANSWER_BYTES, largest_delivery
    # The bound is not loose by orders of magnitude.
    assert MAX_PAGE * largest_event > MAX_ANSWER_BYTES * 0.7, largest_event
    print("\nlargest answers (bytes):", json.dumps(
        {**sizes, "largest event": largest_event, "largest delivery": largest_delivery}))
