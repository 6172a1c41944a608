"""Input validation: each function returns a clean value or raises a 400 naming the field."""

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from chalice import BadRequestError

from chalicelib.errors import PayloadTooLargeError

MAX_BODY_BYTES = 16 * 1024
MAX_ID = 2**63 - 1
MAX_PAGE = 100_000
MAX_COST = Decimal("1000000.00")
VEHICLES = ("bicycle", "scooter", "motorcycle", "car", "van", "truck")

_USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,40}")
_PHONE_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_SIZE_RE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})")
_DIGITS_RE = re.compile(r"[0-9]{1,19}")
_DECIMAL_RE = re.compile(r"[0-9]{1,16}(\.[0-9]{1,16})?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def json_object(raw: bytes | None) -> dict[str, Any]:
    """The request body as a JSON object."""
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body: larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        raise BadRequestError("body: a JSON object is required")
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequestError("body: not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise BadRequestError("body: must be a JSON object")
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
    """A required, non-blank display name."""
    value = text(body, field, 1, max_len)
    assert value is not None
    if not value.strip():
        raise BadRequestError(f"{field}: must not be blank")
    return value


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


def pagination(params: dict[str, str] | None) -> tuple[int, int]:
    """(page, per_page) from the query string."""
    params = params or {}
    return (_query_int(params, "page", 0, 0, MAX_PAGE),
            _query_int(params, "per_page", 10, 1, 100))


def instant(value: str | None, field: str) -> datetime:
    """Unix seconds, an ISO 8601 date (midnight UTC), or a date-time with an offset."""
    raw = value or ""
    try:
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
        f"{field}: must be Unix seconds, a date (2024-01-31) or a date-time with an offset "
        "(2024-01-31T12:00:00Z)")
