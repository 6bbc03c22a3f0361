"""The answers' heads byte for byte, while they are written with fewer of aiohttp's steps.

``test_request_path.py`` pins a 201, a HEAD's 404, a 429 and an HTTP/1.0 answer; here
the rest of what a client can see: the provider API's other verbs, HEAD on a found OTP
(its length, no body), ``Connection: close`` asked for, HTTP/1.0 with and without
keep-alive, error answers (401, 404, 405 with ``Allow``), pipelined requests answered in
order; and every JSON answer compared with what aiohttp's own ``web.Response`` writes
for the same status, method, version and connection (``json_response`` is a
``web.Response`` with its head written in one step: this is the test that says so).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from otpsim.config import Settings

KEY = b"X-API-KEY: heads\r\n"
BODY = b'{"phoneNumber": "+33612345678"}'
DATE = re.compile(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


async def exchange(port: int, raw: bytes, heads: list[bool]) -> list[bytes]:
    """Send ``raw`` on one connection and read one whole answer per entry of ``heads``
    (True: the answer to a HEAD, whose Content-Length announces a body never sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        writer.write(raw)
        for is_head in heads:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            match = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
            length = 0 if is_head or match is None else int(match.group(1))
            body = await asyncio.wait_for(reader.readexactly(length), 5)
            answers.append(head + body)
    finally:
        writer.close()
    return answers


def shape(answer: bytes) -> list[str]:
    """Status line and headers in order, the values that change from run to run (date,
    request id, time taken, rate counters) replaced by their shape; then the body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    shaped = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        if name == "Date" and value.endswith(" GMT"):
            value = "<date>"
        elif name == "X-Request-Id" and re.fullmatch("[0-9a-f]{32}", value):
            value = "<id>"
        elif name == "X-Response-Time" and re.fullmatch(r"\d+\.\d{3}ms", value):
            value = "<ms>"
        elif name in ("X-Rate-Limit-Remaining", "X-Rate-Limit-Reset") and value.isdigit():
            value = "<n>"
        shaped.append(f"{name}: {value}")
    return [*shaped, f"<body {len(body)} bytes>"]


def request(method: str, path: str, body: bytes = b"", *, version: str = "1.1", extra: bytes = b"") -> bytes:  # fmt: skip
    length = b"Content-Length: %d\r\n" % len(body) if body or method == "POST" else b""
    return (
        f"{method} {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n".encode()
        + KEY + b"Content-Type: application/json\r\n" + length + extra + b"\r\n" + body
    )  # fmt: skip


JSON = "Content-Type: application/json; charset=utf-8"
IDS = ["X-Request-Id: <id>", "X-Response-Time: <ms>"]
RATE = ["X-Rate-Limit-Limit: 100", "X-Rate-Limit-Remaining: <n>"]
TAIL = ["Date: <date>", f"Server: {SERVER_SOFTWARE}"]


async def test_the_provider_verbs_heads(make_client: Any) -> None:
    client = await make_client(Settings(rate_limit=100))
    port = client.server.port
    created = await client.post("/otp", data=BODY, headers={"X-API-KEY": "heads"})
    otp = await created.json()
    otp_id = otp["otpId"]
    message = await (await client.get(f"/_sim/messages/latest?otpId={otp_id}")).json()
    wrong = b'{"pin": "000000"}' if message["pin"] != "000000" else b'{"pin": "111111"}'
    right = b'{"pin": "%s"}' % message["pin"].encode()
    path = f"/otp/{otp_id}"
    raw = [
        request("GET", path),
        request("HEAD", path),
        request("POST", path, wrong),
        request("POST", path, right),
        request("DELETE", path),
        request("PUT", "/otp", BODY),
        request("GET", "/nowhere"),
        request("GET", "/_sim/health"),
    ]
    answers = await exchange(port, b"".join(raw), [False, True, False, False, False, False, False, False])  # fmt: skip
    got, head, wrong_pin, verified, cancelled, put, missing, health = map(shape, answers)
    length = len(answers[0].partition(b"\r\n\r\n")[2])
    assert got == ["HTTP/1.1 200 OK", JSON, *IDS, *RATE, f"Content-Length: {length}", *TAIL, f"<body {length} bytes>"]  # fmt: skip
    # HEAD: GET's head, its Content-Length, and no body.
    assert head == [*got[:-1], "<body 0 bytes>"]
    assert wrong_pin[:6] == ["HTTP/1.1 400 Bad Request", JSON, *IDS, *RATE]
    assert wrong_pin[6].startswith("Content-Length: ")
    assert wrong_pin[7:9] == TAIL
    assert verified == ["HTTP/1.1 200 OK", JSON, *IDS, *RATE, "Content-Length: 21", *TAIL, "<body 21 bytes>"]  # fmt: skip
    # A verified OTP cannot be cancelled: an error answer from the handler.
    assert cancelled[:6] == ["HTTP/1.1 403 Forbidden", JSON, *IDS, *RATE]
    assert cancelled[6].startswith("Content-Length: ")
    assert cancelled[7:9] == TAIL
    assert put[:3] == ["HTTP/1.1 405 Method Not Allowed", JSON, "Allow: POST"], put
    assert put[3:5] == IDS
    assert put[5].startswith("Content-Length: ")
    assert put[6:8] == TAIL
    assert missing[:4] == ["HTTP/1.1 404 Not Found", JSON, *IDS]
    assert missing[4].startswith("Content-Length: ")
    assert missing[5:7] == TAIL
    assert health == ["HTTP/1.1 200 OK", JSON, *IDS, "Content-Length: 33", *TAIL, "<body 33 bytes>"]  # fmt: skip


async def test_connection_and_version_heads(make_client: Any) -> None:
    """Connection: close asked for (HTTP/1.1), HTTP/1.0 with keep-alive asked for and
    without, a refused request (401) on each: aiohttp's Connection header, same place."""
    client = await make_client(Settings(rate_limit=100))
    port = client.server.port
    close = b"Connection: close\r\n"
    keep = b"Connection: keep-alive\r\n"
    no_key = request("POST", "/otp", BODY).replace(KEY, b"")
    [closed] = await exchange(port, request("POST", "/otp", BODY, extra=close), [False])
    [old_kept, old_kept_401] = await exchange(
        port, request("POST", "/otp", BODY, version="1.0", extra=keep)
        + no_key.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"\r\n\r\n", b"\r\n" + keep + b"\r\n", 1),
        [False, False],
    )  # fmt: skip
    [old] = await exchange(port, request("POST", "/otp", BODY, version="1.0"), [False])
    [refused_close] = await exchange(port, no_key.replace(b"\r\n\r\n", b"\r\n" + close + b"\r\n", 1), [False])  # fmt: skip
    created = ["HTTP/1.1 201 Created", JSON, *IDS, *RATE, "Content-Length: 294", *TAIL]
    old_created = ["HTTP/1.0" + created[0][8:], *created[1:]]
    assert shape(closed) == [*created, "Connection: close", "<body 294 bytes>"]
    assert shape(old_kept) == [*old_created, "Connection: keep-alive", "<body 294 bytes>"]
    assert shape(old) == [*old_created, "<body 294 bytes>"]
    refused = shape(refused_close)
    assert refused[:5] == ["HTTP/1.1 401 Unauthorized", JSON, *IDS, "X-Rate-Limit-Limit: 100"]
    assert refused[-4:-1] == [*TAIL, "Connection: close"]
    assert shape(old_kept_401) == ["HTTP/1.0" + refused[0][8:], *refused[1:-2], "Connection: keep-alive", refused[-1]]  # fmt: skip


