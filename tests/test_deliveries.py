"""Creating, reading and listing deliveries, through the app in-process."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import assert_error

DELIVERY_KEYS = {"id", "sender_id", "courier_id", "size", "cost", "description",
                 "external_id", "status", "created_at", "assigned_at", "picked_up_at",
                 "delivered_at", "updated_at", "pickup", "dropoff", "distance_m", "tracking_url",
                 "courier_location", "eta"}
RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
MONEY = re.compile(r"\d+\.\d{2}")


def create_raw(api, token: str, raw: str, path: str = "/deliveries"):
    return api.post(path, raw=raw.encode(), token=token)


def delivery_count(db, sender_id: int) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE sender_id = %s", (sender_id,))
        return cur.fetchone()[0]


def ids(reply) -> list[int]:
    assert reply.status == 200, reply
    return [item["id"] for item in reply.json["items"]]


@pytest.fixture(scope="module")
def owner(api):
    return api.new_sender()


@pytest.fixture(scope="module")
def other_sender(api):
    return api.new_sender()


@pytest.fixture(scope="module")
def courier(api):
    return api.new_courier()


@pytest.fixture(scope="module")
def other_courier(api):
    return api.new_courier()


# ---------------------------------------------------------------- create


def test_sender_creates_delivery_with_201(api, owner):
    before = datetime.now(UTC).replace(microsecond=0)
    reply = api.post("/deliveries", {"size": "22x33x44", "cost": "23.45",
                                     "description": "books"}, token=owner["token"])
    assert reply.status == 201, reply
    body = reply.json
    assert set(body) == DELIVERY_KEYS
    assert isinstance(body["id"], int) and body["id"] > 0
    assert body["sender_id"] == owner["sender_id"]
    assert body["courier_id"] is None and body["assigned_at"] is None
    assert (body["size"], body["cost"], body["description"]) == ("22x33x44", "23.45", "books")
    assert RFC3339_Z.fullmatch(body["created_at"])
    created = datetime.strptime(body["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before - timedelta(seconds=5) <= created <= datetime.now(UTC) + timedelta(seconds=5)
    assert api.get(f"/deliveries/{body['id']}", token=owner["token"]).json == body


def test_add_delivery_is_the_same_operation_answering_200(api, owner):
    reply = api.post("/add_delivery", {"size": "1x2x3", "cost": 5}, token=owner["token"])
    assert reply.status == 200, reply
    assert set(reply.json) == DELIVERY_KEYS
    assert reply.json["sender_id"] == owner["sender_id"] and reply.json["cost"] == "5.00"
    assert api.get(f"/deliveries/{reply.json['id']}", token=owner["token"]).status == 200


def test_json_with_a_charset_is_accepted(api, owner):
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1}, token=owner["token"],
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 201, reply


@pytest.mark.parametrize("path", ["/deliveries", "/add_delivery"])
def test_courier_cannot_create_delivery(api, courier, path):
    reply = api.post(path, {"size": "1x1x1", "cost": 1}, token=courier["token"])
    assert reply.status == 403, reply


@pytest.mark.parametrize("path", ["/deliveries", "/add_delivery"])
def test_create_without_token_is_401(api, path):
    assert_error(api.post(path, {"size": "1x1x1", "cost": 1}), 401, "Authorization")


@pytest.mark.parametrize("size", ["1x1x1", "1000x1000x1000", "22x33x44", "7x1000x3"])
def test_size_in_whole_centimetres_1_to_1000_is_accepted(api, owner, size):
    reply = api.post("/deliveries", {"size": size, "cost": 1}, token=owner["token"])
    assert reply.status == 201, reply
    assert reply.json["size"] == size


@pytest.mark.parametrize("size", [
    "0x1x1", "1x0x1", "1x1x0", "1001x1x1", "1x1x1001", "1x1", "1x1x1x1", "axbxc", "1.5x2x3",
    "-1x2x3", " 1x2x3", "1x2x3 ", "1 x 2 x 3", "1*2*3", "", 123, ["1", "2", "3"],
    {"l": 1}, True, None,
], ids=repr)
def test_bad_size_is_400(api, owner, size):
    body = {"cost": 1} if size is None else {"size": size, "cost": 1}
    assert_error(api.post("/deliveries", body, token=owner["token"]), 400, "size")


@pytest.mark.parametrize("raw, expected", [
    ("23.45", "23.45"),
    ('"23.45"', "23.45"),
    ("23", "23.00"),
    ('"23"', "23.00"),
    ("23.4", "23.40"),
    ('"23.4"', "23.40"),
    ("23.450", "23.45"),
    ("0.01", "0.01"),
    ('"0.01"', "0.01"),
    ("1e2", "100.00"),
    ("1000000", "1000000.00"),
    ('"1000000.00"', "1000000.00"),
    ("999999.99", "999999.99"),
], ids=lambda v: v)
def test_cost_as_number_or_string_answers_two_decimals(api, owner, raw, expected):
    reply = create_raw(api, owner["token"], f'{{"size": "1x1x1", "cost": {raw}}}')
    assert reply.status == 201, reply
    assert reply.json["cost"] == expected
    assert MONEY.fullmatch(reply.json["cost"])


@pytest.mark.parametrize("raw", [
    "23.456", '"23.456"', "0.001", "0.005", "0", '"0"', "0.00", "-1", '"-1"', "-0.01",
    "1000000.01", '"1000000.01"', "1e7", "1e999", "-1e999", "1e-999",
    "true", "false", "null", '"abc"', '""', '" 1"', '"1,50"', '"NaN"', '"Infinity"',
    "[1]", '{"amount": 1}',
], ids=lambda v: v)
def test_bad_cost_is_400_and_creates_nothing(api, owner, db, raw):
    before = delivery_count(db, owner["sender_id"])
    reply = create_raw(api, owner["token"], f'{{"size": "1x1x1", "cost": {raw}}}')
    assert_error(reply, 400, "cost")
    assert delivery_count(db, owner["sender_id"]) == before


def test_missing_cost_is_400(api, owner):
    assert_error(api.post("/deliveries", {"size": "1x1x1"}, token=owner["token"]), 400, "cost")


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(api, owner, db, raw):
    # They are not JSON at all, so the message names the body.
    before = delivery_count(db, owner["sender_id"])
    reply = create_raw(api, owner["token"], f'{{"size": "1x1x1", "cost": {raw}}}')
    assert_error(reply, 400, "body")
    assert delivery_count(db, owner["sender_id"]) == before


def test_no_silent_rounding_of_cost(api, owner, db):
    reply = create_raw(api, owner["token"], '{"size": "1x1x1", "cost": 23.456}')
    assert_error(reply, 400, "two decimals")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE sender_id = %s AND cost = 23.46",
                    (owner["sender_id"],))
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("description", [
    "<script>alert('x')</script><b>bold</b> &amp; &lt;",
    "Ünïcödé 日本語 العربية 📦🚚 e\u0301 \u200b\u2028",
    "  leading and trailing spaces\t\n",
    "line1\r\nline2\\n not a newline \" quotes ' apostrophes",
    "",
    "x" * 1000,
    "📦" * 1000,
], ids=["html", "unicode", "whitespace", "escapes", "empty", "1000-ascii", "1000-emoji"])
def test_description_is_stored_exactly_as_sent(api, owner, db, description):
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1, "description": description},
                     token=owner["token"])
    assert reply.status == 201, reply
    assert reply.json["description"] == description
    fetched = api.get(f"/deliveries/{reply.json['id']}", token=owner["token"])
    assert fetched.json["description"] == description
    with db.cursor() as cur:
        cur.execute("SELECT description FROM deliveries WHERE id = %s", (reply.json["id"],))
        assert cur.fetchone()[0] == description


def test_description_is_optional(api, owner):
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1}, token=owner["token"])
    assert reply.status == 201 and reply.json["description"] is None


@pytest.mark.parametrize("description", ["x" * 1001, "📦" * 1001, 5, True, ["a"], {"a": 1}],
                         ids=["1001-ascii", "1001-emoji", "int", "bool", "list", "object"])
def test_bad_description_is_400(api, owner, description):
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1, "description": description},
                     token=owner["token"])
    assert_error(reply, 400, "description")


def test_responses_are_json_and_not_cached(api, owner):
    reply = api.post("/deliveries", {"size": "1x1x1", "cost": 1}, token=owner["token"])
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    json.loads(reply.content)


# ---------------------------------------------------------------- get one


@pytest.fixture(scope="module")
def assigned(api, owner, courier):
    """A delivery of `owner` assigned to `courier`."""
    delivery = api.new_delivery(owner["token"], cost="12.34", description="assigned")
    reply = api.put(f"/assign/{delivery['id']}/{courier['courier_id']}", token=owner["token"])
    assert reply.status == 200, reply
    return reply.json


def test_owner_sender_sees_the_delivery(api, owner, assigned):
    reply = api.get(f"/deliveries/{assigned['id']}", token=owner["token"])
    assert reply.status == 200 and reply.json == assigned


def test_assigned_courier_sees_the_delivery(api, courier, assigned):
    reply = api.get(f"/deliveries/{assigned['id']}", token=courier["token"])
    # as the sender saw it, but the tracking URL is the owner sender's alone
    assert reply.status == 200 and reply.json == {**assigned, "tracking_url": None}
    assert reply.json["courier_id"] == courier["courier_id"]
    assert RFC3339_Z.fullmatch(reply.json["assigned_at"])


def test_other_sender_gets_404_like_an_unknown_delivery(api, other_sender, assigned):
    theirs = api.get(f"/deliveries/{assigned['id']}", token=other_sender["token"])
    unknown_id = 2**63 - 1
    unknown = api.get(f"/deliveries/{unknown_id}", token=other_sender["token"])
    assert_error(theirs, 404, "delivery")
    assert_error(unknown, 404, "delivery")
    assert theirs.json["Message"].replace(str(assigned["id"]), "N") == \
        unknown.json["Message"].replace(str(unknown_id), "N")


def test_other_courier_gets_404(api, other_courier, assigned):
    assert_error(api.get(f"/deliveries/{assigned['id']}", token=other_courier["token"]),
                 404, "delivery")


def test_courier_gets_404_for_an_unassigned_delivery(api, owner, courier):
    delivery = api.new_delivery(owner["token"])
    assert_error(api.get(f"/deliveries/{delivery['id']}", token=courier["token"]),
                 404, "delivery")


def test_get_delivery_without_token_is_401(api, assigned):
    assert_error(api.get(f"/deliveries/{assigned['id']}"), 401, "Authorization")


# ---------------------------------------------------------------- sender list


def test_sender_lists_only_own_deliveries(api, owner, other_sender):
    mine = api.new_delivery(owner["token"])
    theirs = api.new_delivery(other_sender["token"])
    listed = ids(api.get(f"/deliveries/sender/{owner['sender_id']}?per_page=100",
                         token=owner["token"]))
    assert mine["id"] in listed and theirs["id"] not in listed
    reply = api.get(f"/deliveries/sender/{owner['sender_id']}?per_page=100",
                    token=owner["token"])
    assert all(item["sender_id"] == owner["sender_id"] for item in reply.json["items"])
    assert all(set(item) == DELIVERY_KEYS for item in reply.json["items"])


def test_sender_list_of_another_sender_is_403(api, owner, other_sender):
    reply = api.get(f"/deliveries/sender/{other_sender['sender_id']}", token=owner["token"])
    assert_error(reply, 403, "sid")


def test_sender_list_of_an_unknown_sender_is_403(api, owner):
    assert_error(api.get(f"/deliveries/sender/{2**62}", token=owner["token"]), 403, "sid")


def test_courier_cannot_list_a_senders_deliveries(api, courier, owner):
    reply = api.get(f"/deliveries/sender/{owner['sender_id']}", token=courier["token"])
    assert reply.status == 403, reply


# ---------------------------------------------------------------- courier list


@pytest.fixture(scope="module")
def shared_courier(api, owner, other_sender):
    """A courier holding two deliveries of `owner` and one of `other_sender`."""
    courier = api.new_courier()
    held = {"owner": [], "other": []}
    for key, token in (("owner", owner["token"]), ("owner", owner["token"]),
                       ("other", other_sender["token"])):
        delivery = api.new_delivery(token)
        reply = api.put(f"/assign/{delivery['id']}/{courier['courier_id']}", token=token)
        assert reply.status == 200, reply
        held[key].append(delivery["id"])
    return {**courier, "held": held}


def test_courier_sees_all_deliveries_assigned_to_them(api, shared_courier):
    listed = ids(api.get(f"/deliveries/courier/{shared_courier['courier_id']}",
                         token=shared_courier["token"]))
    held = shared_courier["held"]
    assert sorted(listed) == sorted(held["owner"] + held["other"])


def test_sender_sees_only_own_deliveries_assigned_to_a_courier(api, owner, other_sender,
                                                                shared_courier):
    path = f"/deliveries/courier/{shared_courier['courier_id']}"
    held = shared_courier["held"]
    assert sorted(ids(api.get(path, token=owner["token"]))) == sorted(held["owner"])
    assert ids(api.get(path, token=other_sender["token"])) == held["other"]


def test_sender_sees_an_empty_list_for_a_courier_without_its_deliveries(api, other_courier,
                                                                        owner):
    reply = api.get(f"/deliveries/courier/{other_courier['courier_id']}", token=owner["token"])
    assert reply.status == 200
    assert reply.json == {"items": [], "page": 0, "per_page": 10, "next_page": None,
                          "next_cursor": None}


def test_other_courier_cannot_list_a_couriers_deliveries(api, other_courier, shared_courier):
    reply = api.get(f"/deliveries/courier/{shared_courier['courier_id']}",
                    token=other_courier["token"])
    assert_error(reply, 403, "cid")


def test_unknown_courier_for_a_sender_is_404(api, owner):
    assert_error(api.get(f"/deliveries/courier/{2**62}", token=owner["token"]), 404, "courier")


# ---------------------------------------------------------------- pagination


@pytest.fixture(scope="module")
def pager(api):
    """A sender with 12 deliveries, created one after the other."""
    sender = api.new_sender()
    created = [api.new_delivery(sender["token"], cost=str(n + 1))["id"] for n in range(12)]
    return {**sender, "created": created, "path": f"/deliveries/sender/{sender['sender_id']}"}


def test_pagination_defaults_to_page_0_of_10_newest_first(api, pager):
    reply = api.get(pager["path"], token=pager["token"])
    assert reply.status == 200
    assert (reply.json["page"], reply.json["per_page"], reply.json["next_page"]) == (0, 10, 1)
    assert ids(reply) == pager["created"][::-1][:10]


def test_last_page_has_no_next_page(api, pager):
    reply = api.get(pager["path"] + "?page=1", token=pager["token"])
    assert ids(reply) == pager["created"][::-1][10:]
    assert (reply.json["page"], reply.json["next_page"]) == (1, None)


def test_pages_together_list_every_delivery_once_in_order(api, pager):
    seen, page = [], 0
    while page is not None:
        reply = api.get(f"{pager['path']}?page={page}&per_page=5", token=pager["token"])
        assert len(reply.json["items"]) <= 5 and reply.json["per_page"] == 5
        seen += ids(reply)
        page = reply.json["next_page"]
    assert seen == pager["created"][::-1]


@pytest.mark.parametrize("per_page, count, next_page", [(1, 1, 1), (11, 11, 1), (12, 12, None),
                                                        (100, 12, None)])
def test_per_page_from_1_to_100(api, pager, per_page, count, next_page):
    reply = api.get(f"{pager['path']}?per_page={per_page}", token=pager["token"])
    assert len(ids(reply)) == count
    assert reply.json["next_page"] == next_page


@pytest.mark.parametrize("page", [2, 3, 100000])
def test_page_beyond_the_end_is_empty(api, pager, page):
    reply = api.get(f"{pager['path']}?page={page}", token=pager["token"])
    assert reply.status == 200
    assert reply.json == {"items": [], "page": page, "per_page": 10, "next_page": None,
                          "next_cursor": None}


@pytest.mark.parametrize("query, field", [("page=-1", "page"), ("page=abc", "page"),
                                          ("per_page=0", "per_page"),
                                          ("per_page=101", "per_page")])
def test_bad_pagination_is_400(api, pager, query, field):
    assert_error(api.get(f"{pager['path']}?{query}", token=pager["token"]), 400, field)


def test_same_created_at_is_ordered_by_id_newest_first(api, db):
    sender = api.new_sender()
    with db.cursor() as cur:
        # The first row inserted (lowest id) is the newest; the next five tie.
        cur.execute("""
            INSERT INTO deliveries (sender_id, length_cm, width_cm, height_cm, cost, created_at)
            VALUES (%(s)s, 1, 1, 1, 1, '2030-01-02T00:00:00Z') RETURNING id""",
                    {"s": sender["sender_id"]})
        newest = cur.fetchone()[0]
        tied = []
        for _ in range(5):
            cur.execute("""
                INSERT INTO deliveries (sender_id, length_cm, width_cm, height_cm, cost,
                                        created_at)
                VALUES (%(s)s, 1, 1, 1, 1, '2030-01-01T00:00:00Z') RETURNING id""",
                        {"s": sender["sender_id"]})
            tied.append(cur.fetchone()[0])
    path = f"/deliveries/sender/{sender['sender_id']}"
    expected = [newest] + sorted(tied, reverse=True)
    assert ids(api.get(path, token=sender["token"])) == expected
    # Pages cut through the tie without losing or repeating a row, every time.
    for _ in range(2):
        paged = []
        for page in range(3):
            paged += ids(api.get(f"{path}?page={page}&per_page=2", token=sender["token"]))
        assert paged == expected


def test_courier_list_is_paginated_newest_first(api, shared_courier):
    path = f"/deliveries/courier/{shared_courier['courier_id']}"
    first = api.get(path + "?per_page=2", token=shared_courier["token"])
    assert first.json["next_page"] == 1 and len(first.json["items"]) == 2
    second = api.get(path + "?per_page=2&page=1", token=shared_courier["token"])
    assert second.json["next_page"] is None and len(second.json["items"]) == 1
    everything = first.json["items"] + second.json["items"]
    keys = [(item["created_at"], item["id"]) for item in everything]
    assert keys == sorted(keys, reverse=True)
