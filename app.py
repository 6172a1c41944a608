"""The delivery API: Chalice routes. Each view validates its input, makes one
database call through chalicelib.conn, and shapes the response."""

import json
import os
from urllib.parse import unquote

from chalice import (
    BadRequestError,
    Chalice,
    CORSConfig,
    ForbiddenError,
    Rate,
    Response,
)

from chalicelib import auth, config, conn, credentials, validation, web

# chalicelib.docs_page and chalicelib.webhooks are imported by the views that
# use them, on their first request: a cold start that serves neither does not
# pay for them.

config.check()  # a wrong setting stops the start, naming the variable
# `chalice package` (and `chalice local`) with no AWS configuration at all: the
# region only names the template's target, no AWS service is contacted. Only
# when no region is configured anywhere (environment or profile); on Lambda
# the runtime sets it.
if os.environ.get("AWS_CHALICE_CLI_MODE") == "true":
    import botocore.session  # there with chalice; never on Lambda's path

    if botocore.session.Session().get_config_variable("region") is None:
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

app = Chalice(app_name="delivery-api")
# Any origin may call (tokens, not cookies); browsers may send Idempotency-Key
# and read the headers clients act on.
app.api.cors = CORSConfig(allow_origin="*", allow_headers=["Idempotency-Key"],
                          expose_headers=["Retry-After", "Idempotent-Replayed", "X-Request-Id"])
# A JSON API: no media type is binary (saves Chalice a scan of its default list
# on every response; API Gateway never base64-encodes a JSON body).
app.api.binary_types = []
app.register_middleware(web.middleware, "http")
web.log_as_json(app.log)  # Chalice's own lines (an unhandled error's traceback) as JSON


def _body() -> dict:
    return validation.json_object(web.request().raw_body)


def _as_caller(fn: str, *args: object) -> list:
    """Calls an authenticated stored function with the caller's credential
    digest (refreshing an API key's last_used_at in the same statement when
    it is due), names the caller in the access log, and returns the
    function's other OUT values."""
    digest = web.bearer_digest()
    touch = credentials.touch_due(digest)
    caller_id, *rest = conn.call(fn, digest, *args, touch=digest if touch else None)
    if touch:
        credentials.touched(digest)
    web.set_user(caller_id)
    return rest


def _authed(fn: str, *args: object) -> str:
    """The body of an authenticated read."""
    return _as_caller(fn, *args)[0]


def _write(fn: str, *args: object, body: dict | None = None, status: int = 200,
           extra: tuple = ()) -> tuple[Response, tuple]:
    """Calls a write function with the request's Idempotency-Key (if any) and
    the fingerprint of the request; a replay answers as the first answer did,
    marked Idempotent-Replayed. Returns the response and the function's other
    OUT values."""
    request = web.request()
    key = validation.idempotency_key(request.headers)
    fingerprint = validation.fingerprint(request.method, request.path, request.uri_params,
                                         body or {}) if key is not None else None
    result, replayed, *rest = _as_caller(fn, *args, *extra, key, fingerprint)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return web.json_response(result, status=status, headers=headers), tuple(rest)


def _query() -> dict[str, str]:
    return web.request().query_params or {}


@app.route("/", methods=["GET"], content_types=[])
def index() -> Response:
    return Response(body="OK", headers={"Content-Type": "text/plain; charset=utf-8"})


@app.route("/health", methods=["GET"], content_types=[])
def health() -> Response:
    try:
        return web.json_response(conn.call("health")[0])
    except Exception:
        body = '{"status":"unavailable","database":"unavailable"}'
        return web.json_response(body, status=503)


