"""The delivery lifecycle in-process: who may do what from which status, the
answers (403, 404, 409 naming the status), repeats, history, the event feed,
external_id, and list cursors and filters."""

import pytest

from tests.conftest import assert_error

STATUS_KEYS = ("status", "courier_id", "assigned_at", "picked_up_at", "delivered_at")


def _cast(api) -> dict:
    return {"sender": api.new_sender(), "courier": api.new_courier(),
            "other_courier": api.new_courier(), "other_sender": api.new_sender()}


@pytest.fixture(scope="module")
def cast(api):
    """A sender, two couriers and a stranger of each role, shared by the tests
    that look only at deliveries they make (each login costs a scrypt)."""
    return _cast(api)


@pytest.fixture
def fresh_cast(api):
    """The same, new for a test that counts everything its users have."""
    return _cast(api)


def act(api, who: dict, did: int, action: str, body=None):
    return api.post(f"/deliveries/{did}/{action}", body, token=who["token"])


def assigned(api, cast, courier_key: str = "courier", **extra) -> dict:
    delivery = api.new_delivery(cast["sender"]["token"], **extra)
    reply = api.put(f"/assign/{delivery['id']}/{cast[courier_key]['courier_id']}",
                    token=cast["sender"]["token"])
    assert reply.status == 200, reply
    return reply.json


def history(api, who: dict, did: int) -> list[dict]:
    reply = api.get(f"/deliveries/{did}/events", token=who["token"])
    assert reply.status == 200, reply
    return reply.json["items"]


def test_pickup_and_deliver_record_times_and_history(api, cast, db):
    delivery = assigned(api, cast, description="books")
    picked = act(api, cast["courier"], delivery["id"], "pickup")
    assert picked.status == 200 and picked.json["status"] == "picked_up"
    assert picked.json["picked_up_at"] and picked.json["delivered_at"] is None
    done = act(api, cast["courier"], delivery["id"], "deliver",
               {"recipient_name": "Ann Lee", "note": "left at the door"})
    assert done.status == 200, done
    assert done.json["status"] == "delivered" and done.json["delivered_at"]
    assert done.json["updated_at"] >= picked.json["updated_at"]
    events = history(api, cast["sender"], delivery["id"])
    assert [e["type"] for e in events] == ["delivery.created", "delivery.assigned",
                                           "delivery.picked_up", "delivery.delivered"]
    assert [e["actor"]["role"] for e in events] == ["sender", "sender", "courier", "courier"]
    assert events[2]["actor"]["id"] == cast["courier"]["courier_id"]
    assert events[-1]["data"] == {**done.json, "recipient_name": "Ann Lee",
                                  "note": "left at the door", "pin_verified": False}
    assert [e["status"] for e in events] == ["created", "assigned", "picked_up", "delivered"]
    assert events == sorted(events, key=lambda e: e["id"])
    # The courier sees the same history.
    assert history(api, cast["courier"], delivery["id"]) == events


def test_fail_needs_a_known_reason_and_is_final(api, cast):
    delivery = assigned(api, cast)
    did = delivery["id"]
    assert act(api, cast["courier"], did, "pickup").status == 200
    assert_error(act(api, cast["courier"], did, "fail"), 400, "reason")
    assert_error(act(api, cast["courier"], did, "fail", {"reason": "lazy"}), 400, "reason")
    assert_error(act(api, cast["courier"], did, "fail", {"reason": "refused", "note": "x" * 501}),
                 400, "note")
    failed = act(api, cast["courier"], did, "fail", {"reason": "refused", "note": "no"})
    assert failed.status == 200 and failed.json["status"] == "failed"
    assert failed.json["delivered_at"] is None
    for action, body in (("deliver", None), ("pickup", None), ("unassign", None)):
        reply = act(api, cast["courier"], did, action, body)
        assert_error(reply, 409, "status")
        assert reply.json["Message"] == f"status: delivery {did} is failed"
    assert_error(act(api, cast["sender"], did, "cancel"), 409, "status")
    assert history(api, cast["sender"], did)[-1]["data"]["reason"] == "refused"


@pytest.mark.parametrize("start", ["created", "assigned"])
def test_sender_cancels_before_pickup(api, cast, start):
    if start == "created":
        delivery = api.new_delivery(cast["sender"]["token"])
    else:
        delivery = assigned(api, cast)
    reply = act(api, cast["sender"], delivery["id"], "cancel", {"reason": "order withdrawn"})
    assert reply.status == 200 and reply.json["status"] == "cancelled"
    last = history(api, cast["sender"], delivery["id"])[-1]
    assert (last["type"], last["data"]["reason"]) == ("delivery.cancelled", "order withdrawn")
    assert last["courier_id"] == (None if start == "created" else cast["courier"]["courier_id"])


