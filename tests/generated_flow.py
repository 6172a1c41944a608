"""A whole delivery through the Python client that openapi-python-client
generates from openapi.yaml, as an integrator would write it.

tests/test_generated_client.py generates the client as the package
`delivery_api_client` into a temporary folder, copies this module next to it,
type-checks both with `mypy --strict`, and calls run() against a running
server. Nothing here is a test by itself (pytest does not collect it), and it
imports nothing of the service: only the generated package, so that a
document the generator reads wrongly, or types too loosely, fails mypy here.
The assert_type() calls pin the types the document promises (mypy checks them;
at run time they do nothing): a field that became Any, or lost its null, or an
enum that became a plain string, is a mypy error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar, assert_type

from delivery_api_client import AuthenticatedClient, Client
from delivery_api_client.api.api_keys import create_api_key, delete_api_key, list_api_keys
from delivery_api_client.api.couriers import courier_revenue
from delivery_api_client.api.deliveries import (
    assign_delivery,
    create_delivery,
    deliver_delivery,
    get_delivery,
    patch_delivery,
    pick_up_delivery,
)
from delivery_api_client.api.tracking import put_location, track_status
from delivery_api_client.api.users import login, me
from delivery_api_client.models import (
    AddressInput,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRequest,
    ApiKeyScope,
    ContactInput,
    CourierLogin,
    CourierMe,
    DeliverRequest,
    Delivery,
    DeliveryInput,
    DeliveryPatch,
    DeliveryStatus,
    Dropoff,
    DropoffInput,
    Error,
    ErrorCode,
    Location,
    LoginRequest,
    PositionInput,
    Revenue,
    SenderLogin,
    SenderMe,
    StopInput,
    StopPatch,
    TrackedDropoff,
    TrackingStatus,
    Vehicle,
)

T = TypeVar("T")

COST = Decimal("23.45")
UNKNOWN_DELIVERY = 999_999_999


@dataclass(frozen=True)
class Flow:
    """What run() saw, for the test to check beyond run()'s own assertions."""

    sender: SenderLogin
    courier: CourierLogin
    created: Delivery
    replayed_header: str | None
    delivered: Delivery
    revenue_before: Revenue
    revenue_after: Revenue
    not_found: Error
    with_stops: Delivery
    patched: Delivery
    tracked: TrackingStatus


