"""The lifecycle over HTTP against a real local server: every path of the state
machine, races between conflicting actions (exactly one wins, and the history
agrees with the final state), and the event feed followed while transactions
commit out of id order."""

import random
import threading
import time

import psycopg2
import pytest
import requests

from chalicelib import credentials

# What each action needs, who does it, and where it leads.
ACTIONS = {
    "assign": ({"created", "assigned"}, "sender", "assigned"),
    "unassign": ({"assigned"}, "either", "created"),
    "pickup": ({"assigned"}, "courier", "picked_up"),
    "deliver": ({"picked_up"}, "courier", "delivered"),
    "fail": ({"picked_up"}, "courier", "failed"),
    "cancel": ({"created", "assigned"}, "sender", "cancelled"),
}
# Every path from created to an end, through every transition.
PATHS = [
    ["cancel"],
    ["assign", "cancel"],
    ["assign", "unassign", "assign", "pickup", "deliver"],
    ["assign", "assign", "pickup", "fail"],
]


@pytest.fixture(scope="module")
def people(live):
    api = live["api"]
    return {"api": api, "base": live["base"], "sender": api.new_sender(),
            "couriers": [api.new_courier() for _ in range(4)]}


def do(people, did: int, action: str, courier: dict, as_role: str | None = None):
    api, sender = people["api"], people["sender"]
    role = as_role or ("sender" if ACTIONS[action][1] in ("sender", "either") else "courier")
    token = sender["token"] if role == "sender" else courier["token"]
    if action == "assign":
        return api.put(f"/assign/{did}/{courier['courier_id']}", token=token)
    body = {"reason": "refused"} if action == "fail" else None
    return api.post(f"/deliveries/{did}/{action}", body, token=token)


def replay(events: list[dict]) -> tuple[str, int | None]:
    """The status and courier that a delivery's history leads to."""
    status, courier = "created", None
    for event in events:
        status = event["status"]
        courier = event["data"]["courier_id"]
    return status, courier


@pytest.mark.parametrize("path", PATHS, ids="-".join)
def test_every_path_of_the_state_machine_and_every_refusal_on_the_way(people, path):
    api, sender = people["api"], people["sender"]
    delivery = api.new_delivery(sender["token"])
    did, status = delivery["id"], "created"
    couriers = iter(people["couriers"] * 2)
    courier = next(couriers)
    for step in path:
        # Every action the current status does not allow is a 409 naming it
        # (a courier's action on a delivery that has no courier: not theirs, 404).
        for action, (allowed, who, target) in ACTIONS.items():
            if status not in allowed and action != "assign":
                reply = do(people, did, action, courier)
                if target == status and action != "unassign":  # a repeat: a no-op
                    assert reply.status == 200 and reply.json["status"] == status, reply
                    continue
                if status == "created" and who == "courier":
                    assert reply.status == 404, (status, action, reply)
                    continue
                assert reply.status == 409, (status, action, reply)
                assert reply.json["Message"] == f"status: delivery {did} is {status}"
        if step == "assign" and status == "assigned":
            courier = next(couriers)  # a reassignment
        reply = do(people, did, step, courier)
        assert reply.status == 200, (status, step, reply)
        status = ACTIONS[step][2]
        assert reply.json["status"] == status
    events = api.get(f"/deliveries/{did}/events", token=sender["token"]).json["items"]
    final = api.get(f"/deliveries/{did}", token=sender["token"]).json
    assert replay(events) == (final["status"], final["courier_id"])
    assert final["status"] in ("delivered", "failed", "cancelled")
    # A final delivery never changes again (assigning it to the courier it
    # has is the documented no-op; to another one, a 409).
    stranger = next(c for c in people["couriers"] if c["courier_id"] != final["courier_id"])
    for action in ACTIONS:
        if action != path[-1]:
            who = stranger if action == "assign" else courier
            assert do(people, did, action, who).status in (403, 404, 409), action
    assert api.get(f"/deliveries/{did}", token=sender["token"]).json == final


