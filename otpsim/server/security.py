"""Safe defaults around the control API and the inbox.

* With an admin token (``--admin-token``, required when the server listens beyond the
  loopback interface), ``/_sim/*`` and the inbox page ask for it: as
  ``Authorization: Bearer <token>``, or as a cookie a browser gets from a small login
  page. ``/_sim/health`` stays open so ``otpsim wait`` works; the provider API keeps its
  own credentials.
* State-changing control calls (anything but GET) are refused when a browser says they
  come from another site (``Origin`` of another host), so a web page cannot move the
  clock or reset the simulator behind a user's back.
* Without an admin token, the control API, the websocket and the inbox answer only
  requests whose ``Host`` names this machine: a loopback name or address, the bound
  address, or an ``--allowed-host``. A DNS-rebinding page (its own name, now resolving
  to 127.0.0.1) is same-origin with itself, so the Origin check cannot see it; its
  ``Host`` header gives it away. With an admin token, the token is the protection (a
  rebinding page cannot know it, and the login cookie is not sent to its name), so any
  name works: ``--host 0.0.0.0`` in a container stays usable.
* The provider API answers any ``Host`` (SDKs and apps in containers use any name),
  but a request a browser sent (``Origin``, or ``Sec-Fetch-Site`` other than ``none``)
  to a name that is not allowed is refused (403 1036), admin token or not: a rebinding
  page could otherwise create OTPs whose callbacks probe the victim's network.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from otpsim.config import Settings, is_loopback
from otpsim.errors import E, ProviderError
from otpsim.server.http import bearer_token, header_text, is_text, read_form
from otpsim.server.keys import SIM
from otpsim.server.live import same_origin

COOKIE = "otpsim_admin"
OPEN_PATHS = frozenset({"/_sim/health", "/_sim/login"})
PAGES = frozenset({"/", "/_sim/api"})  # HTML pages: without the token, the login page
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_page_asset(path: str) -> bool:
    """The inbox's static files and icon: public, and loaded by the page from whatever
    name it was opened by (a container's, behind the admin token)."""
    return path.startswith("/static/") or path == "/favicon.ico"


def csp_hash(source: str) -> str:
    """A Content-Security-Policy source allowing one inline script or style."""
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def token_ok(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def guard(request: web.Request) -> web.Response | None:
    """Refuse what the control API must not take; None lets the request through.

    Raises ProviderError for a cross-site state change or a missing admin token; answers
    the login page (401) for the inbox page itself.
    """
    path = request.path
    settings = request.app[SIM].settings
    if is_page_asset(path):
        return None
    if not (path == "/" or path.startswith("/_sim/")):
        guard_api(request, settings)
        return None
    if not settings.admin_token and path != "/_sim/health" and not host_allowed(request, settings):
        return _host_refused(request)
    origin = header_text(request, "Origin", E.SIM_INVALID_PARAM)  # 400 if not UTF-8
    if path != "/" and request.method not in SAFE_METHODS and not same_origin(request):
        raise ProviderError(
            E.SIM_FORBIDDEN,
            f"Cross-site request refused (Origin {origin}): "
            "the control API only takes state-changing calls from its own pages or from "
            "non-browser clients",
        )
    token = settings.admin_token
    if token and path not in OPEN_PATHS:
        given = bearer_token(request, E.ADMIN_REQUIRED) or request.cookies.get(COOKIE)
        if given is not None and not is_text(given):
            raise ProviderError(E.SIM_INVALID_PARAM, f"The {COOKIE} cookie is not valid UTF-8")
        if not token_ok(given, token) and not _own_account(request):
            if path in PAGES and request.method == "GET":
                return _login_page(status=401, next_path=request.path_qs)
            raise ProviderError(E.ADMIN_REQUIRED)
    return None


def guard_api(request: web.Request, settings: Settings) -> None:
    """:func:`guard` for a request to the provider API (what the middleware journals: a
    path neither the control API's, the page's nor an asset's): it keeps its own
    credentials and answers any Host, but not a browser's request to a name that is not
    this machine's (DNS rebinding)."""
    if from_browser(request) and not host_allowed(request, settings):
        raise ProviderError(E.BROWSER_HOST_NOT_ALLOWED, _browser_refused(request))


# Control paths an account may use for itself, with ``?account=`` naming it and its own
# credential (X-API-KEY, or the bearer token of its OAuth client) instead of the admin token.
ACCOUNT_PATHS = frozenset({"/_sim/scenario", "/_sim/reset", "/_sim/clock"})


def _own_account(request: web.Request) -> bool:
    """Whether the request acts on one account (``?account=K``) and carries K's own
    credential: an account may set up (and reset) itself on a shared simulator
    without the admin token, but never anyone else."""
    account = request.query.get("account")
    if request.path not in ACCOUNT_PATHS or not account:
        return False
    api_key = header_text(request, "X-API-KEY", E.ADMIN_REQUIRED)
    bearer = bearer_token(request, E.ADMIN_REQUIRED)
    found = request.app[SIM].account_of(api_key=api_key, bearer=bearer)
    return found is not None and hmac.compare_digest(found.encode(), account.encode())


def host_name(host: str) -> str:
    """The name of a ``Host`` header, without port or brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@functools.lru_cache(maxsize=16)
def _allowed_names(settings: Settings) -> tuple[frozenset[str], bool]:
    """The names allowed besides loopback ones, and whether any name is (``*``)."""
    names = set(settings.allowed_hosts)
    try:
        bound_anywhere = ipaddress.ip_address(settings.host).is_unspecified
    except ValueError:
        bound_anywhere = False
    if not bound_anywhere:
        names.add(host_name(settings.host))
    return frozenset(names), "*" in names


def host_allowed(request: web.Request, settings: Settings) -> bool:
    """Whether the request's ``Host`` names this machine or an allowed name."""
    names, anything = _allowed_names(settings)
    host = request.headers.get("Host")
    if anything or host is None:  # no Host (HTTP/1.0 scripts): no browser, no rebinding
        return True
    name = host_name(host)
    return name in names or is_loopback(name)


def from_browser(request: web.Request) -> bool:
    """Whether a web page sent this request: it has an ``Origin``, or a ``Sec-Fetch-Site``
    other than ``none`` (``none``: the user typed the address). SDKs, curl and apps do
    not send these."""
    headers = request.headers
    return "Origin" in headers or headers.get("Sec-Fetch-Site", "none").lower() != "none"


def _browser_refused(request: web.Request) -> str:
    name = host_name(request.host)
    return (
        f"A web page on host {name!r} may not use the provider API (a DNS-rebinding page "
        "looks like this): call it from your application, not a browser, or start otpsim "
        f"with --allowed-host {name} if that name is really yours"
    )


def _host_refused(request: web.Request) -> web.Response:
    name = host_name(request.host)
    message = (
        f"Host {name!r} may not reach the control API or the inbox: use a loopback "
        f"address (127.0.0.1, localhost, [::1]), or start otpsim with --allowed-host {name} "
        "if that name is really yours"
    )
    if request.path == "/":
        return web.Response(status=403, text=f"otpsim: {message}.\n", content_type="text/plain")
    raise ProviderError(E.HOST_NOT_ALLOWED, message)


# The login page's whole style, allowed by its hash: no 'unsafe-inline', nothing loaded.
_LOGIN_STYLE = """
:root{color-scheme:light dark;--bg:#f3f4f6;--panel:#fff;--ink:#111827;--muted:#6b7280;
--line:#d1d5db;--accent:#2563eb;--bad:#b91c1c}
@media (prefers-color-scheme: dark){:root{--bg:#0b1120;--panel:#111827;--ink:#e5e7eb;
--muted:#9ca3af;--line:#374151;--accent:#3b82f6;--bad:#f87171}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);
color:var(--ink);font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
form{display:grid;gap:.8rem;width:min(22rem,92vw);padding:1.6rem;background:var(--panel);
border:1px solid var(--line);border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08)}
h1{margin:0;font-size:1.3rem}h1 span{color:var(--muted);font-weight:400}
p{margin:0;color:var(--muted)}.error{color:var(--bad);font-weight:600}
input{font:inherit;padding:.55rem .7rem;border-radius:8px;border:1px solid var(--line);
background:var(--bg);color:var(--ink)}
input:focus,button:focus-visible{outline:2px solid var(--accent);outline-offset:1px}
button{font:inherit;font-weight:600;padding:.55rem;border:0;border-radius:8px;
background:var(--accent);color:#fff;cursor:pointer}
"""
_LOGIN_CSP = (
    "default-src 'none'; img-src 'self'; "
    f"style-src '{csp_hash(_LOGIN_STYLE)}'; form-action 'self'; frame-ancestors 'none'"
)
MAX_NEXT = 2000


def safe_next(target: object) -> str:
    """Where to go after signing in: ``target`` if it is a path of this server, else ``/``.

    A browser resolves ``//host``, ``/\\host`` and absolute URLs to another origin, and
    drops tabs and newlines before it does: only a plain ``/path?query`` of printable
    characters, without backslashes, may come back as a redirect (no open redirect).
    """
    if not isinstance(target, str) or not 0 < len(target) <= MAX_NEXT:
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if not target.isprintable() or any(c.isspace() for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _login_page(*, status: int = 200, error: str = "", next_path: str = "/") -> web.Response:
    note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    target = html.escape(safe_next(next_path))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>otpsim: sign in</title><link rel="icon" href="/favicon.ico">
<style>{_LOGIN_STYLE}</style></head>
<body><form method="post" action="/_sim/login">
<h1>otpsim <span>inbox</span></h1><p>This simulator asks for its admin token.</p>{note}
<input type="hidden" name="next" value="{target}">
<input type="password" name="token" placeholder="admin token" aria-label="admin token"
 autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button></form></body></html>"""
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = _LOGIN_CSP
    return response


async def login_page(request: web.Request) -> web.Response:
    return _login_page(next_path=request.query.get("next", "/"))


async def login(request: web.Request) -> web.StreamResponse:
    """The login form: the right token sets an HttpOnly, same-site cookie, then back to
    the page the user asked for (``next``, a path of this server) or the inbox."""
    expected = request.app[SIM].settings.admin_token
    form = await read_form(request)
    given = None if form is None else form.get("token")
    target = safe_next(None if form is None else form.get("next"))
    if not expected or not isinstance(given, str) or not token_ok(given, expected):
        return _login_page(status=401, error="That is not the admin token.", next_path=target)
    redirect = web.HTTPSeeOther(target)
    redirect.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/")
    raise redirect


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/login", login_page, name="sim.login.page")
    app.router.add_post("/_sim/login", login, name="sim.login")
