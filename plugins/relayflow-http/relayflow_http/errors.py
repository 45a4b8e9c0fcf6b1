"""The error names an `http:Request` task fails with, for `retry` and `catch` to match."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ERROR_CONNECTION",
    "ERROR_HOST_NOT_ALLOWED",
    "ERROR_INVALID_PARAMETER",
    "ERROR_RESPONSE_TOO_DEEP",
    "ERROR_RESPONSE_TOO_LARGE",
    "ERROR_SECRET_MISSING",
    "ERROR_TIMEOUT",
    "CallFailed",
    "status_error",
]

#: A serviceParam is missing or has the wrong type or value, or asks for something a flow may
#: not do (a reserved header, credentials in the URL).
ERROR_INVALID_PARAMETER: Final = "HTTP.InvalidParameter"
#: The URL's host is not in `allowed_hosts`.
ERROR_HOST_NOT_ALLOWED: Final = "HTTP.HostNotAllowed"
#: No complete answer within the timeout.
ERROR_TIMEOUT: Final = "HTTP.Timeout"
#: The connection could not be made, or broke before the answer was complete.
ERROR_CONNECTION: Final = "HTTP.ConnectionError"
#: The answer's body is larger than `max_response_bytes`.
ERROR_RESPONSE_TOO_LARGE: Final = "HTTP.ResponseTooLarge"
#: The answer's JSON nests deeper than `max_json_depth` allows.
ERROR_RESPONSE_TOO_DEEP: Final = "HTTP.ResponseTooDeep"
#: A header configured in `header_env` names an environment variable that is unset or unusable.
ERROR_SECRET_MISSING: Final = "HTTP.SecretMissing"


def status_error(status: int) -> str:
    """The error name of an answer that is not 2xx: `HTTP.503` for 503."""
    return f"HTTP.{status}"


class CallFailed(Exception):
    """Raised inside the integration to end a task attempt with an error name and a cause."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause
