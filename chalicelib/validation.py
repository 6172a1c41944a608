"""Input validation: each function returns a clean value or raises a 400 naming the field."""

import base64
import hashlib
import json
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from chalice import BadRequestError

from chalicelib.errors import PayloadTooLargeError

# A delivery with both stops at their longest, in characters JSON escapes,
# is about 42 kB when every character is sent as a \u escape.
MAX_BODY_BYTES = 64 * 1024
MAX_ID = 2**63 - 1
MAX_PAGE = 100_000
MAX_COST = Decimal("1000000.00")
VEHICLES = ("bicycle", "scooter", "motorcycle", "car", "van", "truck")
STATUSES = ("created", "assigned", "picked_up", "delivered", "failed", "cancelled")
EVENT_TYPES = tuple(f"delivery.{status}" for status in
                    ("created", "assigned", "unassigned", "picked_up", "delivered", "failed",
                     "cancelled", "updated"))
FAIL_REASONS = ("recipient_unavailable", "address_invalid", "refused", "damaged", "other")

_USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,40}")
_PHONE_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_SIZE_RE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})")
_DIGITS_RE = re.compile(r"[0-9]{1,19}")
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9._~:-]{1,64}")
_DECIMAL_RE = re.compile(r"[0-9]{1,16}(\.[0-9]{1,16})?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BASIC_DATE_RE = re.compile(r"[0-9]{8}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})")


MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 100


class _BodyError(ValueError):
    """A body that is JSON by syntax but not one this service reads."""


def _reject_constant(name: str) -> None:
    raise _BodyError(f"body: {name} is not a number")


