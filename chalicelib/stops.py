"""Stops: where, who and when. Validation of a delivery's pickup and dropoff
(POST /deliveries) and of a JSON Merge Patch of them (PATCH /deliveries/{did}),
each 400 naming the field by its path ("dropoff.address.country: ...").

Python judges every value a request sets (types, lengths, the country code,
the phone number, coordinates, windows against the clock) and hands the
database the values: a new delivery's stops as composite values of their
columns (`row`), a patch as normalised JSON (`to_json`); the database merges a patch
with what is stored and checks what only the whole result can tell (a required
field missing, a window's order, the dropoff window against the pickup's).

phonenumbers and iso3166 are imported on first use: a cold start that
serves no stop does not load them (docs/stops.md: their cost)."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from chalice import BadRequestError

KINDS = ("pickup", "dropoff")
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")
# field: (shortest, longest, required in an address)
_ADDRESS_LIMITS = {"line1": (1, 200, True), "line2": (1, 200, False),
                   "city": (1, 100, True), "state": (1, 100, False),
                   "postal_code": (1, 20, False)}
_POSTAL_RE = re.compile(r"[A-Za-z0-9 -]{1,20}")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()")
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
SIX_PLACES = Decimal("0.000001")
WINDOW_AHEAD = timedelta(days=30)
POSITION_AHEAD = timedelta(seconds=60)
POSITION_BEHIND = timedelta(hours=1)
# Unicode's Cc (C0, DEL, C1) and lone surrogates (Cs): one regex search is a
# tenth of looking each character's category up.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _fail(path: str, message: str) -> BadRequestError:
    return BadRequestError(f"{path}: {message}")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be an object")
    return value


def _free_text(value: Any, path: str, shortest: int, longest: int) -> str:
    """Free text (instructions): line breaks and tabs allowed; no NUL, no other
    control character, no lone surrogate."""
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    if not shortest <= len(value) <= longest:
        raise _fail(path, f"must be {shortest} to {longest} characters long")
    if _CONTROL_RE.search(value.translate(_LINE_BREAKS)):
        raise _fail(path, "must not contain control characters other than line breaks and tabs")
    return value


_LINE_BREAKS = str.maketrans("", "", "\n\r\t")


def _text(value: Any, path: str, shortest: int, longest: int) -> str:
    """A string of shortest..longest characters without control characters
    (a line break in an address line is a mistake), that PostgreSQL stores."""
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    if not shortest <= len(value) <= longest:
        raise _fail(path, f"must be {shortest} to {longest} characters long")
    if _CONTROL_RE.search(value):
        raise _fail(path, "must not contain control characters")
    if shortest and not value.strip():
        raise _fail(path, "must not be blank")
    return value


def country(value: Any, path: str) -> str:
    """An ISO 3166-1 alpha-2 code that exists, in either case; upper-case."""
    import iso3166

    if not isinstance(value, str) or len(value) != 2 \
            or value.upper() not in iso3166.countries_by_alpha2:
        raise _fail(path, "must be an ISO 3166-1 alpha-2 country code that exists (\"DE\")")
    return value.upper()


def phone(value: Any, path: str) -> str:
    """E.164 once spaces, hyphens, dots and parentheses are removed, and a
    number that is possible for its country calling code."""
    if not isinstance(value, str) or len(value) > 64:
        raise _fail(path, "must be a phone number in E.164 form (\"+4930901820\")")
    digits = value.translate(_PHONE_SEPARATORS)
    known = _possible.get(digits)
    if known is not None:  # a sender's own number comes again and again
        return known
    number = _checked_phone(digits, path)
    if len(_possible) >= 4096:
        _possible.clear()
    _possible[digits] = number
    return number


# Numbers found possible, by their digits (phonenumbers' parse costs tens of µs).
_possible: dict[str, str] = {}


def _checked_phone(digits: str, path: str) -> str:
    if not _E164_RE.fullmatch(digits):
        raise _fail(path, "must be in E.164 form: '+', the country calling code and the "
                          "number, 15 digits at most (spaces, '-', '.', '(' and ')' allowed)")
    import phonenumbers

    try:
        number = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        raise _fail(path, "has no known country calling code") from None
    if not phonenumbers.is_possible_number(number):
        raise _fail(path, f"is not a possible number for +{number.country_code}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def number(value: Any, path: str, low: int, high: int, places: Decimal) -> Decimal:
    """A JSON number from low to high, rounded half-even to places."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _fail(path, "must be a JSON number")
    result = value if isinstance(value, Decimal) else Decimal(value)
    if not result.is_finite() or not low <= result <= high:
        raise _fail(path, f"must be from {low} to {high}")
    return result.quantize(places, rounding=ROUND_HALF_EVEN)


