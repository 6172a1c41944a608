"""The API end to end, in-process through `chalice.test.Client`: the first file
to read, and one a newcomer can run alone (`py.test tests/test_app.py`, from the
venv `make run` made; the embedded PostgreSQL starts by itself).

One delivery's life as its sender and courier see it: log in, create it with
stops, assign it, follow the courier, pick it up, deliver it with the PIN the
recipient holds, then its history, the feed and the courier's revenue. The rest
of the suite, one file per subject, is beside this one (`make test` runs it
all; `make check` the fast part): test_deliveries, test_lifecycle, test_stops,
test_tracking, test_webhooks, test_api_keys, test_idempotency, test_bad_input,
and more.
"""

from decimal import Decimal

from tests.conftest import assert_error


def test_health_and_liveness(api):
    assert api.get("/").content == b"OK"
    assert api.get("/health").json == {"status": "ok", "database": "ok"}


def test_a_delivery_from_creation_to_revenue(api):
    sender, courier = api.new_sender(), api.new_courier()
    s, c = sender["token"], courier["token"]
    revenue_before = api.get("/revenue/2020-01-01/2100-01-01", token=c).json

    created = api.post("/deliveries", {
        "size": "22x33x44", "cost": "23.45", "description": "books",
        "pickup": {"address": {"line1": "Alexanderplatz 1", "city": "Berlin", "country": "DE"},
                   "location": {"lat": 52.521918, "lng": 13.413215}},
        "dropoff": {"address": {"line1": "Kastanienallee 12", "city": "Berlin",
                                "country": "de"},
                    "location": {"lat": 52.538214, "lng": 13.409651},
                    "contact": {"name": "Ann Lee", "phone": "+49 30 123456"},
                    "requires_pin": True}}, token=s)
    assert created.status == 201, created
    delivery = created.json
    did, pin = delivery["id"], delivery["dropoff"]["pin"]
    assert delivery["status"] == "created" and delivery["sender_id"] == sender["sender_id"]
    assert delivery["dropoff"]["address"]["country"] == "DE"
    assert delivery["dropoff"]["contact"] == {"name": "Ann Lee", "phone": "+4930123456"}
    assert 1_500 < delivery["distance_m"] < 2_500
    assert len(pin) == 4 and delivery["tracking_url"].count("/track/") == 1

    assigned = api.put(f"/assign/{did}/{courier['courier_id']}", token=s)
    assert assigned.status == 200 and assigned.json["status"] == "assigned"
    # The courier sees the contact, never the PIN.
    seen = api.get(f"/deliveries/{did}", token=c).json
    assert seen["dropoff"]["contact"]["name"] == "Ann Lee" and seen["dropoff"]["pin"] is None

    assert api.post(f"/deliveries/{did}/pickup", token=c).json["status"] == "picked_up"
    assert api.put("/me/location", body={"lat": 52.53, "lng": 13.41}, token=c).status == 204
    followed = api.get(f"/deliveries/{did}", token=s).json
    assert followed["courier_location"]["lat"] == 52.53 and followed["eta"] is not None

    assert_error(api.post(f"/deliveries/{did}/deliver",
                          {"pin": "0000" if pin != "0000" else "1111"}, token=c), 400, "pin")
    delivered = api.post(f"/deliveries/{did}/deliver", {"pin": pin, "recipient_name": "Ann"},
                         token=c)
    assert delivered.status == 200 and delivered.json["status"] == "delivered"

    history = api.get(f"/deliveries/{did}/events", token=s).json["items"]
    assert [e["type"] for e in history] == ["delivery.created", "delivery.assigned",
                                            "delivery.picked_up", "delivery.delivered"]
    feed = api.get("/events?limit=100", token=c).json["items"]
    assert [e["type"] for e in feed if e["delivery_id"] == did][-1] == "delivery.delivered"

    revenue = api.get("/revenue/2020-01-01/2100-01-01", token=c).json
    assert revenue["deliveries"] == revenue_before["deliveries"] + 1
    assert Decimal(revenue["revenue"]) - Decimal(revenue_before["revenue"]) == Decimal("23.45")


def test_the_other_side_is_refused(api):
    sender, other, courier = api.new_sender(), api.new_sender(), api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    assert_error(api.get(f"/deliveries/{did}", token=other["token"]), 404, str(did))
    assert_error(api.post("/deliveries", {"size": "1x1x1", "cost": 1},
                          token=courier["token"]), 403, "sender")
    assert_error(api.get("/me"), 401, "Authorization")
