"""HTTP errors in Chalice's standard body, and the SQLSTATE -> HTTP table."""

from chalice import (
    BadRequestError,
    ChaliceViewError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Response,
    TooManyRequestsError,
    UnauthorizedError,
)


class PayloadTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


class ServiceUnavailableError(ChaliceViewError):
    STATUS_CODE = 503


# The one mapping of the database's refusals (scheme.sql, "errors") to HTTP.
SQLSTATE_ERRORS: dict[str, type[ChaliceViewError]] = {
    "DL400": BadRequestError,
    "DL401": UnauthorizedError,
    "DL403": ForbiddenError,
    "DL404": NotFoundError,
    "DL409": ConflictError,
    "DL429": TooManyRequestsError,
}


def error_response(error: ChaliceViewError, headers: dict[str, str] | None = None) -> Response:
    """The response Chalice would make of a raised error, with extra headers."""
    return Response(body={"Code": type(error).__name__, "Message": str(error)},
                    status_code=error.STATUS_CODE, headers=headers or {})
