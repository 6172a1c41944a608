"""Assigning deliveries to couriers, and the daily limit, through the app in-process."""

import hashlib
import secrets
import threading

import psycopg2
import pytest

from tests.conftest import assert_error, unique, unique_phone

DAILY_LIMIT = 5


def assign(api, token: str, delivery_id: int, courier_id: int):
    return api.put(f"/assign/{delivery_id}/{courier_id}", token=token)


def stored(db, delivery_id: int) -> tuple:
    with db.cursor() as cur:
        cur.execute("SELECT courier_id, assigned_at FROM deliveries WHERE id = %s",
                    (delivery_id,))
        return cur.fetchone()


def courier_row(api, token: str, courier_id: int) -> dict:
    """The courier's row in GET /couriers, looked up through every page."""
    page = 0
    while page is not None:
        reply = api.get(f"/couriers?page={page}&per_page=100", token=token)
        assert reply.status == 200, reply
        for row in reply.json["items"]:
            if row["id"] == courier_id:
                return row
        page = reply.json["next_page"]
    raise AssertionError(f"courier {courier_id} not listed")


def today(api, token: str, courier_id: int) -> tuple[int, int]:
    row = courier_row(api, token, courier_id)
    return row["assigned_today"], row["remaining_today"]


@pytest.fixture(scope="module")
def owner(api):
    return api.new_sender()


@pytest.fixture(scope="module")
def stranger(api):
    return api.new_sender()


def courier_in_db(db) -> dict:
    """A new courier with a live session, made in the database directly.

    Signup and login through the API cost two scrypt hashes; these tests
    need many couriers, and only their ids and tokens.
    """
    token = secrets.token_hex(20)
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (username, password_hash, role) "
                    "VALUES (%s, 'scrypt$unusable', 'courier') RETURNING id",
                    (unique("cdb"),))
        user_id = cur.fetchone()[0]
        cur.execute("INSERT INTO couriers (user_id, first_name, last_name, phone, vehicle) "
                    "VALUES (%s, 'Ann', 'Lee', %s, 'van') RETURNING id",
                    (user_id, unique_phone()))
        courier_id = cur.fetchone()[0]
        cur.execute("INSERT INTO sessions (token_sha256, user_id, expires_at) "
                    "VALUES (%s, %s, now() + interval '1 hour')",
                    (hashlib.sha256(token.encode()).digest(), user_id))
    return {"user_id": user_id, "courier_id": courier_id, "token": token}


@pytest.fixture
def courier(db):
    """A fresh courier: the daily count must not leak between tests."""
    return courier_in_db(db)


def test_owner_assigns_delivery_to_courier(api, owner, courier, db):
    delivery = api.new_delivery(owner["token"])
    reply = assign(api, owner["token"], delivery["id"], courier["courier_id"])
    assert reply.status == 200, reply
    assert reply.json["courier_id"] == courier["courier_id"]
    assert reply.json["assigned_at"] is not None
    assert reply.json["status"] == "assigned" and delivery["status"] == "created"
    changed = ("courier_id", "assigned_at", "status", "updated_at")
    assert {k: v for k, v in reply.json.items() if k not in changed} == \
        {k: v for k, v in delivery.items() if k not in changed}
    assert stored(db, delivery["id"])[0] == courier["courier_id"]
    assert api.get(f"/deliveries/{delivery['id']}", token=courier["token"]).json == \
        {**reply.json, "tracking_url": None}  # the owner sender's alone
    assert today(api, owner["token"], courier["courier_id"]) == (1, DAILY_LIMIT - 1)


def test_courier_cannot_assign(api, owner, courier, db):
    delivery = api.new_delivery(owner["token"])
    # Not theirs: 404, as for any delivery they may not see.
    assert assign(api, courier["token"], delivery["id"], courier["courier_id"]).status == 404
    assert stored(db, delivery["id"]) == (None, None)
    # Theirs (assigned to them): a sender's action, 403.
    assert assign(api, owner["token"], delivery["id"], courier["courier_id"]).status == 200
    assert assign(api, courier["token"], delivery["id"], courier["courier_id"]).status == 403


