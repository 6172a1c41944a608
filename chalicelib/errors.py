"""HTTP errors in Chalice's standard body, and the one table that decides what
each database error means for the client."""

from typing import NamedTuple

from chalice import (
    BadRequestError,
    ChaliceViewError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Response,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableEntityError,
)


class PayloadTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


class ServiceUnavailableError(ChaliceViewError):
    STATUS_CODE = 503


class Outcome(NamedTuple):
    """What a database error becomes."""
    error: type[ChaliceViewError]
    message: str | None = None   # None: the database's own message, which names the field
    retry: bool = False          # the statement was rolled back whole: run it once more
    reconnect: bool = False      # the connection is unusable: drop it


_BUSY = "database: busy, try again"
_UNAVAILABLE = "database: unavailable"

# SQLSTATE (exact code, else its two-character class) -> outcome. The DLxxx
# codes are the functions' own refusals (scheme.sql, "errors"); the rest are
# PostgreSQL's. A code not in this table is a bug of ours: a 500.
SQLSTATE_TABLE: dict[str, Outcome] = {
    "DL400": Outcome(BadRequestError),
    "DL401": Outcome(UnauthorizedError),
    "DL403": Outcome(ForbiddenError),
    "DL404": Outcome(NotFoundError),
    "DL409": Outcome(ConflictError),
    "DL422": Outcome(UnprocessableEntityError),
    "DL429": Outcome(TooManyRequestsError),
    # Data exceptions and integrity violations: input that validation in
    # Python should have refused; never a 500.
    "22": Outcome(BadRequestError),
    "23": Outcome(BadRequestError),
    # Serialization failure, deadlock: retried once, then 503.
    "40001": Outcome(ServiceUnavailableError, _BUSY, retry=True),
    "40P01": Outcome(ServiceUnavailableError, _BUSY, retry=True),
    # Connection exceptions, insufficient resources, operator intervention
    # (shutdown, statement timeout's neighbours): the database is unavailable.
    "08": Outcome(ServiceUnavailableError, _UNAVAILABLE, reconnect=True),
    "53": Outcome(ServiceUnavailableError, _UNAVAILABLE, reconnect=True),
    "57": Outcome(ServiceUnavailableError, _UNAVAILABLE, reconnect=True),
}

# What a driver error without a SQLSTATE (the connection broke before or while
# talking) counts as: connection_exception.
CONNECTION_LOST = "08000"


def outcome(sqlstate: str) -> Outcome | None:
    """The table's decision for a SQLSTATE, or None (not ours to map: a 500)."""
    return SQLSTATE_TABLE.get(sqlstate) or SQLSTATE_TABLE.get(sqlstate[:2])


def error_response(error: ChaliceViewError, headers: dict[str, str] | None = None) -> Response:
    """The response Chalice would make of a raised error, with extra headers."""
    return Response(body={"Code": type(error).__name__, "Message": str(error)},
                    status_code=error.STATUS_CODE, headers=headers or {})