def test_cancel_after_pickup_is_409_and_courier_cannot_cancel(api, cast):
    delivery = assigned(api, cast)
    assert_error(act(api, cast["courier"], delivery["id"], "cancel"), 403, "sender")
    assert act(api, cast["courier"], delivery["id"], "pickup").status == 200
    reply = act(api, cast["sender"], delivery["id"], "cancel")
    assert_error(reply, 409, "status")
    assert "picked_up" in reply.json["Message"]


def test_courier_actions_are_403_for_the_sender_and_404_for_strangers(api, cast):
    did = assigned(api, cast)["id"]
    for action in ("pickup", "deliver", "fail"):
        assert_error(act(api, cast["sender"], did, action, {"reason": "other"}), 403, "courier")
        for stranger in ("other_courier", "other_sender"):
            assert_error(act(api, cast[stranger], did, action, {"reason": "other"}), 404,
                         "delivery")
    assert_error(act(api, cast["other_sender"], did, "cancel"), 404, "delivery")
    assert_error(act(api, cast["other_courier"], did, "unassign"), 404, "delivery")
    assert_error(api.get(f"/deliveries/{did}/events", token=cast["other_courier"]["token"]),
                 404, "delivery")
    # Nothing changed.
    assert [e["type"] for e in history(api, cast["sender"], did)] == [
        "delivery.created", "delivery.assigned"]


def test_repeating_an_action_changes_nothing_and_records_nothing(api, cast):
    did = assigned(api, cast)["id"]
    first = act(api, cast["courier"], did, "pickup")
    again = act(api, cast["courier"], did, "pickup")
    assert again.status == 200 and again.json == first.json
    done = act(api, cast["courier"], did, "deliver")
    assert act(api, cast["courier"], did, "deliver").json == done.json
    assert [e["type"] for e in history(api, cast["sender"], did)].count("delivery.picked_up") == 1
    other = api.new_delivery(cast["sender"]["token"])
    cancelled = act(api, cast["sender"], other["id"], "cancel")
    assert act(api, cast["sender"], other["id"], "cancel").json == cancelled.json
    assert len(history(api, cast["sender"], other["id"])) == 2


def test_courier_declines_and_the_slot_is_freed(api, fresh_cast):
    courier = fresh_cast["courier"]
    did = assigned(api, fresh_cast)["id"]
    before = api.get("/couriers?per_page=100", token=fresh_cast["sender"]["token"]).json["items"]
    today = next(c for c in before if c["id"] == courier["courier_id"])["assigned_today"]
    reply = act(api, courier, did, "unassign")
    assert reply.status == 200
    assert {k: reply.json[k] for k in STATUS_KEYS} == {
        "status": "created", "courier_id": None, "assigned_at": None, "picked_up_at": None,
        "delivered_at": None}
    after = api.get("/couriers?per_page=100", token=fresh_cast["sender"]["token"]).json["items"]
    assert next(c for c in after if c["id"] == courier["courier_id"])["assigned_today"] == \
        today - 1
    # It left the courier's list and view; the feed tells them they lost it.
    mine = api.get(f"/deliveries/courier/{courier['courier_id']}", token=courier["token"])
    assert did not in [d["id"] for d in mine.json["items"]]
    assert api.get(f"/deliveries/{did}", token=courier["token"]).status == 404
    feed = api.get("/events?type=delivery.unassigned", token=courier["token"]).json["items"]
    assert [(e["delivery_id"], e["courier_id"], e["actor"]["role"]) for e in feed] == [
        (did, courier["courier_id"], "courier")]
    # Unassigning what is not assigned.
    assert_error(act(api, fresh_cast["sender"], did, "unassign"), 409, "status")