class OutOfRange:
    """A JSON number too long or too large to read; the field's own check
    refuses it, naming the field (a body may carry one in a field it ignores)."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _parse_int(text: str) -> int | OutOfRange:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else OutOfRange(text)


def _parse_float(text: str) -> Decimal | OutOfRange:
    if len(text) > MAX_NUMBER_CHARS:
        return OutOfRange(text)
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds
        return OutOfRange(text)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in value (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def json_object(raw: bytes | None) -> dict[str, Any]:
    """The request body as a JSON object: UTF-8 without a byte order mark,
    nested at most MAX_JSON_DEPTH deep. Numbers are Decimal or int; one of
    over MAX_NUMBER_CHARS characters, or beyond Decimal, is OutOfRange."""
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body: larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        raise BadRequestError("body: a JSON object is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("body: is not valid UTF-8") from None
    if text.startswith("\ufeff"):
        raise BadRequestError("body: must be UTF-8 without a byte order mark")
    try:
        value = json.loads(text, parse_float=_parse_float, parse_int=_parse_int,
                           parse_constant=_reject_constant)
    except _BodyError as exc:
        raise BadRequestError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"body: not valid JSON ({exc.msg} at line {exc.lineno} "
                              f"column {exc.colno})") from None
    except RecursionError:
        raise BadRequestError(f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise BadRequestError("body: not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequestError("body: must be a JSON object")
    # Each level of nesting opens a bracket: a text with few brackets (strings
    # may hold some too) cannot nest deeper, and needs no walk.
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise BadRequestError(f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def text(body: dict[str, Any], field: str, min_len: int, max_len: int,
         required: bool = True) -> str | None:
    """A string field of min_len..max_len characters that Postgres can store."""
    value = body.get(field)
    if value is None:
        if required:
            raise BadRequestError(f"{field}: is required")
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"{field}: must be a string")
    if not min_len <= len(value) <= max_len:
        raise BadRequestError(f"{field}: must be {min_len} to {max_len} characters long")
    return storable(value, field)


def storable(value: str, field: str) -> str:
    """A string Postgres can take: no NUL characters, no lone surrogates."""
    if "\x00" in value:
        raise BadRequestError(f"{field}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError(f"{field}: is not valid Unicode") from None
    return value


def name(body: dict[str, Any], field: str, max_len: int) -> str:
    """A display name, trimmed: no control characters (ANSI escapes, line
    breaks) and at least one visible character (not only spaces or
    zero-width characters)."""
    value = text(body, field, 1, max_len)
    assert value is not None
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise BadRequestError(f"{field}: must not contain control characters")
    if not any(unicodedata.category(ch)[0] not in "ZC" for ch in value):
        raise BadRequestError(f"{field}: must not be blank")
    return value.strip()


def username(body: dict[str, Any]) -> str:
    value = body.get("username")
    if not isinstance(value, str) or not _USERNAME_RE.fullmatch(value):
        raise BadRequestError(
            "username: must be 3 to 40 characters of A-Z, a-z, 0-9, '_', '.', '-'")
    return value


def password(body: dict[str, Any]) -> str:
    value = text(body, "password", 8, 128)
    assert value is not None
    return value


def phone(body: dict[str, Any]) -> str:
    value = body.get("phone")
    if not isinstance(value, str) or not _PHONE_RE.fullmatch(value):
        raise BadRequestError("phone: must be in E.164 form, '+' and 7 to 15 digits")
    return value


def vehicle(body: dict[str, Any]) -> str:
    value = body.get("vehicle")
    if value not in VEHICLES:
        raise BadRequestError(f"vehicle: must be one of {', '.join(VEHICLES)}")
    return value


def one_of(body: dict[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = body.get(field)
    if value not in choices:
        raise BadRequestError(f"{field}: must be one of {', '.join(choices)}")
    return value


def size(body: dict[str, Any]) -> tuple[int, int, int]:
    """'LxWxH' in whole centimetres, each 1-1000."""
    value = body.get("size")
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise BadRequestError("size: must be 'LxWxH' in whole centimetres, e.g. '22x33x44'")
    dims = tuple(int(part) for part in match.groups())
    if not all(1 <= d <= 1000 for d in dims):
        raise BadRequestError("size: each dimension must be 1 to 1000 centimetres")
    return dims  # type: ignore[return-value]


def money(body: dict[str, Any], field: str) -> Decimal:
    """> 0, at most 1,000,000.00, at most two decimals; a JSON number or decimal string."""
    value = body.get(field)
    if value is None:
        raise BadRequestError(f"{field}: is required")
    if isinstance(value, bool):
        raise BadRequestError(f"{field}: must be a number or a decimal string")
    if isinstance(value, OutOfRange):
        raise BadRequestError(f"{field}: must be at most 1000000.00")
    if isinstance(value, str):
        if not _DECIMAL_RE.fullmatch(value):
            raise BadRequestError(f"{field}: must be a decimal like '23.45'")
        value = Decimal(value)
    elif isinstance(value, int):
        value = Decimal(value)
    elif not isinstance(value, Decimal):
        raise BadRequestError(f"{field}: must be a number or a decimal string")
    try:
        if not value.is_finite() or value <= 0:
            raise BadRequestError(f"{field}: must be greater than 0")
        if value > MAX_COST:
            raise BadRequestError(f"{field}: must be at most 1000000.00")
        if value != value.quantize(Decimal("0.01")):
            raise BadRequestError(f"{field}: must have at most two decimals")
    except InvalidOperation:
        raise BadRequestError(f"{field}: must be a number or a decimal string") from None
    return value.quantize(Decimal("0.01"))


def positive_id(value: str | None, field: str) -> int:
    """A path parameter that is a positive 64-bit integer."""
    if value is None or not _DIGITS_RE.fullmatch(value) or not 1 <= int(value) <= MAX_ID:
        raise BadRequestError(f"{field}: must be a positive integer")
    return int(value)


def _query_int(params: dict[str, str], field: str, default: int, low: int, high: int) -> int:
    raw = params.get(field)
    if raw is None:
        return default
    if not _DIGITS_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequestError(f"{field}: must be an integer from {low} to {high}")
    return int(raw)


def pagination(params: dict[str, str] | None) -> tuple[int | None, int, bytes | None]:
    """(page, per_page, cursor) from the query string: page mode (page, default
    0) or cursor mode (after, an opaque cursor of a previous answer), not both."""
    params = params or {}
    per_page = _query_int(params, "per_page", 10, 1, 100)
    if "after" not in params:
        return _query_int(params, "page", 0, 0, MAX_PAGE), per_page, None
    if "page" in params:
        raise BadRequestError("after: cannot be combined with page")
    raw = params["after"]
    if not _CURSOR_RE.fullmatch(raw):
        raise BadRequestError("after: is not a cursor of this list")
    return None, per_page, base64.urlsafe_b64decode(raw + "=")


def delivery_filters(params: dict[str, str] | None, with_courier: bool
                     ) -> tuple[list[str] | None, datetime | None, datetime | None, int | None]:
    """(statuses, created_from, created_to, courier_id) of a delivery list."""
    params = params or {}
    statuses = _query_choices(params, "status", STATUSES)
    start = instant(params["created_from"], "created_from") if "created_from" in params else None
    end = instant(params["created_to"], "created_to") if "created_to" in params else None
    if start is not None and end is not None and start > end:
        raise BadRequestError("created_from: must not be after created_to")
    courier = None
    if with_courier and "courier_id" in params:
        courier = _query_int(params, "courier_id", 0, 1, MAX_ID)
    return statuses, start, end, courier


def event_query(params: dict[str, str] | None) -> tuple[int, int, list[str] | None]:
    """(after, limit, types) of the event feed."""
    params = params or {}
    types = _query_choices(params, "type", EVENT_TYPES)
    return _query_int(params, "after", 0, 0, MAX_ID), _query_int(params, "limit", 50, 1, 100), types


def history_query(params: dict[str, str] | None) -> tuple[int, int]:
    """(after, limit) of a delivery's history: by default its first 100 events
    (a history without edits has fewer: see max_assignments in scheme.sql)."""
    params = params or {}
    return _query_int(params, "after", 0, 0, MAX_ID), _query_int(params, "limit", 100, 1, 100)


def _query_choices(params: dict[str, str], field: str, choices) -> list[str] | None:
    """A comma-separated list of known values, or None when the parameter is absent."""
    if field not in params:
        return None
    values = params[field].split(",")
    if not all(value in choices for value in values):
        raise BadRequestError(f"{field}: must be one or more of {', '.join(choices)}, "
                              "comma-separated")
    return values


def external_id(body: dict[str, Any]) -> str | None:
    """The sender's own reference: optional, 1-64 of A-Z a-z 0-9 - _ . ~ :"""
    value = body.get("external_id")
    if value is None:
        return None
    if not isinstance(value, str) or not _EXTERNAL_ID_RE.fullmatch(value):
        raise BadRequestError(
            "external_id: must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.', '~', ':'")
    return value


