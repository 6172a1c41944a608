"""A courier's revenue over a window [from, to): the cost of what they
delivered then, through the app in-process."""

import re
from datetime import UTC, datetime

import pytest

from tests.conftest import assert_error

MONEY = re.compile(r"\d+\.\d{2}")

# When each delivery of the module's courier was delivered, and its cost.
DELIVERED = {
    "2024-03-01T00:00:00Z": "10.00",
    "2024-03-01T12:00:00Z": "20.50",
    "2024-03-02T00:00:00Z": "30.25",
    "2024-03-05T23:59:59Z": "100.00",
}


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def move_delivery(db, delivery_id: int, when: str) -> None:
    with db.cursor() as cur:
        # Assigned and picked up then too: today's slots stay free.
        cur.execute("UPDATE deliveries SET delivered_at = %s, picked_up_at = %s, assigned_at = %s"
                    " WHERE id = %s", (when, when, when, delivery_id))
        assert cur.rowcount == 1


def assign(api, sender, courier, cost: str) -> dict:
    delivery = api.new_delivery(sender["token"], cost=cost)
    reply = api.put(f"/assign/{delivery['id']}/{courier['courier_id']}", token=sender["token"])
    assert reply.status == 200, reply
    return delivery


def deliver(api, sender, courier, cost: str) -> dict:
    delivery = assign(api, sender, courier, cost)
    for action in ("pickup", "deliver"):
        reply = api.post(f"/deliveries/{delivery['id']}/{action}", token=courier["token"])
        assert reply.status == 200, reply
    return delivery


@pytest.fixture(scope="module")
def earner(api, database_url):
    """A courier with the deliveries of DELIVERED, a rival's delivery in the same days, and
    deliveries of the courier that were not delivered."""
    import psycopg2

    sender = api.new_sender()
    courier = api.new_courier()
    rival = api.new_courier()
    db = psycopg2.connect(database_url)
    db.autocommit = True
    try:
        for when, cost in DELIVERED.items():
            move_delivery(db, deliver(api, sender, courier, cost)["id"], when)
        move_delivery(db, deliver(api, sender, rival, "999.99")["id"], "2024-03-01T06:00:00Z")
        # In the window but not delivered: no revenue for anyone.
        api.new_delivery(sender["token"], cost="555.55")
        assign(api, sender, courier, "444.44")
        failed = assign(api, sender, courier, "333.33")
        api.post(f"/deliveries/{failed['id']}/pickup", token=courier["token"])
        assert api.post(f"/deliveries/{failed['id']}/fail", {"reason": "refused"},
                        token=courier["token"]).status == 200
        cancelled = assign(api, sender, courier, "222.22")
        assert api.post(f"/deliveries/{cancelled['id']}/cancel",
                        token=sender["token"]).status == 200
    finally:
        db.close()
    return {**courier, "sender": sender, "rival": rival}


def revenue(api, courier, start, end):
    return api.get(f"/revenue/{start}/{end}", token=courier["token"])


@pytest.mark.parametrize("start, end, count, total", [
    # [from, to): a delivery at `from` counts, one at `to` does not.
    ("2024-03-01", "2024-03-02", 2, "30.50"),
    ("2024-03-01", "2024-03-03", 3, "60.75"),
    ("2024-03-01T00:00:01Z", "2024-03-02T00:00:00Z", 1, "20.50"),
    ("2024-03-01T12:00:00Z", "2024-03-02T00:00:01Z", 2, "50.75"),
    ("2024-03-05T23:59:59Z", "2024-03-06", 1, "100.00"),
    ("2024-03-05T23:59:58Z", "2024-03-05T23:59:59Z", 0, "0.00"),
    ("2024-01-01", "2025-01-01", 4, "160.75"),
    # Fractions of a second are honoured.
    ("2024-03-01T12:00:00.000001Z", "2024-03-03", 1, "30.25"),
    ("2024-02-29T23:59:59.999999Z", "2024-03-01T00:00:00.000001Z", 1, "10.00"),
    # Unix seconds, alone or mixed with ISO forms.
    (unix("2024-03-01T00:00:00Z"), unix("2024-03-02T00:00:00Z"), 2, "30.50"),
    (unix("2024-03-01T12:00:00Z"), "2024-03-02T00:00:01Z", 2, "50.75"),
    ("2024-03-01", unix("2024-03-01T12:00:00Z"), 1, "10.00"),
    # Date-times with offsets are converted to UTC.
    ("2024-03-01T02:00:00+02:00", "2024-03-01T19:00:00-05:00", 2, "30.50"),
    ("2024-03-01T02:00:00%2B02:00", "2024-03-01T19:00:00-05:00", 2, "30.50"),
    ("2024-03-01T02:00:01+02:00", "2024-03-01T19:00:00-05:00", 1, "20.50"),
    ("2024-02-29T23:30:00-00:30", "2024-03-01T06:30:00+05:30", 1, "10.00"),
    # An empty window, and one before anything was assigned.
    ("2024-03-01", "2024-03-01", 0, "0.00"),
    (0, unix("2024-01-01T00:00:00Z"), 0, "0.00"),
], ids=str)
def test_revenue_sums_cost_delivered_in_from_inclusive_to_exclusive(api, earner, start, end,
                                                                  count, total):
    reply = revenue(api, earner, start, end)
    assert reply.status == 200, reply
    assert reply.json["courier_id"] == earner["courier_id"]
    assert reply.json["deliveries"] == count
    assert reply.json["revenue"] == total
    assert MONEY.fullmatch(reply.json["revenue"])


