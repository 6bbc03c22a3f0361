"""The live inbox page at ``/`` and its static files at ``/static/``.

The page is a shell rendered with jinja2 (autoescaped); ``web/static/inbox.js`` loads
the state from the control API and follows the live events on ``/_sim/ws``. Every
piece of message text reaches the page through ``textContent``, never as HTML.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from otpsim import __version__
from otpsim.server.keys import SIM

if TYPE_CHECKING:
    import jinja2


def _folder(package: str) -> Path:
    """A package's folder (a real directory, as add_static needs), found without
    loading importlib.resources and its zipfile machinery at start-up."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed as a folder")
    return Path(next(iter(spec.submodule_search_locations)))


STATIC_DIR = _folder("otpsim.web") / "static"


@functools.cache
def _templates() -> jinja2.Environment:
    """jinja2 is loaded when the page is first asked for: not before the first answer."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("otpsim.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


async def page(request: web.Request) -> web.Response:
    template = _templates().get_template("inbox.html")
    html = template.render(version=__version__, clock=request.app[SIM].clock_json())
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    # The page loads nothing from elsewhere: say so, so an injected tag could not either.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


async def favicon(request: web.Request) -> web.FileResponse:
    """``/favicon.ico``, which browsers ask for on any page (the JSON ones too)."""
    response = web.FileResponse(STATIC_DIR / "favicon.ico")
    response.content_type = "image/x-icon"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


async def api_reference(request: web.Request) -> web.Response:
    """``/_sim/api`` (otpsim.server.apiref: jinja2, the OpenAPI document), loaded when
    first asked for."""
    from otpsim.server import apiref

    return await apiref.page(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page, name="inbox.page")
    app.router.add_get("/favicon.ico", favicon, name="inbox.favicon")
    app.router.add_get("/_sim/api", api_reference, name="sim.api")
    app.router.add_static("/static/", STATIC_DIR, name="inbox.static")
