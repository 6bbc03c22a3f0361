"""The ceiling: a bare aiohttp server answering POST /otp with a fixed 201 JSON body.

What this machine can do with aiohttp and nothing else; otpsim is measured against it.
With ``--parse`` the handler also reads the body and parses its JSON, as any real
handler must: the second reference row of the benchmark.

    python bench/ceiling.py PORT [--parse]
"""

from __future__ import annotations

import json
import sys

from aiohttp import web

BODY = (
    b'{"otpId":"c25dfda0-240a-4de2-a0a9-90ac90e9226e","trackId":null,'
    b'"phoneNumber":"+33612345678","countryIso":"FR","status":"PENDING","cost":0.05,'
    b'"parts":1,"maxAttempts":3,"attempts":0,"ttl":300,"otpCallbackUrl":null,'
    b'"dateCreated":"2026-11-22T02:57:26.675Z","dateExpires":"2026-11-22T03:02:26.675Z"}'
)


async def create(request: web.Request) -> web.Response:
    return web.Response(body=BODY, status=201, content_type="application/json")


async def create_after_parsing(request: web.Request) -> web.Response:
    if "phoneNumber" not in json.loads(await request.read()):
        raise web.HTTPBadRequest()
    return web.Response(body=BODY, status=201, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/otp", create_after_parsing if "--parse" in sys.argv else create)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