@app.route("/signup", methods=["POST"])
def signup() -> Response:
    if not config.signup_enabled():
        raise ForbiddenError("signup: is switched off on this deployment")
    body = _body()
    role = validation.one_of(body, "role", ("sender", "courier"))
    username = validation.username(body)
    password = validation.password(body)
    if role == "sender":
        fields: tuple[str, ...] = (validation.name(body, "company_name", 128),)
    else:
        fields = (validation.name(body, "first_name", 64), validation.name(body, "last_name", 64),
                  validation.phone(body), validation.vehicle(body))
    refusal = auth.signup_refusal()  # before the hashing it saves
    if refusal is not None:
        return refusal
    row = conn.call(f"signup_{role}", username, credentials.hash_password(password), *fields)
    return web.json_response(row[0], status=201)


@app.route("/auth", methods=["POST"])
def login() -> Response:
    return auth.login(_body())


@app.route("/auth", methods=["DELETE"], content_types=[])
def logout() -> Response:
    _authed("logout")
    return Response(body="", status_code=204)


@app.route("/me", methods=["GET"], content_types=[])
def me() -> Response:
    return web.json_response(_authed("me"))


@app.route("/couriers", methods=["GET"], content_types=[])
def couriers() -> Response:
    return web.json_response(_authed("list_couriers", *validation.pagination(_query())))


def _create_delivery(status: int) -> Response:
    body = _body()
    length, width, height = validation.size(body)
    cost = validation.money(body, "cost")
    description = validation.text(body, "description", 0, 1000, required=False)
    external_id = validation.external_id(body)
    pickup = dropoff = None
    if body.get("pickup") is not None or body.get("dropoff") is not None:
        # Loaded on first use (phone numbers, country codes): a first-version
        # create, with no stops, does not pay for them.
        from chalicelib import stops

        found = stops.stops(body)
        pickup, dropoff = stops.row(found["pickup"]), stops.row(found["dropoff"])
    return _write("create_delivery", length, width, height, cost, description, external_id,
                  pickup, dropoff, body=body, status=status)[0]


@app.route("/deliveries", methods=["POST"])
def create_delivery() -> Response:
    return _create_delivery(201)


@app.route("/add_delivery", methods=["POST"])
def add_delivery() -> Response:
    """The first version's path for the same operation; it answered 200."""
    return _create_delivery(200)


@app.route("/deliveries/{did}", methods=["GET"], content_types=[])
def get_delivery(did: str) -> Response:
    return web.json_response(_authed("get_delivery", validation.positive_id(did, "did")))


@app.route("/deliveries/{did}", methods=["PATCH"],
           content_types=["application/json", "application/merge-patch+json"])
def patch_delivery(did: str) -> Response:
    """JSON Merge Patch (RFC 7396) of description, external_id and the stops."""
    from chalicelib import stops

    delivery_id = validation.positive_id(did, "did")
    body = _body()
    return _write("patch_delivery", delivery_id, stops.to_json(stops.patch(body)),
                  body=body)[0]


@app.route("/deliveries/sender/{sid}", methods=["GET"], content_types=[])
def sender_deliveries(sid: str) -> Response:
    sender_id = validation.positive_id(sid, "sid")
    return web.json_response(_authed(
        "list_sender_deliveries", sender_id, *validation.pagination(_query()),
        *validation.delivery_filters(_query(), with_courier=True)))


@app.route("/deliveries/courier/{cid}", methods=["GET"], content_types=[])
def courier_deliveries(cid: str) -> Response:
    courier_id = validation.positive_id(cid, "cid")
    statuses, start, end, _ = validation.delivery_filters(_query(), with_courier=False)
    return web.json_response(_authed(
        "list_courier_deliveries", courier_id, *validation.pagination(_query()),
        statuses, start, end))


@app.route("/assign/{did}/{cid}", methods=["PUT"], content_types=[])
def assign(did: str, cid: str) -> Response:
    delivery_id = validation.positive_id(did, "did")
    courier_id = validation.positive_id(cid, "cid")
    return _write("assign_delivery", delivery_id, courier_id)[0]