def coordinate(value: Any, path: str, limit: int) -> Decimal:
    return number(value, path, -limit, limit, SIX_PLACES)


def instant_text(moment: datetime) -> str:
    """RFC 3339 in UTC with Z, with the fraction of a second when there is one
    (as the database's rfc3339_exact writes it, so that values compare)."""
    moment = moment.astimezone(UTC)
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T" \
           f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def rfc3339_instant(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or not _RFC3339_RE.fullmatch(value):
        raise _fail(path, "must be an RFC 3339 date-time with an offset "
                          "(\"2026-05-01T09:00:00+02:00\")")
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    dot = text.find(".")
    if dot > 0:  # beyond microseconds: cut
        digits = len(text) - 6 - dot - 1
        if digits > 6:
            text = text[:dot + 7] + text[-6:]
    try:
        return datetime.fromisoformat(text[:10] + "T" + text[11:]).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _fail(path, "is not a date-time that exists") from None


def _window_bound(value: Any, path: str, now: datetime, end: bool) -> datetime:
    moment = rfc3339_instant(value, path)
    if end and moment <= now:
        raise _fail(path, "must be in the future")
    if not end and moment > now + WINDOW_AHEAD:
        raise _fail(path, "must be at most 30 days ahead")
    return moment


def position(body: dict[str, Any], now: datetime | None = None) \
        -> tuple[Decimal, Decimal, Decimal | None, datetime | None]:
    """A courier's position (PUT /me/location): lat and lng as a stop's
    location, accuracy_m 0-10,000 (to 0.1 m), at (RFC 3339, default now) at
    most 60 s ahead and 1 hour back."""
    now = now or datetime.now(UTC)
    lat = coordinate(body.get("lat"), "lat", 90)
    lng = coordinate(body.get("lng"), "lng", 180)
    accuracy = body.get("accuracy_m")
    if accuracy is not None:
        accuracy = number(accuracy, "accuracy_m", 0, 10_000, Decimal("0.1"))
    at = body.get("at")
    if at is not None:
        at = rfc3339_instant(at, "at")
        if at > now + POSITION_AHEAD:
            raise _fail("at", "must be at most 60 seconds ahead")
        if at < now - POSITION_BEHIND:
            raise _fail("at", "must be at most 1 hour ago")
    return lat, lng, accuracy, at


# ---------------------------------------------------------------- whole stops


def _address(value: Any, path: str) -> dict[str, Any]:
    given = _object(value, path)
    address: dict[str, Any] = {}
    for field, (shortest, longest, required) in _ADDRESS_LIMITS.items():
        raw = given.get(field)
        if raw == "" and not required:
            raw = None  # an empty optional line is no line
        if raw is None:
            if required:
                raise _fail(f"{path}.{field}", "is required")
            address[field] = None
            continue
        address[field] = _text(raw, f"{path}.{field}", shortest, longest)
    if address["postal_code"] is not None and not _POSTAL_RE.fullmatch(address["postal_code"]):
        raise _fail(f"{path}.postal_code", "must be 1 to 20 letters, digits, spaces or hyphens")
    if given.get("country") is None:
        raise _fail(f"{path}.country", "is required")
    address["country"] = country(given["country"], f"{path}.country")
    return address


def _location(value: Any, path: str) -> dict[str, Decimal]:
    given = _object(value, path)
    return {"lat": coordinate(given.get("lat"), f"{path}.lat", 90),
            "lng": coordinate(given.get("lng"), f"{path}.lng", 180)}


