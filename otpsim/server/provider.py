"""The emulated provider API: ``/otp``, ``/oauth/token``, ``/account/balance`` and
``/numbers/validate/{phoneNumber}``, as the contract says.

Handlers only parse, call the simulator, and serialize. Authentication and rate
limiting happen in ``app.serve`` for every route named ``api.*``.
"""

from __future__ import annotations

from aiohttp import web

from otpsim.engine.network import FaultFired
from otpsim.errors import E, ProviderError
from otpsim.server.callbacks import points_at_self, self_callback_error
from otpsim.server.faults import perform
from otpsim.server.http import (
    basic_credentials,
    json_response,
    read_json_object,
    unknown_charset,
)
from otpsim.server.keys import BODY, CLIENT_ID, CONCERNS, PRINCIPAL, SIM


def _account(request: web.Request) -> str:
    """Each credential is its own account: it sees only the OTPs it created."""
    return request[PRINCIPAL].account


async def _fault(
    request: web.Request, endpoint: str, subject: str | None, *, account: str | None, ok: int
) -> web.Response | None:
    """A scenario rule's fault for this call, before it is handled: an error raised, a
    connection fault performed (its response returned), or None (go on)."""
    fault = await request.app[SIM].fault_for(endpoint, account=account, subject=subject)
    return None if fault is None else await perform(request, fault, ok_status=ok)


async def create_otp(request: web.Request) -> web.Response:
    body = await read_json_object(request)

    def refuse_self(url: str) -> None:  # a callback URL that reaches this simulator
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        # The port this request came in on: the one this simulator listens on.
        ports = {int(sockname[1])} if isinstance(sockname, tuple) and len(sockname) >= 2 else set()
        if points_at_self(url, ports, request.headers.get("Host")):
            raise self_callback_error()

    try:
        otp = await request.app[SIM].create_otp(
            body, account=_account(request), check_callback_url=refuse_self
        )
    except FaultFired as fired:  # nothing was created
        return await perform(request, fired.fault, ok_status=201)
    request[CONCERNS] = otp
    return json_response(otp.to_api(), status=201)


async def get_otp(request: web.Request) -> web.Response:
    otp_id, account = request.match_info["otp_id"], _account(request)
    if faulted := await _fault(request, "status", otp_id, account=account, ok=200):
        return faulted
    otp = request.app[SIM].get_otp(otp_id, account=account)
    request[CONCERNS] = otp
    return json_response(otp.to_api())


async def verify_otp(request: web.Request) -> web.Response:
    otp_id, account = request.match_info["otp_id"], _account(request)
    # Before the body is read or the OTP looked at: a fault consumes no attempt.
    if faulted := await _fault(request, "verify", otp_id, account=account, ok=200):
        return faulted
    body = await read_json_object(request)
    otp = request.app[SIM].verify(otp_id, body, account=account)
    request[CONCERNS] = otp
    return json_response({"status": otp.status.value})


async def cancel_otp(request: web.Request) -> web.Response:
    otp_id, account = request.match_info["otp_id"], _account(request)
    if faulted := await _fault(request, "cancel", otp_id, account=account, ok=200):
        return faulted
    otp = request.app[SIM].cancel(otp_id, account=account)
    request[CONCERNS] = otp
    return json_response({"info": {"id": otp.otp_id}})


async def account_balance(request: web.Request) -> web.Response:
    """``GET /account/balance``: the provider's AccountBalance object."""
    return json_response(request.app[SIM].balance(_account(request)))


async def validate_number(request: web.Request) -> web.Response:
    """``GET /numbers/validate/{phoneNumber}``: a free validity check."""
    return json_response(request.app[SIM].validate_number(request.match_info["phone"]))


async def oauth_token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: client credentials (HTTP Basic) for a bearer token."""
    sim = request.app[SIM]
    client_id, secret = basic_credentials(request)
    # The credentials first (a wrong secret is 401 and consumes no rule's sequence or
    # chance), then the client's rules, before the form is read.
    client = sim.check_client(client_id, secret)
    if faulted := await _fault(request, "token", client, account=None, ok=200):
        return faulted
    try:
        form = await request.post()
    except ValueError:
        raise ProviderError(
            E.OAUTH_INVALID_REQUEST, "The request body is not a valid form"
        ) from None
    except LookupError as exc:  # the body's or a multipart part's charset is unknown
        raise ProviderError(E.OAUTH_INVALID_REQUEST, unknown_charset(exc)) from None
    # The form as the journal shows it (a client secret sent in the body never is).
    request[BODY] = {
        k: ("****" if k == "client_secret" else v) for k, v in form.items() if isinstance(v, str)
    }
    grant_type = form.get("grant_type")
    if not isinstance(grant_type, str) or not grant_type:
        raise ProviderError(E.OAUTH_INVALID_REQUEST)
    if grant_type != "client_credentials":
        raise ProviderError(E.OAUTH_UNSUPPORTED_GRANT)
    scope = form.get("scope")
    token = sim.issue_token(client, scope if isinstance(scope, str) else None)
    request[CLIENT_ID] = client
    return json_response(token)


# The scope a bearer token needs for each route (API keys have every scope).
ROUTE_SCOPES: dict[str, str] = {
    "api.otp.create": "otp",
    "api.otp.get": "otp",
    "api.otp.verify": "otp",
    "api.otp.cancel": "otp",
    "api.account.balance": "account",
    "api.numbers.validate": "numbers",
}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/otp", create_otp, name="api.otp.create")
    app.router.add_get("/otp/{otp_id}", get_otp, name="api.otp.get")
    app.router.add_post("/otp/{otp_id}", verify_otp, name="api.otp.verify")
    app.router.add_delete("/otp/{otp_id}", cancel_otp, name="api.otp.cancel")
    app.router.add_post("/oauth/token", oauth_token, name="api.oauth.token")
    app.router.add_get("/account/balance", account_balance, name="api.account.balance")
    app.router.add_get("/numbers/validate/{phone}", validate_number, name="api.numbers.validate")