def test_other_sender_cannot_assign_and_learns_nothing(api, owner, stranger, courier, db):
    delivery = api.new_delivery(owner["token"])
    reply = assign(api, stranger["token"], delivery["id"], courier["courier_id"])
    assert_error(reply, 404, "delivery")
    assert stored(db, delivery["id"]) == (None, None)


def test_assign_without_token_is_401(api, owner, courier):
    delivery = api.new_delivery(owner["token"])
    assert_error(api.put(f"/assign/{delivery['id']}/{courier['courier_id']}"),
                 401, "Authorization")


def test_unknown_delivery_is_404(api, owner, courier):
    assert_error(assign(api, owner["token"], 2**62, courier["courier_id"]), 404, "delivery")


def test_unknown_courier_is_404(api, owner, db):
    delivery = api.new_delivery(owner["token"])
    assert_error(assign(api, owner["token"], delivery["id"], 2**62), 404, "courier")
    assert stored(db, delivery["id"]) == (None, None)


def test_same_courier_again_is_200_and_counted_once(api, owner, courier, db):
    delivery = api.new_delivery(owner["token"])
    first = assign(api, owner["token"], delivery["id"], courier["courier_id"])
    assert first.status == 200
    before = stored(db, delivery["id"])
    again = assign(api, owner["token"], delivery["id"], courier["courier_id"])
    assert again.status == 200 and again.json == first.json
    assert stored(db, delivery["id"]) == before  # assigned_at did not move
    assert today(api, owner["token"], courier["courier_id"]) == (1, DAILY_LIMIT - 1)


def test_reassigning_to_another_courier_is_allowed(api, owner, courier, db):
    second = courier_in_db(db)
    delivery = api.new_delivery(owner["token"])
    assert assign(api, owner["token"], delivery["id"], courier["courier_id"]).status == 200
    reply = assign(api, owner["token"], delivery["id"], second["courier_id"])
    assert reply.status == 200, reply
    assert reply.json["courier_id"] == second["courier_id"]
    assert stored(db, delivery["id"])[0] == second["courier_id"]
    # The delivery moved: the first courier no longer sees or holds it.
    assert api.get(f"/deliveries/{delivery['id']}", token=courier["token"]).status == 404
    assert api.get(f"/deliveries/{delivery['id']}", token=second["token"]).status == 200
    assert today(api, owner["token"], courier["courier_id"]) == (0, DAILY_LIMIT)
    assert today(api, owner["token"], second["courier_id"]) == (1, DAILY_LIMIT - 1)


def fill_up(api, token: str, courier_id: int) -> list[int]:
    """Assigns DAILY_LIMIT new deliveries to the courier."""
    held = []
    for _ in range(DAILY_LIMIT):
        delivery = api.new_delivery(token)
        assert assign(api, token, delivery["id"], courier_id).status == 200
        held.append(delivery["id"])
    return held


def test_sixth_assignment_of_the_day_is_409(api, owner, courier, db):
    fill_up(api, owner["token"], courier["courier_id"])
    assert today(api, owner["token"], courier["courier_id"]) == (DAILY_LIMIT, 0)
    sixth = api.new_delivery(owner["token"])
    assert_error(assign(api, owner["token"], sixth["id"], courier["courier_id"]), 409, "cid")
    assert stored(db, sixth["id"]) == (None, None)
    assert today(api, owner["token"], courier["courier_id"]) == (DAILY_LIMIT, 0)


def test_limit_counts_deliveries_of_every_sender(api, owner, stranger, courier):
    fill_up(api, owner["token"], courier["courier_id"])
    theirs = api.new_delivery(stranger["token"])
    assert_error(assign(api, stranger["token"], theirs["id"], courier["courier_id"]),
                 409, "cid")


def test_same_courier_again_at_the_limit_is_200(api, owner, courier):
    held = fill_up(api, owner["token"], courier["courier_id"])
    reply = assign(api, owner["token"], held[0], courier["courier_id"])
    assert reply.status == 200, reply
    assert today(api, owner["token"], courier["courier_id"]) == (DAILY_LIMIT, 0)