def test_revenue_echoes_the_window_in_utc(api, earner):
    reply = revenue(api, earner, "2024-03-01T02:00:00+02:00", unix("2024-03-02T00:00:00Z"))
    assert reply.json == {"courier_id": earner["courier_id"], "from": "2024-03-01T00:00:00Z",
                          "to": "2024-03-02T00:00:00Z", "deliveries": 2, "revenue": "30.50"}


def test_revenue_counts_only_the_callers_deliveries(api, earner):
    reply = revenue(api, earner["rival"], "2024-03-01", "2024-03-02")
    assert reply.json["courier_id"] == earner["rival"]["courier_id"]
    assert (reply.json["deliveries"], reply.json["revenue"]) == (1, "999.99")


def test_revenue_of_a_new_courier_is_zero_with_two_decimals(api, earner):
    reply = revenue(api, earner["rival"], "2020-01-01", "2021-01-01")
    assert (reply.json["deliveries"], reply.json["revenue"]) == (0, "0.00")


def test_revenue_counts_a_delivery_made_just_now_and_not_an_assignment(api, earner):
    sender, rival = earner["sender"], earner["rival"]
    assign(api, sender, rival, "7.00")
    reply = revenue(api, rival, "2024-01-01", "2100-01-01")
    assert (reply.json["deliveries"], reply.json["revenue"]) == (1, "999.99")
    deliver(api, sender, rival, "0.01")
    reply = revenue(api, rival, "2024-01-01", "2100-01-01")
    assert (reply.json["deliveries"], reply.json["revenue"]) == (2, "1000.00")


@pytest.mark.parametrize("start, end", [
    ("2024-03-02", "2024-03-01"),
    ("2024-03-01T00:00:01Z", "2024-03-01"),
    (unix("2024-03-01T00:00:00Z") + 1, unix("2024-03-01T00:00:00Z")),
    ("2024-03-01T00:00:00-00:01", "2024-03-01T00:00:00Z"),
], ids=str)
def test_from_after_to_is_400(api, earner, start, end):
    assert_error(revenue(api, earner, start, end), 400, "from")


@pytest.mark.parametrize("start, end, field", [
    ("2024-03-01T00:00:00", "2024-03-02", "from"),  # no offset: which day is it?
    ("2024-03-01", "2024-03-02T00:00:00", "to"),
    ("2024-02-30", "2024-03-02", "from"),
    ("2024-03-01", "2024-13-01", "to"),
    ("yesterday", "2024-03-02", "from"),
    ("2024-03-01", "now", "to"),
    ("-1", "2024-03-02", "from"),
    ("1.5", "2024-03-02", "from"),
    ("2024-03-01", "1e9", "to"),
    ("2024-03-01", "99999999999999999999", "to"),
    ("2024-03-01T25:00:00Z", "2024-03-02", "from"),
    ("2024-03-01T00:00:00+25:00", "2024-03-02", "from"),
], ids=str)
def test_malformed_window_is_400_naming_the_bound(api, earner, start, end, field):
    assert_error(revenue(api, earner, start, end), 400, field)


def test_sender_has_no_revenue(api, earner):
    reply = api.get("/revenue/2024-03-01/2024-03-02", token=earner["sender"]["token"])
    assert reply.status == 403, reply


def test_revenue_without_token_is_401(api):
    assert_error(api.get("/revenue/2024-03-01/2024-03-02"), 401, "Authorization")


def test_revenue_window_may_reach_far_into_the_past_and_future(api, earner):
    now = int(datetime.now(UTC).timestamp())
    reply = revenue(api, earner, "0001-01-01", "9999-12-31T23:59:59Z")
    assert reply.status == 200, reply
    assert reply.json["deliveries"] >= 4
    assert revenue(api, earner, 0, now + 10**9).status == 200