def expect(value: object, kind: type[T], what: str) -> T:
    """value as a kind, or an AssertionError that shows what came instead."""
    if not isinstance(value, kind):
        raise AssertionError(f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def run(base_url: str) -> Flow:
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)

    # The login result is a union discriminated by role: each side has its id.
    answer = login.sync(client=anonymous, body=LoginRequest(username="sender", password="pass"))
    assert_type(answer, SenderLogin | CourierLogin | Error | None)
    sender = expect(answer, SenderLogin, "POST /auth as sender")
    courier = expect(login.sync(client=anonymous,
                                body=LoginRequest(username="courier", password="pass")),
                     CourierLogin, "POST /auth as courier")
    sender_id = assert_type(sender.sender_id, int)
    courier_id = assert_type(courier.courier_id, int)
    assert_type(sender.courier_id, None)
    assert_type(courier.sender_id, None)
    assert_type(sender.expires_at, datetime)
    assert sender.courier_id is None and courier.sender_id is None
    assert sender.expires_at.tzinfo is not None and sender.expires_at > datetime.now(UTC)

    as_sender = AuthenticatedClient(base_url=base_url, token=sender.token,
                                    raise_on_unexpected_status=True)
    as_courier = AuthenticatedClient(base_url=base_url, token=courier.token,
                                     raise_on_unexpected_status=True)

    caller = me.sync(client=as_sender)
    assert_type(caller, SenderMe | CourierMe | Error | None)
    sender_me = expect(caller, SenderMe, "GET /me as sender")
    courier_me = expect(me.sync(client=as_courier), CourierMe, "GET /me as courier")
    assert sender_me.sender.id == sender_id and sender_me.courier is None
    assert courier_me.courier.id == courier_id and isinstance(courier_me.courier.vehicle, Vehicle)

    # Revenue in a window around now, before and after the delivery.
    now = datetime.now(UTC)
    window_from = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window_to = str(int((now + timedelta(hours=1)).timestamp()))
    revenue_before = expect(courier_revenue.sync(window_from, window_to, client=as_courier),
                            Revenue, "GET /revenue before")

    # Create with an Idempotency-Key; the same request again is the same delivery.
    key = f"generated-client-{uuid.uuid4().hex}"
    new = DeliveryInput(size="22x33x44", cost=str(COST), description="fragile",
                        external_id=f"gen-{uuid.uuid4().hex[:12]}")
    first = create_delivery.sync_detailed(client=as_sender, body=new, idempotency_key=key)
    created = expect(first.parsed, Delivery, "POST /deliveries")
    assert_type(created.courier_id, int | None)
    assert_type(created.assigned_at, datetime | None)
    assert_type(created.created_at, datetime)
    assert_type(created.status, DeliveryStatus)
    assert_type(created.cost, str)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = create_delivery.sync_detailed(client=as_sender, body=new, idempotency_key=key)
    replayed = expect(again.parsed, Delivery, "POST /deliveries again")
    assert replayed.id == created.id and replayed.created_at == created.created_at
    assert created.status is DeliveryStatus.CREATED and created.courier_id is None
    assert created.sender_id == sender_id and Decimal(created.cost) == COST
    assert created.assigned_at is None and created.delivered_at is None

    assigned = expect(assign_delivery.sync(created.id, 1, client=as_sender,
                                           idempotency_key=f"{key}-assign"),
                      Delivery, "PUT /assign/{did}/1")
    assert assigned.status is DeliveryStatus.ASSIGNED and assigned.courier_id == courier_id
    assert assigned.assigned_at is not None and assigned.assigned_at >= created.created_at

    picked = expect(pick_up_delivery.sync(created.id, client=as_courier),
                    Delivery, "POST /deliveries/{did}/pickup")
    assert picked.status is DeliveryStatus.PICKED_UP and picked.picked_up_at is not None

    delivered = expect(deliver_delivery.sync(created.id, client=as_courier,
                                             body=DeliverRequest(recipient_name="Ann Lee",
                                                                 note="at the door")),
                       Delivery, "POST /deliveries/{did}/deliver")
    assert delivered.status is DeliveryStatus.DELIVERED and delivered.delivered_at is not None

    revenue_after = expect(courier_revenue.sync(window_from, window_to, client=as_courier),
                           Revenue, "GET /revenue after")
    assert_type(revenue_after.revenue, str)
    assert_type(revenue_after.from_, datetime)
    assert revenue_after.courier_id == courier_id
    assert revenue_after.deliveries == revenue_before.deliveries + 1
    assert Decimal(revenue_after.revenue) - Decimal(revenue_before.revenue) == COST

    # A 4xx is parsed into the generated Error, its Code an ErrorCode.
    not_found = expect(get_delivery.sync(UNKNOWN_DELIVERY, client=as_sender),
                       Error, "GET /deliveries/999999999")
    assert_type(not_found.code, ErrorCode)
    assert not_found.code is ErrorCode.NOTFOUNDERROR, not_found
    assert str(UNKNOWN_DELIVERY) in not_found.message

    # A delivery with stops, then a merge patch of its dropoff.
    stops = DeliveryInput(
        size="10x20x30", cost="9.90",
        pickup=StopInput(address=AddressInput(line1="Unter den Linden 1", city="Berlin",
                                              country="de"),
                         location=Location(lat=52.517037, lng=13.38886)),
        dropoff=DropoffInput(address=AddressInput(line1="Marienplatz 8", city="München",
                                                  country="DE", line2="3. OG"),
                             location=Location(lat=48.137154, lng=11.576124),
                             contact=ContactInput(name="Ann Lee", phone="+49 89 23300"),
                             requires_pin=True))
    with_stops = expect(create_delivery.sync(client=as_sender, body=stops), Delivery,
                        "POST /deliveries with stops")
    assert_type(with_stops.distance_m, int | None)
    dropoff = expect(with_stops.dropoff, Dropoff, "the dropoff")
    assert dropoff.address.country == "DE" and dropoff.requires_pin is True
    assert with_stops.distance_m is not None and 503_000 < with_stops.distance_m < 506_000
    change = StopPatch.from_dict({"instructions": "Call on arrival", "address": {"line2": None}})
    patched = expect(patch_delivery.sync(with_stops.id, client=as_sender,
                                         body=DeliveryPatch(dropoff=change)),
                     Delivery, "PATCH /deliveries/{did}")
    patched_dropoff = expect(patched.dropoff, Dropoff, "the patched dropoff")
    assert patched_dropoff.instructions == "Call on arrival"
    assert patched_dropoff.address.line2 is None
    assert patched_dropoff.address.line1 == "Marienplatz 8"

    # The courier's position (204, no body), and the recipient's view behind
    # the tracking URL, which needs no login.
    moved = put_location.sync_detailed(client=as_courier,
                                       body=PositionInput(lat=52.52, lng=13.405, accuracy_m=7))
    assert moved.status_code == 204, moved
    assert_type(with_stops.tracking_url, str | None)
    assert_type(patched_dropoff.pin, str | None)
    url = expect(with_stops.tracking_url, str, "the tracking URL")
    assert url.startswith(base_url + "/track/"), url
    tracked = expect(track_status.sync(url.rsplit("/", 1)[1], client=anonymous),
                     TrackingStatus, "GET /track/{token}/status")
    assert_type(tracked.eta, datetime | None)
    tracked_dropoff = expect(tracked.dropoff, TrackedDropoff, "the tracked dropoff")
    assert tracked.status is DeliveryStatus.CREATED and tracked.courier is None
    assert tracked_dropoff.city == "München" and tracked_dropoff.pin == patched_dropoff.pin
    assert tracked_dropoff.pin is not None and len(tracked_dropoff.pin) == 4

    return Flow(sender=sender, courier=courier, created=created,
                replayed_header=again.headers.get("Idempotent-Replayed"),
                delivered=delivered, revenue_before=revenue_before,
                revenue_after=revenue_after, not_found=not_found,
                with_stops=with_stops, patched=patched, tracked=tracked)