def _contact(value: Any, path: str) -> dict[str, str | None]:
    given = _object(value, path)
    name, number = given.get("name"), given.get("phone")
    if name is None and number is None:
        raise _fail(path, "needs a name or a phone (or null: no contact)")
    return {"name": None if name is None else _text(name, f"{path}.name", 1, 128).strip(),
            "phone": None if number is None else phone(number, f"{path}.phone")}


def _window(value: Any, path: str, now: datetime) -> dict[str, datetime]:
    given = _object(value, path)
    for field in ("start", "end"):
        if given.get(field) is None:
            raise _fail(f"{path}.{field}", "is required in a window")
    start = _window_bound(given["start"], f"{path}.start", now, end=False)
    end = _window_bound(given["end"], f"{path}.end", now, end=True)
    if start >= end:
        raise _fail(f"{path}.end", "must be after the window's start")
    return {"start": start, "end": end}


def _stop(value: Any, kind: str, now: datetime) -> dict[str, Any] | None:
    if value is None:
        return None
    given = _object(value, kind)
    if given.get("address") is None:
        raise _fail(f"{kind}.address", "is required in a stop")
    stop: dict[str, Any] = {
        "address": _address(given["address"], f"{kind}.address"),
        "location": None if given.get("location") is None
        else _location(given["location"], f"{kind}.location"),
        "contact": None if given.get("contact") is None
        else _contact(given["contact"], f"{kind}.contact"),
        "instructions": None if given.get("instructions") is None
        else _free_text(given["instructions"], f"{kind}.instructions", 0, 500),
        "window": None if given.get("window") is None
        else _window(given["window"], f"{kind}.window", now),
    }
    if kind == "dropoff":
        pin = given.get("requires_pin", False)
        if not isinstance(pin, bool):
            raise _fail("dropoff.requires_pin", "must be true or false")
        stop["requires_pin"] = pin
    return stop


def stops(body: dict[str, Any], now: datetime | None = None) -> dict[str, Any] | None:
    """The pickup and dropoff of a new delivery, checked whole (each None
    when absent); None when the body has neither."""
    now = now or datetime.now(UTC)
    found = {kind: _stop(body.get(kind), kind, now) for kind in KINDS}
    if found["pickup"] is None and found["dropoff"] is None:
        return None
    pickup_window = (found["pickup"] or {}).get("window")
    dropoff_window = (found["dropoff"] or {}).get("window")
    if pickup_window and dropoff_window and dropoff_window["end"] < pickup_window["start"]:
        raise _fail("dropoff.window.end", "must not be before the pickup window's start")
    return found


# ---------------------------------------------------------------- patches


def _patch_leaf(value: Any, path: str, check) -> Any:
    """A leaf of a patch: null (remove it) or a value the check accepts."""
    return None if value is None else check(value, path)


