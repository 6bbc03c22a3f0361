"""The inbox page at ``/``: every SMS the simulator delivered, newest first.

Rendered on the server with jinja2 (autoescaped: message text is always shown as
text). The live, websocket-driven inbox builds on this page.
"""

from __future__ import annotations

from collections import OrderedDict

import jinja2
from aiohttp import web

from otpsim import __version__
from otpsim.domain.message import Message
from otpsim.server.keys import SIM

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("otpsim.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

PAGE_LIMIT = 500


async def page(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    messages = sim.messages(limit=PAGE_LIMIT)
    by_phone: OrderedDict[str, list[Message]] = OrderedDict()
    for message in messages:
        by_phone.setdefault(message.phone_number, []).append(message)
    html = _env.get_template("inbox.html").render(
        version=__version__,
        clock=sim.clock.snapshot(),
        conversations=[(phone, [m.to_json() for m in items]) for phone, items in by_phone.items()],
        statuses={o.otp_id: o.status.value for o in sim.store.list_otps(limit=PAGE_LIMIT)},
        total=len(messages),
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page, name="inbox.page")