def test_reassignment_before_pickup_tells_the_old_courier(api, fresh_cast):
    did = assigned(api, fresh_cast)["id"]
    moved = api.put(f"/assign/{did}/{fresh_cast['other_courier']['courier_id']}",
                    token=fresh_cast["sender"]["token"])
    assert moved.status == 200
    assert moved.json["courier_id"] == fresh_cast["other_courier"]["courier_id"]
    types = [(e["type"], e["courier_id"]) for e in history(api, fresh_cast["sender"], did)]
    assert types == [("delivery.created", None),
                     ("delivery.assigned", fresh_cast["courier"]["courier_id"]),
                     ("delivery.unassigned", fresh_cast["courier"]["courier_id"]),
                     ("delivery.assigned", fresh_cast["other_courier"]["courier_id"])]
    lost = api.get("/events", token=fresh_cast["courier"]["token"]).json["items"][-1]
    assert lost["type"] == "delivery.unassigned" and lost["data"]["courier_id"] is None
    assert act(api, fresh_cast["other_courier"], did, "pickup").status == 200
    reply = api.put(f"/assign/{did}/{fresh_cast['courier']['courier_id']}",
                    token=fresh_cast["sender"]["token"])
    assert_error(reply, 409, "status")
    # The same courier again is still a no-op.
    same = api.put(f"/assign/{did}/{fresh_cast['other_courier']['courier_id']}",
                   token=fresh_cast["sender"]["token"])
    assert same.status == 200 and same.json["status"] == "picked_up"


def test_daily_limit_counts_assigned_and_not_cancelled(api, fresh_cast):
    held = [assigned(api, fresh_cast)["id"] for _ in range(5)]
    extra = api.new_delivery(fresh_cast["sender"]["token"])
    path = f"/assign/{extra['id']}/{fresh_cast['courier']['courier_id']}"
    assert_error(api.put(path, token=fresh_cast["sender"]["token"]), 409, "cid")
    assert act(api, fresh_cast["courier"], held[0], "pickup").status == 200
    assert act(api, fresh_cast["courier"], held[0], "deliver").status == 200
    # A delivered delivery keeps its slot.
    assert_error(api.put(path, token=fresh_cast["sender"]["token"]), 409, "cid")
    assert act(api, fresh_cast["sender"], held[1], "cancel").status == 200
    assert api.put(path, token=fresh_cast["sender"]["token"]).status == 200


def test_external_id_is_unique_per_sender(api, cast):
    token = cast["sender"]["token"]
    first = api.new_delivery(token, external_id="order-17:a~b.c_d")
    assert first["external_id"] == "order-17:a~b.c_d"
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1,
                                     "external_id": "order-17:a~b.c_d"}, token=token)
    assert_error(reply, 409, "external_id")
    assert str(first["id"]) in reply.json["Message"]
    other = api.new_delivery(cast["other_sender"]["token"], external_id="order-17:a~b.c_d")
    assert other["external_id"] == first["external_id"]
    for bad in ("", "x" * 65, "has space", "é", 17):
        reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1, "external_id": bad},
                         token=token)
        assert_error(reply, 400, "external_id")


# ---------------------------------------------------------------- feed


def test_feed_shows_each_party_its_own_events_in_order(api, fresh_cast):
    sender, courier = fresh_cast["sender"], fresh_cast["courier"]
    did = assigned(api, fresh_cast)["id"]
    act(api, courier, did, "pickup")
    feed = api.get("/events", token=sender["token"]).json
    assert [e["type"] for e in feed["items"]] == ["delivery.created", "delivery.assigned",
                                                  "delivery.picked_up"]
    assert feed["next_after"] == feed["items"][-1]["id"]
    theirs = api.get("/events", token=courier["token"]).json["items"]
    assert [e["type"] for e in theirs] == ["delivery.assigned", "delivery.picked_up"]
    assert api.get("/events", token=fresh_cast["other_sender"]["token"]).json["items"] == []
    # Nothing new: the same cursor back.
    again = api.get(f"/events?after={feed['next_after']}", token=sender["token"]).json
    assert again == {"items": [], "next_after": feed["next_after"]}
    # Limit and type.
    one = api.get("/events?limit=1", token=sender["token"]).json
    assert len(one["items"]) == 1 and one["next_after"] == feed["items"][0]["id"]
    picked = api.get("/events?type=delivery.picked_up,delivery.failed",
                     token=sender["token"]).json["items"]
    assert [e["type"] for e in picked] == ["delivery.picked_up"]


@pytest.mark.parametrize("query, field", [
    ("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=101", "limit"),
    ("type=delivery.lost", "type"), ("type=", "type"),
])
def test_feed_refuses_malformed_parameters_naming_them(api, cast, query, field):
    assert_error(api.get(f"/events?{query}", token=cast["sender"]["token"]), 400, field)


# ---------------------------------------------------------------- lists