def pin(body: dict[str, Any]) -> str | None:
    """A dropoff PIN given to deliver: 4 digits, as a string."""
    value = body.get("pin")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 4 or not value.isascii() \
            or not value.isdigit():
        raise BadRequestError('pin: must be the 4 digits of the dropoff PIN, as a string ("0427")')
    return value


def optional_object(raw: bytes | None) -> dict[str, Any]:
    """An optional JSON object body: none, or an empty one, reads as {}."""
    if not raw or not raw.strip():
        return {}
    return json_object(raw)


def instant(value: str | None, field: str) -> datetime:
    """Unix seconds, an ISO 8601 date (midnight UTC; extended 2024-01-31 or, for
    exactly eight digits, basic 20240131), or a date-time with an offset."""
    raw = value or ""
    try:
        if _BASIC_DATE_RE.fullmatch(raw):
            # Eight digits as seconds would be a moment of 1970-1973; as a
            # date they are what a person means. When they are no date, seconds.
            try:
                day = datetime.strptime(raw, "%Y%m%d")
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            except ValueError:
                pass
        if _DIGITS_RE.fullmatch(raw):
            return datetime.fromtimestamp(int(raw), tz=UTC)
        if _DATE_RE.fullmatch(raw):
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if _DATETIME_RE.fullmatch(raw):
            iso = raw[:10] + "T" + raw[11:]
            iso = re.sub(r"[Zz]$", "+00:00", iso)
            iso = re.sub(r"([+-][0-9]{2})([0-9]{2})$", r"\1:\2", iso)
            return datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise BadRequestError(
        f"{field}: must be Unix seconds, a date (2024-01-31 or 20240131) or a date-time "
        "with an offset (2024-01-31T12:00:00Z)")


_IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")


def idempotency_key(headers: Any) -> str | None:
    """The Idempotency-Key header: 1-255 printable ASCII, optionally in double quotes."""
    raw = headers.get("idempotency-key")
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 3 and raw[0] == raw[-1] == '"' else raw
    if not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise BadRequestError("Idempotency-Key: must be 1 to 255 printable ASCII characters, "
                              "optionally in double quotes")
    return key


def _canonical(value: Any) -> Any:
    if isinstance(value, OutOfRange):
        return {"$number": value.text}
    if isinstance(value, Decimal):
        return {"$number": str(value)}
    raise TypeError(type(value).__name__)


def fingerprint(method: str, template: str, params: dict[str, str] | None,
                body: dict[str, Any]) -> bytes:
    """What makes two requests the same request: method, path and JSON body,
    whatever the key order and whitespace."""
    text = json.dumps([method, template, params or {}, body], sort_keys=True,
                      separators=(",", ":"), default=_canonical, ensure_ascii=True)
    return hashlib.sha256(text.encode()).digest()
