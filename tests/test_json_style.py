"""One JSON style in every answer: compact (no space after `:` or `,`), UTF-8
as it is, whether the database, Python or Chalice wrote it."""

import json

from chalicelib import tracking
from tests.conftest import unique


def compact(reply) -> bool:
    text = reply.content.decode()
    return text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def test_every_kind_of_answer_is_compact_json(api, sender_token, courier_token):
    name = unique("Sty ") + " Émile"
    signup = api.post("/signup", {"username": unique("style"), "password": "correct horse",
                                  "role": "sender", "company_name": name})
    login = api.post("/auth", {"username": "sender", "password": "pass"})
    made = api.post("/deliveries", {"size": "1x2x3", "cost": 5, "description": "café"},
                    token=sender_token)
    did = made.json["id"]
    key = api.post("/api-keys", {"name": "clé"}, token=sender_token)
    replies = {
        "health": api.get("/health"),
        "signup": signup,
        "login": login,
        "me (sender)": api.get("/me", token=sender_token),
        "me (courier)": api.get("/me", token=courier_token),
        "couriers": api.get("/couriers", token=sender_token),
        "create": made,
        "get": api.get(f"/deliveries/{did}", token=sender_token),
        "list": api.get("/deliveries/sender/1", token=sender_token),
        "history": api.get(f"/deliveries/{did}/events", token=sender_token),
        "feed": api.get("/events?limit=3", token=sender_token),
        "revenue": api.get("/revenue/2020-01-01/2100-01-01", token=courier_token),
        "webhook": api.post("/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"]},
                            token=sender_token),
        "webhooks": api.get("/webhooks", token=sender_token),
        "api key": key,
        "api keys": api.get("/api-keys", token=sender_token),
        "track": api.get(f"/track/{tracking.token(did)}/status"),
        "400": api.post("/deliveries", {"size": "big"}, token=sender_token),
        "401": api.get("/me"),
        "404": api.get("/deliveries/999999999", token=sender_token),
    }
    assert signup.status == 201 and key.status == 201 and login.status == 200
    loose = [what for what, reply in replies.items() if not compact(reply)]
    assert not loose, {what: replies[what].content[:200] for what in loose}
    assert "clé" in key.content.decode()