def race(people, did: int, first: tuple[str, dict], second: tuple[str, dict]) -> list[int]:
    barrier = threading.Barrier(2)
    statuses: list[int] = [0, 0]

    def run(i: int, action: str, courier: dict) -> None:
        session = requests.Session()
        sender = people["sender"]
        token = sender["token"] if ACTIONS[action][1] == "sender" else courier["token"]
        if action == "unassign":
            token = courier["token"]
        barrier.wait()
        if action == "assign":
            reply = session.put(f"{people['base']}/assign/{did}/{courier['courier_id']}",
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)
        else:
            reply = session.post(f"{people['base']}/deliveries/{did}/{action}",
                                 json={"reason": "refused"} if action == "fail" else None,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)
        statuses[i] = reply.status_code

    threads = [threading.Thread(target=run, args=(i, *pair))
               for i, pair in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("setup, first, second", [
    (["assign", "pickup"], "deliver", "fail"),
    (["assign"], "cancel", "pickup"),
    (["assign"], "pickup", "unassign"),
    (["assign"], "assign-other", "pickup"),
], ids=["deliver-vs-fail", "cancel-vs-pickup", "pickup-vs-unassign", "reassign-vs-pickup"])
def test_conflicting_actions_never_both_succeed(people, setup, first, second):
    api, sender = people["api"], people["sender"]
    courier, other = people["couriers"][2], people["couriers"][3]
    for _ in range(8):
        did = api.new_delivery(sender["token"])["id"]
        for step in setup:
            assert do(people, did, step, courier).status == 200
        pairs = [(name.replace("-other", ""), other if name.endswith("-other") else courier)
                 for name in (first, second)]
        statuses = race(people, did, *pairs)
        assert sorted(statuses)[0] == 200 and statuses.count(200) == 1, statuses
        assert sorted(statuses)[1] in (404, 409), statuses
        events = api.get(f"/deliveries/{did}/events", token=sender["token"]).json["items"]
        final = api.get(f"/deliveries/{did}", token=sender["token"]).json
        assert replay(events) == (final["status"], final["courier_id"])
        # created, the setup, the winner (a reassignment records two), nothing of the loser
        assert len(events) == 1 + len(setup) + 1 + (
            1 if final["courier_id"] == other["courier_id"] else 0)
        # Free today's slots for the next round.
        if final["status"] not in ("cancelled", "created"):
            with psycopg2.connect(_url()) as db:
                db.cursor().execute("UPDATE deliveries SET assigned_at = assigned_at - "
                                    "interval '2 days' WHERE id = %s", (did,))


def test_assign_against_unassign_leaves_a_history_that_agrees(people):
    """Both may succeed (unassigned, then assigned anew): the history says which."""
    api, sender = people["api"], people["sender"]
    courier, other = people["couriers"][0], people["couriers"][1]
    for _ in range(6):
        did = api.new_delivery(sender["token"])["id"]
        assert do(people, did, "assign", courier).status == 200
        statuses = race(people, did, ("assign", other), ("unassign", courier))
        assert statuses[0] == 200 and statuses[1] in (200, 404), statuses
        events = api.get(f"/deliveries/{did}/events", token=sender["token"]).json["items"]
        final = api.get(f"/deliveries/{did}", token=sender["token"]).json
        assert replay(events) == (final["status"], final["courier_id"]) == \
            ("assigned", other["courier_id"])
        assert [e["type"] for e in events][-2:] in (
            ["delivery.unassigned", "delivery.assigned"],)
        with psycopg2.connect(_url()) as db:
            db.cursor().execute("UPDATE deliveries SET assigned_at = assigned_at - "
                                "interval '2 days' WHERE id = %s", (did,))


def _url() -> str:
    import os

    return os.environ["DATABASE_URL"]


@pytest.mark.slow
def test_feed_followed_during_late_commits_sees_every_event_once_in_order(people, database_url):
    """Writers hold their transactions open for a random while after the change
    (a commit that comes late); a reader follows next_after over HTTP all the
    while. At the end it has seen exactly the events now visible, each once, in
    feed order. A feed read by id alone (no lock, no horizon) fails it: see
    tests/test_feed_scale.py, which runs the same check on such a reader."""
    sender = people["sender"]
    digest = credentials.token_digest(sender["token"])
    seen: list[int] = []
    errors: list[BaseException] = []
    writers_done = threading.Event()

    # Where the feed stands before the writers start.
    session = requests.Session()
    auth = {"Authorization": f"Bearer {sender['token']}"}
    start = 0
    while True:
        page = session.get(f"{people['base']}/events?limit=100&after={start}", headers=auth,
                           timeout=30).json()
        if not page["items"]:
            break
        start = page["next_after"]
    stop_at = time.monotonic() + 6

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        db = psycopg2.connect(database_url)
        try:
            while time.monotonic() < stop_at:
                with db, db.cursor() as cur:  # one transaction
                    cur.execute("SELECT * FROM create_delivery("
                                "%s, 1, 2, 3, 4.5, NULL, NULL, NULL, NULL, NULL, NULL)",
                                (digest,))
                    time.sleep(rng.random() * 0.05)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            db.close()

    def reader() -> None:
        """Follows until the writers are done and a page comes back empty."""
        after = start
        try:
            while True:
                done = writers_done.is_set()
                reply = session.get(f"{people['base']}/events?limit=7&after={after}",
                                    headers=auth, timeout=30).json()
                seen.extend(e["id"] for e in reply["items"])
                after = reply["next_after"]
                if done and not reply["items"]:
                    return
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    following = threading.Thread(target=reader)
    for thread in [*writers, following]:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    following.join(120)
    assert not following.is_alive(), "the reader did not catch up within 120 s"
    assert not errors, errors
    followed = seen
    with psycopg2.connect(database_url) as db, db.cursor() as cur:
        cur.execute("SELECT id FROM delivery_events WHERE sender_id = %s"
                    " AND (feed_key, id) > (feed_position(%s), %s)"
                    " ORDER BY feed_key, id", (sender["sender_id"], start, start))
        visible = [row[0] for row in cur.fetchall()]
    assert len(visible) > 30
    assert followed == visible