def test_reassigning_to_a_full_courier_is_409_and_keeps_the_old_one(api, owner, courier, db):
    full = courier_in_db(db)
    fill_up(api, owner["token"], full["courier_id"])
    delivery = api.new_delivery(owner["token"])
    assert assign(api, owner["token"], delivery["id"], courier["courier_id"]).status == 200
    assert_error(assign(api, owner["token"], delivery["id"], full["courier_id"]), 409, "cid")
    assert stored(db, delivery["id"])[0] == courier["courier_id"]


def test_assignments_of_yesterday_do_not_count(api, owner, courier, db):
    held = fill_up(api, owner["token"], courier["courier_id"])
    with db.cursor() as cur:
        # The last microsecond of yesterday (UTC) for all but one; that one at
        # exactly midnight, the first instant of today, which still counts.
        cur.execute("UPDATE deliveries SET assigned_at = utc_today() - interval '1 microsecond' "
                    "WHERE id = ANY(%s)", (held[1:],))
        cur.execute("UPDATE deliveries SET assigned_at = utc_today() WHERE id = %s",
                    (held[0],))
    assert today(api, owner["token"], courier["courier_id"]) == (1, DAILY_LIMIT - 1)
    for _ in range(DAILY_LIMIT - 1):
        delivery = api.new_delivery(owner["token"])
        assert assign(api, owner["token"], delivery["id"], courier["courier_id"]).status == 200
    extra = api.new_delivery(owner["token"])
    assert_error(assign(api, owner["token"], extra["id"], courier["courier_id"]), 409, "cid")


def test_couriers_list_shows_todays_count_and_room_left(api, owner, courier):
    row = courier_row(api, owner["token"], courier["courier_id"])
    assert row == {"id": courier["courier_id"], "first_name": "Ann", "last_name": "Lee",
                   "vehicle": "van", "assigned_today": 0, "remaining_today": DAILY_LIMIT}
    delivery = api.new_delivery(owner["token"])
    assign(api, owner["token"], delivery["id"], courier["courier_id"])
    assert today(api, owner["token"], courier["courier_id"]) == (1, DAILY_LIMIT - 1)


def test_couriers_list_is_paginated(api, owner, courier, db):
    courier_in_db(db)
    reply = api.get("/couriers?per_page=1", token=owner["token"])
    assert reply.status == 200
    assert len(reply.json["items"]) == 1 and reply.json["next_page"] == 1
    assert (reply.json["page"], reply.json["per_page"]) == (0, 1)
    second = api.get("/couriers?per_page=1&page=1", token=owner["token"])
    assert second.json["items"][0]["id"] != reply.json["items"][0]["id"]


def test_courier_cannot_list_couriers(api, courier):
    assert api.get("/couriers", token=courier["token"]).status == 403


def test_daily_limit_holds_under_concurrent_assignments(api, owner, courier, database_url):
    """Ten sessions assign ten deliveries to one courier at the same instant."""
    deliveries = [api.new_delivery(owner["token"])["id"] for _ in range(10)]
    digest = hashlib.sha256(owner["token"].encode()).digest()
    connections = [psycopg2.connect(database_url) for _ in deliveries]
    for conn in connections:
        conn.autocommit = True
    barrier = threading.Barrier(len(deliveries))
    outcomes: list[str] = []

    def attempt(conn, delivery_id: int) -> None:
        with conn.cursor() as cur:
            barrier.wait()
            try:
                cur.execute("SELECT * FROM assign_delivery(%s, %s, %s, NULL, NULL)",
                            (digest, delivery_id, courier["courier_id"]))
                outcomes.append("ok")
            except psycopg2.Error as exc:
                outcomes.append(exc.pgcode)

    threads = [threading.Thread(target=attempt, args=pair)
               for pair in zip(connections, deliveries, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for conn in connections:
        conn.close()
    assert sorted(outcomes) == ["DL409"] * 5 + ["ok"] * 5
    assert today(api, owner["token"], courier["courier_id"]) == (DAILY_LIMIT, 0)