def _patch_object(value: Any, path: str, fields: dict[str, Any],
                  required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A nested object of a patch: null removes it; an object merges, each
    key it carries checked by its own check (`fields`). A required field may
    not be set to null (the result would lack it)."""
    if value is None:
        return None
    given = _object(value, path)
    out: dict[str, Any] = {}
    for field, check in fields.items():
        if field not in given:
            continue
        if given[field] is None:
            if field in required:
                raise _fail(f"{path}.{field}", "is required and cannot be removed")
            out[field] = None
        else:
            out[field] = check(given[field], f"{path}.{field}")
    return out


def _text_check(shortest: int, longest: int):
    return lambda value, path: _text(value, path, shortest, longest)


def _optional_check(longest: int):
    """An optional line: up to `longest` characters; empty reads as null."""
    return lambda value, path: None if value == "" else _text(value, path, 1, longest)


def _postal(value: Any, path: str) -> str:
    text = _text(value, path, 1, 20)
    if not _POSTAL_RE.fullmatch(text):
        raise _fail(path, "must be 1 to 20 letters, digits, spaces or hyphens")
    return text


def _stop_patch(value: Any, kind: str, now: datetime) -> dict[str, Any] | None:
    if value is None:
        return None
    given = _object(value, kind)
    address_fields = {"line1": _text_check(1, 200), "line2": _optional_check(200),
                      "city": _text_check(1, 100), "state": _optional_check(100),
                      "postal_code": _postal, "country": country}
    fields = {
        "address": lambda v, p: _patch_object(v, p, address_fields,
                                              required=("line1", "city", "country")),
        "location": lambda v, p: _patch_object(v, p, {
            "lat": lambda x, q: coordinate(x, q, 90), "lng": lambda x, q: coordinate(x, q, 180)},
            required=("lat", "lng")),
        "contact": lambda v, p: _patch_object(v, p, {
            "name": lambda x, q: _text(x, q, 1, 128).strip(), "phone": phone}),
        "instructions": lambda v, p: _free_text(v, p, 0, 500),
        "window": lambda v, p: _patch_object(v, p, {
            "start": lambda x, q: _window_bound(x, q, now, end=False),
            "end": lambda x, q: _window_bound(x, q, now, end=True)},
            required=("start", "end")),
    }
    if kind == "dropoff":
        fields["requires_pin"] = _pin_flag
    if "address" in given and given["address"] is None:
        raise _fail(f"{kind}.address", "is required in a stop (null the stop to remove it)")
    return _patch_object(given, kind, fields, required=("address",))


def _pin_flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "must be true or false")
    return value


def patch(body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A JSON Merge Patch (RFC 7396) of description, external_id, pickup and
    dropoff, every value it sets checked; keys it does not know are left out
    (as everywhere in this API). The database merges it with the delivery."""
    from chalicelib import validation

    now = now or datetime.now(UTC)
    out: dict[str, Any] = {}
    if "description" in body:
        out["description"] = validation.text(body, "description", 0, 1000, required=False)
    if "external_id" in body:
        out["external_id"] = validation.external_id(body)
    for kind in KINDS:
        if kind in body:
            out[kind] = _stop_patch(body[kind], kind, now)
    window_pair = [((out.get(k) or {}).get("window") or {}) for k in KINDS]
    if window_pair[0].get("start") and window_pair[1].get("end") \
            and window_pair[1]["end"] < window_pair[0]["start"]:
        raise _fail("dropoff.window.end", "must not be before the pickup window's start")
    return out


# ---------------------------------------------------------------- to the database


def _json_value(value: Any) -> Any:
    """json.dumps' default for what a checked stop or patch holds."""
    if isinstance(value, datetime):
        return instant_text(value)
    if isinstance(value, Decimal):
        # At most 3 + 6 digits: a float carries them exactly and JSON writes
        # the shortest digits that read back as it.
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def row(stop: dict[str, Any] | None) -> str | None:
    """A checked stop of a new delivery as the database's stop_input, in the
    text form of a composite value: one string parameter, which the server
    reads with the type's input function, rather than a row constructor of
    14 values for psycopg2 to adapt one by one and the server to parse and
    coerce (docs/benchmark.md, "Stops"). None for none."""
    if stop is None:
        return None
    address, location = stop["address"], stop["location"] or {}
    contact, window = stop["contact"] or {}, stop["window"] or {}
    start, end, pin = window.get("start"), window.get("end"), stop.get("requires_pin")
    return composite((address["line1"], address["line2"], address["city"], address["state"],
                      address["postal_code"], address["country"], location.get("lat"),
                      location.get("lng"), contact.get("name"), contact.get("phone"),
                      stop["instructions"], start and start.isoformat(),
                      end and end.isoformat(), None if pin is None else "tf"[not pin]))


def composite(fields: tuple) -> str:
    """PostgreSQL's text form of a composite value: each field double-quoted
    with its backslashes and double quotes escaped by a backslash, a NULL
    field empty."""
    return "(" + ",".join("" if value is None else '"' + _escaped(str(value)) + '"'
                          for value in fields) + ")"


def _escaped(text: str) -> str:
    if "\\" in text or '"' in text:
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text


def to_json(value: dict[str, Any] | None) -> str | None:
    """The JSON text the database reads of a checked patch (windows as
    RFC 3339 in UTC, coordinates as their six-decimal digits)."""
    if value is None:
        return None
    return json.dumps(value, default=_json_value, separators=(",", ":"), ensure_ascii=False)
