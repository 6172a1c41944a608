"""The revenue endpoint reads a per-day rollup kept by triggers: it must always
equal the plain sum over the delivered deliveries, for any window and after any
change: deliver, fail, cancel, unassign, reassign, and edits behind the API's
back (time, cost, courier, deletes)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

START = datetime(2025, 1, 1, tzinfo=UTC)


def direct_revenue(db, courier_id: int, start: datetime, end: datetime) -> tuple[int, str]:
    with db.cursor() as cur:
        cur.execute("""SELECT count(*), coalesce(sum(cost), 0)::numeric(14, 2)::text
                         FROM deliveries
                        WHERE courier_id = %s AND status = 'delivered'
                          AND delivered_at >= %s AND delivered_at < %s""",
                    (courier_id, start, end))
        return cur.fetchone()


def endpoint_revenue(api, token: str, start: datetime, end: datetime) -> tuple[int, str]:
    reply = api.get(f"/revenue/{int(start.timestamp())}/{int(end.timestamp())}", token=token)
    assert reply.status == 200, reply
    return reply.json["deliveries"], reply.json["revenue"]


def rollup_matches_deliveries(db) -> bool:
    with db.cursor() as cur:
        cur.execute("""
            SELECT count(*) FROM (
                SELECT courier_id, (delivered_at AT TIME ZONE 'UTC')::date AS day,
                       count(*)::integer AS deliveries, sum(cost) AS revenue
                  FROM deliveries WHERE status = 'delivered' GROUP BY 1, 2
                EXCEPT
                SELECT courier_id, day, deliveries, revenue
                  FROM courier_daily_revenue WHERE deliveries <> 0
            ) missing""")
        return cur.fetchone()[0] == 0


@pytest.fixture(scope="module")
def spread(api, database_url):
    """Two couriers with 60 delivered deliveries spread over 20 days at random instants."""
    import psycopg2

    rng = random.Random(7)
    sender, one, two = api.new_sender(), api.new_courier(), api.new_courier()
    db = psycopg2.connect(database_url)
    db.autocommit = True
    ids = []
    with db.cursor() as cur:
        for i in range(60):
            courier = (one, two)[i % 2]
            when = START + timedelta(seconds=rng.randrange(20 * 86400))
            cost = f"{rng.randrange(1, 100000) / 100:.2f}"
            cur.execute("""INSERT INTO deliveries (sender_id, courier_id, length_cm, width_cm,
                                                   height_cm, cost, status, assigned_at,
                                                   picked_up_at, delivered_at)
                           VALUES (%s, %s, 1, 1, 1, %s, 'delivered', %s, %s, %s) RETURNING id""",
                        (sender["sender_id"], courier["courier_id"], cost, when, when, when))
            ids.append(cur.fetchone()[0])
    yield {"one": one, "two": two, "ids": ids, "db": db, "rng": rng, "sender": sender}
    db.close()


def random_windows(rng: random.Random, n: int):
    for _ in range(n):
        a = START + timedelta(seconds=rng.randrange(-86400, 21 * 86400))
        b = a + timedelta(seconds=rng.choice([0, 1, 3600, 86399, 86400, 86401,
                                              rng.randrange(40 * 86400)]))
        yield a, b
    # Windows on midnights exactly.
    yield START, START + timedelta(days=1)
    yield START + timedelta(days=3), START + timedelta(days=3)
    yield START - timedelta(days=400), START + timedelta(days=400)


def check_windows(api, spread, n: int) -> None:
    db, rng = spread["db"], spread["rng"]
    for courier in (spread["one"], spread["two"]):
        for start, end in random_windows(rng, n):
            assert endpoint_revenue(api, courier["token"], start, end) == \
                direct_revenue(db, courier["courier_id"], start, end), (start, end)


def test_revenue_equals_the_plain_sum_for_random_windows(api, spread):
    assert rollup_matches_deliveries(spread["db"])
    check_windows(api, spread, 60)


def test_revenue_follows_reassignment_time_cost_changes_and_deletes(api, spread):
    db, rng, ids = spread["db"], spread["rng"], spread["ids"]
    one, two = spread["one"]["courier_id"], spread["two"]["courier_id"]
    with db.cursor() as cur:
        for did in ids[:10]:  # move to the other courier
            cur.execute("UPDATE deliveries SET courier_id = CASE courier_id WHEN %s THEN %s"
                        " ELSE %s END WHERE id = %s", (one, two, one, did))
        for did in ids[10:20]:  # move in time, across days
            cur.execute("UPDATE deliveries SET delivered_at = delivered_at + %s WHERE id = %s",
                        (timedelta(seconds=rng.randrange(-5 * 86400, 5 * 86400)), did))
        cur.execute("UPDATE deliveries SET cost = cost + 1 WHERE id = ANY(%s)", (ids[20:30],))
        # No longer delivered: back to picked up, or failed.
        cur.execute("UPDATE deliveries SET status = 'picked_up', delivered_at = NULL"
                    " WHERE id = ANY(%s)", (ids[30:33],))
        cur.execute("UPDATE deliveries SET status = 'failed', delivered_at = NULL"
                    " WHERE id = ANY(%s)", (ids[33:35],))
        cur.execute("DELETE FROM deliveries WHERE id = ANY(%s)", (ids[35:40],))
    assert rollup_matches_deliveries(db)
    check_windows(api, spread, 40)


def test_revenue_follows_every_action_of_the_lifecycle(api, spread):
    """Through the API: each delivery ends delivered, failed, cancelled, unassigned
    or reassigned (and then delivered by the new courier), then is moved to a
    random instant of the spread."""
    db, rng = spread["db"], spread["rng"]
    sender = spread["sender"]["token"]
    couriers = (spread["one"], spread["two"])
    with db.cursor() as cur:
        for i in range(30):
            first, second = couriers[i % 2], couriers[1 - i % 2]
            did = api.new_delivery(sender, cost=f"{rng.randrange(1, 10000) / 100:.2f}")["id"]
            path = f"/deliveries/{did}"
            assert api.put(f"/assign/{did}/{first['courier_id']}", token=sender).status == 200
            ending = rng.choice(["deliver", "fail", "cancel", "unassign", "reassign"])
            if ending == "reassign":
                assert api.put(f"/assign/{did}/{second['courier_id']}", token=sender).status == 200
                first = second
            if ending in ("deliver", "fail", "reassign"):
                assert api.post(path + "/pickup", token=first["token"]).status == 200
                action = "fail" if ending == "fail" else "deliver"
                body = {"reason": "refused"} if action == "fail" else None
                assert api.post(f"{path}/{action}", body, token=first["token"]).status == 200
            elif ending == "cancel":
                assert api.post(path + "/cancel", token=sender).status == 200
            else:
                assert api.post(path + "/unassign", token=first["token"]).status == 200
            when = START + timedelta(seconds=rng.randrange(20 * 86400))
            # Back in time, so that today's slots stay free for the next ones.
            cur.execute("UPDATE deliveries SET assigned_at = %s WHERE id = %s"
                        " AND assigned_at IS NOT NULL", (when, did))
            cur.execute("UPDATE deliveries SET delivered_at = %s WHERE id = %s"
                        " AND delivered_at IS NOT NULL", (when, did))
    assert rollup_matches_deliveries(db)
    check_windows(api, spread, 40)
