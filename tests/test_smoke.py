def test_liveness_says_ok(api):
    reply = api.get("/")
    assert reply.status == 200 and reply.content == b"OK"


def test_demo_sender_can_log_in(api):
    reply = api.post("/auth", {"username": "sender", "password": "pass"})
    assert reply.status == 200
    assert reply.json["sender_id"] == 1 and reply.json["role"] == "sender"


def test_http_liveness(live):
    reply = live["api"].get("/health")
    assert reply.status == 200 and reply.json == {"status": "ok", "database": "ok"}