def _action(did: str, action: str, body: dict, reason: str | None = None,
            note: str | None = None, recipient_name: str | None = None,
            pin: str | None = None) -> Response:
    delivery_id = validation.positive_id(did, "did")
    response, (refusal,) = _write("delivery_action", delivery_id, action, reason, note,
                                  recipient_name, pin, body=body)
    if refusal is not None:  # a wrong PIN: counted (committed), then refused
        raise BadRequestError(refusal)
    return response


# The actions take an optional JSON body; a request without one may come
# without a Content-Type.
_ACTION = {"methods": ["POST"], "content_types": ["application/json", "text/plain"]}


@app.route("/deliveries/{did}/unassign", **_ACTION)
def unassign(did: str) -> Response:
    return _action(did, "unassign", validation.optional_object(web.request().raw_body))


@app.route("/deliveries/{did}/pickup", **_ACTION)
def pickup(did: str) -> Response:
    return _action(did, "pickup", validation.optional_object(web.request().raw_body))


@app.route("/deliveries/{did}/deliver", **_ACTION)
def deliver(did: str) -> Response:
    body = validation.optional_object(web.request().raw_body)
    return _action(did, "deliver", body,
                   note=validation.text(body, "note", 1, 500, required=False),
                   recipient_name=validation.text(body, "recipient_name", 1, 128,
                                                  required=False),
                   pin=validation.pin(body))


@app.route("/deliveries/{did}/fail", **_ACTION)
def fail(did: str) -> Response:
    body = validation.optional_object(web.request().raw_body)
    return _action(did, "fail", body,
                   reason=validation.one_of(body, "reason", validation.FAIL_REASONS),
                   note=validation.text(body, "note", 1, 500, required=False))


@app.route("/deliveries/{did}/cancel", **_ACTION)
def cancel(did: str) -> Response:
    body = validation.optional_object(web.request().raw_body)
    return _action(did, "cancel", body,
                   reason=validation.text(body, "reason", 1, 200, required=False))


@app.route("/deliveries/{did}/events", methods=["GET"], content_types=[])
def delivery_events(did: str) -> Response:
    return web.json_response(_authed("delivery_history", validation.positive_id(did, "did"),
                                     *validation.history_query(_query())))


@app.route("/events", methods=["GET"], content_types=[])
def events() -> Response:
    return web.json_response(_authed("event_feed", *validation.event_query(_query())))


@app.route("/me/location", methods=["PUT"])
def put_location() -> Response:
    from chalicelib import stops

    body = _body()
    lat, lng, accuracy, at = stops.position(body)
    _as_caller("put_courier_location", lat, lng, accuracy, at)
    return Response(body="", status_code=204)


def _tracked(token: str) -> str | None:
    """The recipient's view of the tracked delivery; None: 404 (unknown,
    altered and expired tokens alike)."""
    from chalicelib import tracking

    delivery_id = tracking.delivery_id(token)
    if delivery_id is None:
        return None
    return conn.call("track_status", delivery_id)[0]


_TRACK_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                  "X-Robots-Tag": "noindex"}


@app.route("/track/{token}/status", methods=["GET"], content_types=[])
def track_status(token: str) -> Response:
    status = _tracked(token)
    if status is None:
        return Response(body={"Code": "NotFoundError", "Message": "tracking: not found"},
                        status_code=404, headers=_TRACK_HEADERS)
    return web.json_response(status, headers=_TRACK_HEADERS)


@app.route("/track/{token}", methods=["GET"], content_types=[])
def track_page(token: str) -> Response:
    from chalicelib import track_page as page

    status = _tracked(token)
    return page.response(None if status is None else json.loads(status))


@app.route("/revenue/{from}/{to}", methods=["GET"], content_types=[])
def revenue(**window: str) -> Response:
    # Path parameters arrive percent-encoded ("%2B02:00" for "+02:00").
    start = validation.instant(unquote(window.get("from") or ""), "from")
    end = validation.instant(unquote(window.get("to") or ""), "to")
    if start > end:
        raise BadRequestError("from: must not be after to")
    return web.json_response(_authed("courier_revenue", start, end))


