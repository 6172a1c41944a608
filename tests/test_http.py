"""Over real HTTP, against a `chalice local` process: the main flow and concurrency."""

import threading
from concurrent.futures import ThreadPoolExecutor

import requests


def test_main_flow_over_http(live):
    api = live["api"]
    assert requests.get(live["base"] + "/", timeout=5).text == "OK"
    sender, courier = api.new_sender(), api.new_courier()

    created = api.post("/deliveries", {"size": "22x33x44", "cost": 23.45,
                                       "description": "fragile <glass>"}, token=sender["token"])
    assert created.status == 201
    delivery = created.json
    assert delivery["sender_id"] == sender["sender_id"] and delivery["courier_id"] is None
    assert delivery["cost"] == "23.45" and delivery["description"] == "fragile <glass>"

    assigned = api.put(f"/assign/{delivery['id']}/{courier['courier_id']}",
                       token=sender["token"])
    assert assigned.status == 200 and assigned.json["courier_id"] == courier["courier_id"]
    assert assigned.json["assigned_at"].endswith("Z")

    mine = api.get(f"/deliveries/courier/{courier['courier_id']}", token=courier["token"])
    assert [d["id"] for d in mine.json["items"]] == [delivery["id"]]

    # Assigned is not earned: revenue counts what the courier delivered.
    revenue = api.get("/revenue/0/4102444800", token=courier["token"])
    assert (revenue.json["revenue"], revenue.json["deliveries"]) == ("0.00", 0)
    path = f"/deliveries/{delivery['id']}"
    assert api.post(path + "/pickup", token=courier["token"]).json["status"] == "picked_up"
    delivered = api.post(path + "/deliver", {"recipient_name": "Ann"}, token=courier["token"])
    assert delivered.status == 200 and delivered.json["status"] == "delivered"
    revenue = api.get("/revenue/0/4102444800", token=courier["token"])
    assert revenue.status == 200
    assert revenue.json["revenue"] == "23.45" and revenue.json["deliveries"] == 1
    history = api.get(path + "/events", token=sender["token"]).json["items"]
    assert [e["type"] for e in history] == ["delivery.created", "delivery.assigned",
                                            "delivery.picked_up", "delivery.delivered"]
    assert history[-1]["data"]["recipient_name"] == "Ann"

    assert api.delete("/auth", token=courier["token"]).status == 204
    assert api.get("/me", token=courier["token"]).status == 401


def test_first_version_clients_bare_token_and_hash_field(live):
    api = live["api"]
    login = api.post("/auth", {"username": "sender", "password": "pass"})
    assert login.json["hash"] == login.json["token"]
    reply = api.get("/me", headers={"Authorization": login.json["hash"]})
    assert reply.status == 200 and reply.json["sender"]["company_name"] == "acme"
    old = api.post("/add_delivery", {"size": "1x1x1", "cost": "1"},
                   headers={"Authorization": login.json["hash"]})
    assert old.status == 200 and old.json["sender_id"] == 1


def test_daily_limit_holds_under_twenty_concurrent_assigns(live, db):
    api = live["api"]
    sender, courier = api.new_sender(), api.new_courier()
    deliveries = [api.new_delivery(sender["token"])["id"] for _ in range(20)]
    barrier = threading.Barrier(20)
    base, token, cid = live["base"], sender["token"], courier["courier_id"]

    def assign(did: int) -> int:
        session = requests.Session()
        barrier.wait()
        return session.put(f"{base}/assign/{did}/{cid}",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(assign, deliveries))

    assert sorted(statuses) == [200] * 5 + [409] * 15, statuses
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM deliveries WHERE courier_id = %s", (cid,))
        assert cur.fetchone()[0] == 5


def test_concurrent_repeats_of_one_assignment_count_once(live, db):
    api = live["api"]
    sender, courier = api.new_sender(), api.new_courier()
    did = api.new_delivery(sender["token"])["id"]
    barrier = threading.Barrier(10)

    def assign(_: int) -> int:
        barrier.wait()
        return requests.put(f"{live['base']}/assign/{did}/{courier['courier_id']}",
                            headers={"Authorization": sender["token"]}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(assign, range(10))) == [200] * 10
    couriers = api.get("/couriers?per_page=100", token=sender["token"]).json["items"]
    mine = next(c for c in couriers if c["id"] == courier["courier_id"])
    assert (mine["assigned_today"], mine["remaining_today"]) == (1, 4)


def test_concurrent_callers_each_see_their_own_identity(live):
    """chalice local serves each request on its own thread: no request sees another's."""
    api = live["api"]
    users = [api.new_sender(), api.new_courier(), api.new_sender(), api.new_courier()]
    barrier = threading.Barrier(24)

    def whoami(i: int) -> tuple[int, int]:
        user = users[i % len(users)]
        barrier.wait()
        reply = requests.get(f"{live['base']}/me",
                             headers={"Authorization": f"Bearer {user['token']}"}, timeout=30)
        return user["user_id"], reply.json()["user_id"]

    with ThreadPoolExecutor(max_workers=24) as pool:
        pairs = list(pool.map(whoami, range(24)))
    assert all(expected == seen for expected, seen in pairs), pairs