STATUSES = [200, 201, 204, 304, 400, 429]
METHODS = ["GET", "HEAD", "POST"]
VERSIONS = ["1.0", "1.1"]
CONNECTIONS = [b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n"]


@pytest.mark.parametrize("force_close", [False, True])
async def test_json_answers_are_what_aiohttps_response_writes(
    aiohttp_client: Any, force_close: bool
) -> None:
    """For every status, method, version and Connection header (and a response that
    closes the connection itself), ``json_response`` writes the same bytes as aiohttp's
    own ``web.Response`` given the same body and headers (the Date aside, checked for
    shape). It relies on aiohttp's ``StreamResponse`` internals (``_prepare_headers``'s
    rules: Content-Length, Date, Server, Connection): this is what pins them, on whatever
    aiohttp is installed (``json_response`` uses it on the minor version checked here)."""
    from otpsim import jsoncodec
    from otpsim.server.http import JsonResponse

    async def answer(request: web.Request) -> web.StreamResponse:
        status = int(request.query["status"])
        data = {"status": status, "text": "é"}
        if request.query["kind"] == "ours":
            response: web.StreamResponse = JsonResponse(jsoncodec.dumps(data), status)
        else:
            response = web.Response(
                body=jsoncodec.dumps(data), status=status,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )  # fmt: skip
        response.headers["X-Extra"] = "1"
        if force_close:
            response.force_close()
        return response

    app = web.Application()
    app.router.add_route("*", "/answer", answer)
    client = await aiohttp_client(app)
    port = client.server.port
    cases = [(s, m, v, c) for s in STATUSES for m in METHODS for v in VERSIONS for c in CONNECTIONS]
    for status, method, version, connection in cases:
        answers = {}
        for kind in ("ours", "aiohttp"):
            raw = (
                (
                    f"{method} /answer?status={status}&kind={kind} HTTP/{version}\r\n"
                    "Host: 127.0.0.1\r\nContent-Length: 0\r\n"
                ).encode()
                + connection
                + b"\r\n"
            )
            empty = method == "HEAD" or status in (204, 304)
            [answer] = await exchange(port, raw, [empty])
            assert DATE.search(answer), answer
            answers[kind] = DATE.sub(b"\r\nDate: <date>\r\n", answer)
        case = (status, method, version, connection)
        assert answers["ours"] == answers["aiohttp"], case


def test_json_answers_take_the_one_step_path_on_the_aiohttp_it_was_checked_on() -> None:
    """On aiohttp 3.14 (what CI installs) the provider's answers are ``JsonResponse``s;
    on another minor version, aiohttp's own ``web.Response`` (the same bytes). When a new
    aiohttp comes, the test above says whether ``JsonResponse`` still writes its bytes."""
    import aiohttp

    from otpsim.server.http import JsonResponse, json_response

    checked = aiohttp.__version__.startswith("3.14.")
    assert isinstance(json_response({"ok": True}), JsonResponse) is checked


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nowhere", 404, None),
        ("GET", "/otp/x/y", 404, None),
        ("GET", "/_sim/nope", 404, None),
        ("HEAD", "/nowhere", 404, None),
        ("PUT", "/otp", 405, "POST"),
        ("GET", "/otp", 405, "POST"),
        ("PATCH", "/otp/x", 405, "DELETE,GET,HEAD,POST"),
        ("POST", "/", 405, "GET,HEAD"),
        ("DELETE", "/_sim/clock", 405, "GET,HEAD,POST"),
        ("POST", "/_sim/callbacks/x", 405, "GET,HEAD"),
    ],
)
async def test_what_no_route_takes(
    make_client: Any, method: str, path: str, status: int, allow: str | None
) -> None:
    """A request no route takes: 404, or 405 with the methods the path has, in the
    provider's shape with the middleware's headers (it runs for these too)."""
    client = await make_client()
    response = await client.request(method, path, headers={"X-API-KEY": "heads"})
    assert response.status == status
    assert response.headers.get("Allow") == allow
    assert len(response.headers["X-Request-Id"]) == 32
    if method != "HEAD":
        error = (await response.json())["error"]
        assert error["type"] == ("not_found" if status == 404 else "invalid_method")
        assert f"{method} {path}" in error["message"] or f"on {path} " in error["message"]
        if allow:
            assert error["message"].endswith(f"(allowed: {allow})")