@dataclass(frozen=True)
class KeyFlow:
    """What an integration with API keys saw."""
    write_key: ApiKeyCreated
    read_key: ApiKeyCreated
    listed: ApiKeyList
    created_with_key: Delivery
    read_with_key: Delivery
    refused_write: Error
    after_delete: Error


def run_with_keys(base_url: str) -> KeyFlow:
    """A person logs in once and makes keys; the integration then works with
    keys alone: a write key creates and reads a delivery, a read key reads
    and is refused a write, and a deleted key is refused."""
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    person = expect(login.sync(client=anonymous,
                               body=LoginRequest(username="sender", password="pass")),
                    SenderLogin, "POST /auth as sender")
    as_person = AuthenticatedClient(base_url=base_url, token=person.token,
                                    raise_on_unexpected_status=True)
    write_key = expect(create_api_key.sync(client=as_person,
                                           body=ApiKeyRequest(name="shop backend")),
                       ApiKeyCreated, "POST /api-keys")
    assert_type(write_key.key, str)
    assert_type(write_key.last_used_at, datetime | None)
    assert write_key.scope is ApiKeyScope.WRITE and write_key.key.startswith(write_key.prefix)
    read_key = expect(create_api_key.sync(
        client=as_person, body=ApiKeyRequest(name="dashboard", scope=ApiKeyScope.READ,
                                             expires_at=datetime.now(UTC) + timedelta(days=30))),
        ApiKeyCreated, "POST /api-keys (read)")
    assert read_key.expires_at is not None and read_key.expires_at > datetime.now(UTC)

    as_shop = AuthenticatedClient(base_url=base_url, token=write_key.key,
                                  raise_on_unexpected_status=True)
    as_dashboard = AuthenticatedClient(base_url=base_url, token=read_key.key,
                                       raise_on_unexpected_status=True)
    order = DeliveryInput(size="10x10x10", cost="5.00", external_id=f"key-{uuid.uuid4().hex[:12]}")
    created = expect(create_delivery.sync(client=as_shop, body=order), Delivery,
                     "POST /deliveries with a write key")
    read = expect(get_delivery.sync(created.id, client=as_dashboard), Delivery,
                  "GET /deliveries/{did} with a read key")
    refused = expect(create_delivery.sync(client=as_dashboard, body=order), Error,
                     "POST /deliveries with a read key")
    listed = expect(list_api_keys.sync(client=as_person), ApiKeyList, "GET /api-keys")

    for made in (write_key, read_key):
        gone = delete_api_key.sync_detailed(made.id, client=as_person)
        assert gone.status_code == 204, gone
    after = expect(get_delivery.sync(created.id, client=as_shop), Error,
                   "GET /deliveries/{did} with a deleted key")
    return KeyFlow(write_key=write_key, read_key=read_key, listed=listed,
                   created_with_key=created, read_with_key=read, refused_write=refused,
                   after_delete=after)