def _walk(api, path: str, token: str, per_page: int) -> list[int]:
    seen, reply = [], api.get(f"{path}?per_page={per_page}", token=token)
    while True:
        assert reply.status == 200, reply
        seen += [item["id"] for item in reply.json["items"]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            return seen
        reply = api.get(f"{path}?per_page={per_page}&after={cursor}", token=token)
        assert reply.json["page"] is None and reply.json["next_page"] is None


def test_cursor_pages_list_every_delivery_once_newest_first(api, fresh_cast):
    token = fresh_cast["sender"]["token"]
    made = [api.new_delivery(token)["id"] for _ in range(7)]
    path = f"/deliveries/sender/{fresh_cast['sender']['sender_id']}"
    assert _walk(api, path, token, 3) == made[::-1]
    assert _walk(api, path, token, 100) == made[::-1]
    # Page mode gives the same order, and a cursor to switch to.
    paged = api.get(f"{path}?per_page=3&page=0", token=token).json
    assert [d["id"] for d in paged["items"]] == made[::-1][:3] and paged["next_cursor"]


def test_a_forged_or_foreign_cursor_is_400(api, cast):
    token = cast["sender"]["token"]
    for _ in range(3):
        api.new_delivery(token)
    path = f"/deliveries/sender/{cast['sender']['sender_id']}"
    cursor = api.get(f"{path}?per_page=1", token=token).json["next_cursor"]
    assert api.get(f"{path}?per_page=1&after={cursor}", token=token).status == 200
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for bad in (flipped, cursor[:-1], "x" * 43, cursor + "A"):
        assert_error(api.get(f"{path}?after={bad}", token=token), 400, "after")
    assert_error(api.get(f"{path}?after={cursor}&page=0", token=token), 400, "after")
    # The same user in another session may use it; another list may not.
    other = api.login(cast["sender"]["username"], cast["sender"]["password"])
    assert api.get(f"{path}?after={cursor}", token=other).status == 200
    courier_list = f"/deliveries/courier/{cast['courier']['courier_id']}"
    assert_error(api.get(f"{courier_list}?after={cursor}", token=token), 400, "after")
    assert_error(api.get(f"/couriers?after={cursor}", token=token), 400, "after")


def test_couriers_walk_by_cursor(api, cast):
    token = cast["sender"]["token"]
    first_page = [c["id"] for c in api.get("/couriers?per_page=100", token=token).json["items"]]
    walked = _walk(api, "/couriers", token, 2)
    assert walked[:len(first_page)] == first_page
    assert len(walked) == len(set(walked)) and walked == sorted(walked, reverse=True)
    assert cast["other_courier"]["courier_id"] in walked


def test_delivery_lists_filter_by_status_time_and_courier(api, fresh_cast, db):
    sender, courier = fresh_cast["sender"], fresh_cast["courier"]
    token = sender["token"]
    fresh = api.new_delivery(token)["id"]
    mine = assigned(api, fresh_cast)["id"]
    theirs = assigned(api, fresh_cast, courier_key="other_courier")["id"]
    done = assigned(api, fresh_cast)["id"]
    act(api, courier, done, "pickup")
    act(api, courier, done, "deliver")
    with db.cursor() as cur:
        cur.execute("UPDATE deliveries SET created_at = '2020-06-01T12:00:00Z' WHERE id = %s",
                    (fresh,))
    path = f"/deliveries/sender/{sender['sender_id']}"

    def listed(query: str, who: str = token, base: str = path) -> list[int]:
        reply = api.get(f"{base}?per_page=100&{query}", token=who)
        assert reply.status == 200, reply
        return [d["id"] for d in reply.json["items"]]

    assert listed("status=assigned") == [theirs, mine]
    assert listed("status=delivered,created") == [done, fresh]
    assert listed(f"courier_id={courier['courier_id']}") == [done, mine]
    assert listed(f"courier_id={courier['courier_id']}&status=delivered") == [done]
    assert listed("created_from=2020-01-01&created_to=2021-01-01") == [fresh]
    assert listed("created_to=20200601") == []
    assert listed("created_from=2020-06-01T12:00:00Z&created_to=2020-06-01T12:00:01Z") == [fresh]
    base = f"/deliveries/courier/{courier['courier_id']}"
    assert listed("status=picked_up,delivered", courier["token"], base) == [done]
    assert listed("status=delivered", token, base) == [done]


@pytest.mark.parametrize("query, field", [
    ("status=lost", "status"), ("status=", "status"), ("status=created,,assigned", "status"),
    ("created_from=yesterday", "created_from"), ("created_to=2024-13-01", "created_to"),
    ("created_from=2024-02-01&created_to=2024-01-01", "created_from"),
    ("courier_id=0", "courier_id"), ("courier_id=x", "courier_id"),
])
def test_malformed_filters_are_400_naming_the_parameter(api, cast, query, field):
    path = f"/deliveries/sender/{cast['sender']['sender_id']}?{query}"
    assert_error(api.get(path, token=cast["sender"]["token"]), 400, field)
