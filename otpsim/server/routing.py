"""The one middleware as each route's handler, not as an aiohttp middleware layer.

An aiohttp app with middlewares pays, for every request, the lookup of its handler's
middleware chain and a layer of aiohttp's own on top of ours
(``_fix_request_current_app``: a coroutine that sets ``match_info.current_app``, which
only sub-applications need; otpsim has none): ~3 % of a ``POST /otp``. An app without
middlewares calls the matched route's handler directly. So :func:`through` makes every
route's handler ``partial(serve, app, name, handler)`` (the same function, the same order of
steps, for every route). What no route takes, aiohttp's router answers with a match of
its own whose handler raises its decision (404, or 405 with the methods the path has)
outside any handler; here the router's ``resolve`` hands that decision, unchanged, to a
route of :class:`Unrouted` whose handler is ``serve`` raising it, so it is answered in
the provider's shape as before (and journaled, for any path, even an empty one: a
proxy's ``CONNECT host:port`` or ``GET http://host``).

Relies on a route's ``_handler`` (aiohttp keeps it per route, as ``_expect_handler``
which ``app.use_expect_handler`` sets), on ``Application`` resolving through its
router's ``resolve`` attribute, and on the app freezing its router through the router's
``freeze`` attribute when it starts (routes added after ``through`` are wrapped then);
``tests/server/test_answer_head.py`` pins them: every route's handler is ``serve``'s
partial (a route added after ``create_app`` too), and 404/405 keep their shape and
``Allow``.

Example::

    through(app, serve)  # after every route is added (create_app's last step)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from functools import partial, update_wrapper
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import _InfoDict, _Resolve

Serve = Callable[
    [web.Application, str | None, Handler, web.Request], Coroutine[Any, Any, web.StreamResponse]
]


class Unrouted(web.AbstractResource):
    """The resource of the routes that answer requests no route takes (not registered:
    the router's ``resolve`` hands its routes out, one per refusal)."""

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("requests no route takes have no URL")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("not for a sub-application")

    def get_info(self) -> _InfoDict:
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return iter(())

    async def resolve(self, request: web.Request) -> _Resolve:
        return None, set()


async def _refuse(refusal: web.HTTPException, request: web.Request) -> NoReturn:
    raise refusal


def through(app: web.Application, serve: Serve) -> None:
    """Every route's handler called through ``serve`` (each looks like its handler, as
    aiohttp's middleware chain does: name, module, source), and what no route takes
    too. Call it once the app's own routes are added; routes added later (by an app
    that embeds this one, a fixture, a startup hook) are wrapped when the router
    freezes, as the app starts (aiohttp refuses routes after that)."""
    router = app.router

    def wrap_every_route() -> None:
        for route in router.routes():
            handler = route._handler
            if getattr(handler, "func", None) is serve:
                continue  # wrapped already
            bound = partial(serve, app, route.name, handler)
            route._handler = update_wrapper(bound, handler)

    freeze = router.freeze

    def wrap_then_freeze() -> None:
        wrap_every_route()
        freeze()

    wrap_every_route()
    router.freeze = wrap_then_freeze  # type: ignore[method-assign]
    unrouted = Unrouted()
    resolve = router.resolve

    async def resolve_or_refuse(request: web.Request) -> web.UrlMappingMatchInfo:
        match = await resolve(request)
        refusal = match.http_exception
        if refusal is None:
            return match
        answer = partial(serve, app, None, partial(_refuse, refusal))
        return web.UrlMappingMatchInfo({}, web.ResourceRoute(hdrs.METH_ANY, answer, unrouted))

    router.resolve = resolve_or_refuse  # type: ignore[method-assign]