async def test_the_middleware_is_not_an_aiohttp_layer() -> None:
    """The one middleware runs as each route's handler, not in aiohttp's middleware chain:
    an app with middlewares gets, per request, aiohttp's chain lookup and its
    ``_fix_request_current_app`` layer (a coroutine more) on top (3 % of a POST /otp)."""
    from otpsim.server.app import create_app, serve

    app = create_app(Settings())
    assert list(app.middlewares) == []
    handlers = {route.handler for route in app.router.routes()}
    assert all(getattr(h, "func", None) is serve for h in handlers), handlers


async def test_a_route_added_after_create_app_goes_through_the_middleware_too(
    aiohttp_client: Any,
) -> None:
    """Routes are wrapped when the router freezes (the app starting), not only those that
    existed when ``create_app`` returned: a route an embedding app or a fixture adds
    later still gets the Host allow-list, the request id, the journal, the error shape."""
    from otpsim.server.app import create_app

    app = create_app(Settings())

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/_sim/extra", extra)
    client = await aiohttp_client(app)
    refused = await client.get("/_sim/extra", headers={"Host": "evil.example"})
    assert refused.status == 403
    assert (await refused.json())["error"]["type"] == "access_denied"
    answered = await client.get("/_sim/extra")
    assert answered.status == 200
    assert len(answered.headers["X-Request-Id"]) == 32


@pytest.mark.parametrize(
    "target", [b"CONNECT 127.0.0.1:443", b"GET http://127.0.0.1", b"GET http://127.0.0.1?x=1"]
)
async def test_a_request_with_no_path_is_refused_in_the_providers_shape(
    make_client: Any, target: bytes
) -> None:
    """A proxy's request (authority form, or an absolute URL without a path) has an empty
    path, which aiohttp's router refuses before looking at any route: still a 404 in the
    provider's shape, with the middleware's headers, and journaled."""
    client = await make_client()
    raw = target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    [answer] = await exchange(client.server.port, raw, [False])
    head = shape(answer)
    assert head[:4] == ["HTTP/1.1 404 Not Found", JSON, *IDS]
    method = target.split()[0].decode()
    assert f"No such endpoint: {method} ".encode() in answer
    [entry] = (await (await client.get("/_sim/requests")).json())["requests"]
    assert (entry["method"], entry["path"], entry["status"]) == (method, "", 404)
