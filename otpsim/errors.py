"""The provider's error catalog, and otpsim's own error type.

Every error the emulated API can answer is one :class:`ErrorSpec` here: its HTTP
status, its ``type``, its numeric ``code`` and a default message. Official client
libraries map (status, type, code) to exception classes, so these three are part of
the wire contract; see ``docs/errors.md`` for the table.

Example::

    raise ProviderError(E.TTL_TOO_LOW)
    raise ProviderError(E.INVALID_PARAM_BODY, "Request body must be a JSON object")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DOCS_URI = "https://sms.cx/sms-api-documentation/#section/Errors"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error catalog."""

    status: int
    type: str
    code: int
    message: str
    # "provider": answered on the emulated provider API, so ``type`` is one of the
    # provider's (the official SDKs' Error.type enum; tests/sdk checks it). "control":
    # only the control API (/_sim/...) answers it, with otpsim's own types. "edge":
    # answered to any client by the HTTP layer before a route runs (timeouts, caps,
    # unreadable requests): a provider type, but not reachable through an SDK call.
    surface: str = "provider"


class E:
    """Namespace of every error the simulator can answer with."""

    # POST /otp validation (contract table).
    PHONE_MISSING = ErrorSpec(
        400, "invalid_param", 2001, "The parameter 'phoneNumber' is empty or not set"
    )
    COUNTRY_MISSING = ErrorSpec(
        400, "invalid_param", 2002, "The parameter 'countryIso' is empty or not set"
    )
    COUNTRY_INVALID = ErrorSpec(400, "invalid_param", 2003, "Country ISO provided is invalid")
    FROM_EMPTY = ErrorSpec(400, "invalid_param", 2004, "The parameter 'from' is empty or not set")
    FROM_LENGTH = ErrorSpec(
        400, "invalid_param", 2005, "The parameter 'from' is not valid (min 3, max 15 characters)"
    )
    TEMPLATE_INVALID = ErrorSpec(
        400, "invalid_param", 2006, "The parameter 'template' does not contain placeholder {{pin}}"
    )
    TTL_NAN = ErrorSpec(400, "invalid_param", 2007, "The parameter 'ttl' is not a number")
    TTL_TOO_LOW = ErrorSpec(400, "invalid_param", 2008, "Min value for 'ttl' is 60 seconds")
    TTL_TOO_HIGH = ErrorSpec(
        400, "invalid_param", 2009, "Max value for 'ttl' is 1800 seconds (30 mins)"
    )
    ATTEMPTS_NAN = ErrorSpec(
        400, "invalid_param", 2010, "The parameter 'maxAttempts' is not a number"
    )
    ATTEMPTS_TOO_LOW = ErrorSpec(400, "invalid_param", 2011, "Min value for 'maxAttempts' is 1")
    ATTEMPTS_TOO_HIGH = ErrorSpec(400, "invalid_param", 2012, "Max value for 'maxAttempts' is 10")
    PIN_TYPE_EMPTY = ErrorSpec(
        400, "invalid_param", 2013, "The parameter 'pinType' is empty or not set"
    )
    PIN_TYPE_INVALID = ErrorSpec(
        400,
        "invalid_param",
        2014,
        "Invalid parameter 'pinType'. Must be one of: letters, numbers, alphanumeric",
    )
    PIN_LENGTH_NAN = ErrorSpec(
        400, "invalid_param", 2015, "The parameter 'pinLength' is not a number"
    )
    PIN_LENGTH_TOO_LOW = ErrorSpec(400, "invalid_param", 2016, "Min value for 'pinLength' is 4")
    PIN_LENGTH_TOO_HIGH = ErrorSpec(400, "invalid_param", 2017, "Max value for 'pinLength' is 10")
    TRACK_ID_INVALID = ErrorSpec(
        400,
        "invalid_param",
        2018,
        "Track ID provided (parameter 'trackId') is not a valid UUID (v1-v5)",
    )
    CALLBACK_URL_INVALID = ErrorSpec(
        400, "invalid_param", 2019, "The parameter 'otpCallbackUrl' is not a valid URL"
    )
    PHONE_INVALID = ErrorSpec(400, "invalid_param", 2020, "The phone number provided is invalid")

    # Coverage and credit (the provider's codes, from its SMS endpoints' error tables).
    NO_COVERAGE = ErrorSpec(403, "no_coverage", 1119, "No coverage or restricted destination")
    INSUFFICIENT_CREDIT = ErrorSpec(400, "insufficient_credit", 1113, "Insufficient credit")

    # GET /numbers/validate/{phoneNumber}.
    NUMBER_INVALID = ErrorSpec(400, "invalid_param", 1207, "The phone number is invalid")

    # GET / POST / DELETE /otp/{otpId}.
    OTP_NOT_FOUND = ErrorSpec(404, "not_found", 2021, "Otp ID not found")
    PIN_MISSING = ErrorSpec(400, "invalid_param", 2022, "The parameter pin is empty or not set")
    OTP_ALREADY_VERIFIED = ErrorSpec(400, "otp_verified", 2023, "The OTP was already verified")
    OTP_CANCELLED = ErrorSpec(400, "otp_cancelled", 2024, "The OTP was canceled")
    OTP_ALREADY_EXPIRED = ErrorSpec(400, "otp_expired", 2025, "The OTP has expired")
    OTP_ALREADY_FAILED = ErrorSpec(
        400, "otp_failed", 2026, "The OTP has failed, maximum attempts reached"
    )
    OTP_MAX_ATTEMPTS = ErrorSpec(400, "otp_failed", 2027, "Max attempts reached")
    PIN_EXPIRED = ErrorSpec(400, "otp_expired", 2028, "The PIN has expired")
    PIN_WRONG = ErrorSpec(400, "invalid_pin", 2029, "The PIN provided does not verify")
    CANCEL_ALREADY_CANCELLED = ErrorSpec(403, "access_denied", 2030, "Otp already cancelled")
    CANCEL_NOT_PENDING = ErrorSpec(
        403, "access_denied", 2031, "You cannot cancel a non-pending Otp"
    )

    # POST /oauth/token (RFC 6749 error names, all code 1600).
    OAUTH_INVALID_REQUEST = ErrorSpec(
        400,
        "invalid_request",
        1600,
        "The request is missing a required parameter (grant_type)",
    )
    OAUTH_INVALID_SCOPE = ErrorSpec(
        400, "invalid_scope", 1600, "The requested scope is invalid, unknown, or malformed"
    )
    OAUTH_UNSUPPORTED_GRANT = ErrorSpec(
        400,
        "unsupported_grant_type",
        1600,
        "The grant type is not supported (only client_credentials)",
    )
    OAUTH_INVALID_CLIENT = ErrorSpec(401, "invalid_client", 1600, "Invalid client")

    # Authentication on the API (choices where the reference is silent: docs/errors.md).
    AUTH_MISSING = ErrorSpec(
        401,
        "invalid_api_key",
        1001,
        "Authentication required: send 'X-API-KEY: <key>' or 'Authorization: Bearer <token>'",
    )
    AUTH_BAD_KEY = ErrorSpec(401, "invalid_api_key", 1002, "Invalid API key")
    AUTH_BAD_TOKEN = ErrorSpec(401, "invalid_client", 1003, "Invalid or expired access token")
    AUTH_SCOPE = ErrorSpec(
        403,
        "insufficient_scope",
        1004,
        "The access token does not have the scope required by this endpoint",
    )

    # Generic HTTP-level errors, still in the provider's shape.
    ROUTE_NOT_FOUND = ErrorSpec(404, "not_found", 1010, "No such endpoint")
    METHOD_NOT_ALLOWED = ErrorSpec(
        405, "invalid_method", 1011, "The endpoint does not support this HTTP method"
    )
    BODY_INVALID = ErrorSpec(
        400,
        "invalid_body",
        1012,
        "Request body must be a JSON object (send Content-Type: application/json)",
    )
    BODY_TOO_LARGE = ErrorSpec(413, "invalid_body", 1013, "Request body is too large")
    RATE_LIMITED = ErrorSpec(
        429, "rate_limit", 1014, "Too many requests: the rate limit for this credential is reached"
    )
    SERVER_ERROR = ErrorSpec(500, "server_error", 1015, "Something went wrong inside the simulator")
    SERVICE_UNAVAILABLE = ErrorSpec(
        503, "server_error", 1016, "The service is temporarily unavailable"
    )

    # Simulated by a scenario rule's ``error:`` (docs/scenarios.md), where no other entry
    # of the catalog fits the status.
    FAULT_REFUSED = ErrorSpec(400, "invalid_request", 1038, "The request was refused")
    FAULT_FORBIDDEN = ErrorSpec(403, "access_denied", 1039, "Access denied")

    # Fixed PINs (otpsim's own feature, answered on POST /otp).
    FIXED_PIN_MISFIT = ErrorSpec(
        400,
        "invalid_param",
        1035,
        "The fixed PIN configured for this number does not fit the request's pinType or pinLength",
    )

    # Control API (/_sim/...) parameter errors.
    SIM_INVALID_PARAM = ErrorSpec(400, "invalid_param", 1020, "Invalid parameter", "control")
    SIM_NOT_FOUND = ErrorSpec(404, "not_found", 1021, "Not found", "control")
    SIM_FORBIDDEN = ErrorSpec(403, "access_denied", 1022, "Cross-origin request refused", "control")
    SCENARIO_INVALID = ErrorSpec(
        400, "invalid_scenario", 1023, "The scenario is not valid", "control"
    )
    ADMIN_REQUIRED = ErrorSpec(
        401,
        "unauthorized",
        1024,
        "This simulator asks for its admin token: send 'Authorization: Bearer <admin token>'",
        "control",
    )
    TOO_MANY_ACCOUNT_SCENARIOS = ErrorSpec(
        400,
        "invalid_param",
        1040,
        "Too many accounts have a scenario or clock of their own (see --max-account-scenarios)",
        "control",
    )

    # The HTTP edge: who may reach the control API, and connections that misbehave.
    HOST_NOT_ALLOWED = ErrorSpec(
        403,
        "access_denied",
        1030,
        "This host name may not reach the control API (see --allowed-host)",
        "control",
    )
    # Types from the provider's enum: any client, an official SDK included, may meet these.
    REQUEST_TIMEOUT = ErrorSpec(
        408, "invalid_request", 1031, "The request did not arrive in time", "edge"
    )
    TOO_BUSY = ErrorSpec(
        503, "server_error", 1032, "Too many connections: try again shortly", "edge"
    )
    REQUEST_UNREADABLE = ErrorSpec(
        400, "invalid_request", 1033, "The request line or headers could not be read", "edge"
    )
    HEADERS_TOO_LARGE = ErrorSpec(
        431, "invalid_request", 1034, "The request line or a header is too long", "edge"
    )
    EXPECTATION_FAILED = ErrorSpec(
        417, "invalid_request", 1037, "Unknown Expect header (only 100-continue)", "edge"
    )
    BROWSER_HOST_NOT_ALLOWED = ErrorSpec(
        403,
        "access_denied",
        1036,
        "A web page on this host name may not use the provider API (see --allowed-host)",
        "edge",
    )


class ProviderError(Exception):
    """An error answered to an API client in the provider's error shape."""

    def __init__(
        self,
        spec: ErrorSpec,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        param: str | None = None,
    ) -> None:
        self.spec = spec
        self.message = message or spec.message
        self.headers = headers or {}
        self.param = param  # the request parameter at fault, when one is known
        super().__init__(f"{spec.status} {spec.type} {spec.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON body, e.g. ``{"error": {"type": ..., "code": ..., ...}}``."""
        return {
            "error": {
                "type": self.spec.type,
                "code": self.spec.code,
                "message": self.message,
                "uri": f"{DOCS_URI}/{self.spec.code}",
            }
        }


class OtpsimError(Exception):
    """A user-facing failure of the CLI or of a config/scenario file.

    ``str(err)`` is one line naming what is wrong (and where, for files). The CLI
    prints it and exits with status 2.
    """