@app.route("/webhooks", methods=["POST"])
def create_webhook() -> Response:
    from chalicelib import webhooks

    body = _body()
    url = webhooks.check_url(body)  # its text only: no DNS query yet
    events = webhooks.check_events(body, validation.EVENT_TYPES)
    if config.webhook_signing_key() is None:
        raise webhooks.ServiceUnavailableError("webhooks: not configured on this deployment")
    if webhooks.needs_dns(url):
        # The one route with a second statement: a host name is resolved only
        # for a caller whose token holds, so nobody unknown makes this server
        # query DNS or learns what its names resolve to.
        _authed("token_caller")
    webhooks.check_target(url)
    response, (nonce,) = _write("create_webhook", url, events, os.urandom(16), body=body,
                                status=201)
    subscription = json.loads(response.body)
    subscription["secret"] = webhooks.secret_text(
        webhooks.secret(subscription["id"], bytes(nonce)))
    response.body = json.dumps(subscription, separators=(",", ":"))
    return response


@app.route("/webhooks", methods=["GET"], content_types=[])
def list_webhooks() -> Response:
    return web.json_response(_authed("list_webhooks"))


@app.route("/webhooks/{wid}", methods=["DELETE"], content_types=[])
def delete_webhook(wid: str) -> Response:
    _authed("delete_webhook", validation.positive_id(wid, "wid"))
    return Response(body="", status_code=204)


@app.route("/api-keys", methods=["POST"])
def create_api_key() -> Response:
    body = _body()
    name = validation.name(body, "name", 64)
    scope = validation.one_of({"scope": "write", **body}, "scope", ("read", "write"))
    expires_at = body.get("expires_at")
    if expires_at is not None:
        from chalicelib import stops

        expires_at = stops.rfc3339_instant(expires_at, "expires_at")
    key = credentials.new_api_key()
    (answer,) = _as_caller("create_api_key", name, scope, expires_at,
                           credentials.api_key_sha256(key),
                           key[:credentials.KEY_PREFIX_LENGTH])
    kept = json.loads(answer)
    shown = {"id": kept.pop("id"), "name": kept.pop("name"), "scope": kept.pop("scope"),
             "key": key, **kept}
    return web.json_response(json.dumps(shown, separators=(",", ":"), ensure_ascii=False),
                             status=201)


@app.route("/api-keys", methods=["GET"], content_types=[])
def list_api_keys() -> Response:
    return web.json_response(_authed("list_api_keys"))


@app.route("/api-keys/{kid}", methods=["DELETE"], content_types=[])
def delete_api_key(kid: str) -> Response:
    _authed("delete_api_key", validation.positive_id(kid, "kid"))
    return Response(body="", status_code=204)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="send_webhooks")
def send_webhooks(event: object) -> None:
    """The scheduled work on AWS, every minute within its 60 s timeout: the
    retention sweep (at most about 5 s), then the webhook sender (40 s; the
    attempts in flight at the end finish within their 10 s)."""
    from chalicelib import retention, webhooks

    try:
        retention.sweep(seconds=5)
    except Exception:  # never at the cost of this minute's webhooks; the next sweeps again
        app.log.exception("retention sweep failed")
    webhooks.run(seconds=40)


# ---------------------------------------------------------------- the API reference


@app.route("/docs", methods=["GET"], content_types=[])
def api_reference() -> Response:
    from chalicelib import docs_page

    return docs_page.page_response()


@app.route("/docs/{build}/{name}", methods=["GET"], content_types=[])
def docs_asset(build: str, name: str) -> Response:
    from chalicelib import docs_page

    return docs_page.asset_response(build, name)


@app.route("/openapi.json", methods=["GET"], content_types=[])
def openapi_json() -> Response:
    from chalicelib import docs_page

    return docs_page.spec_response()
