"""The HTTP edge under hostile clients: Host checks (DNS rebinding), slow and greedy
connections, odd bodies, peer resets and log injection (issue #12, items 4 and 8)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
import time
from typing import Any

import pytest
from support import FR, KEY, expect_error, raw_http, sim_of

from otpsim.client import Client
from otpsim.config import Settings, load_settings
from otpsim.errors import OtpsimError
from otpsim.logs import JsonFormatter, TextFormatter

EVIL = {"Host": "evil.test:8790", "Origin": "http://evil.test:8790"}


# -- item 4: DNS rebinding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/_sim/reset"), ("GET", "/_sim/messages"), ("GET", "/_sim/otps"),
     ("POST", "/_sim/clock"), ("GET", "/_sim/ws"), ("PUT", "/_sim/scenario")],
)  # fmt: skip
async def test_a_rebound_host_name_cannot_reach_the_control_api(
    client: Any, method: str, path: str
) -> None:
    resp = await client.request(method, path, headers=EVIL, data=b"{}")
    err = await expect_error(resp, 403, "access_denied", 1030)
    assert "evil.test" in err["message"]
    assert "--allowed-host" in err["message"]


async def test_a_rebound_host_name_gets_no_inbox_page(client: Any) -> None:
    resp = await client.get("/", headers={"Host": "evil.test:8790"})
    assert resp.status == 403
    text = await resp.text()
    assert "evil.test" in text
    assert "inbox.js" not in text


async def test_loopback_names_the_bound_address_and_allowed_hosts_pass(make_client: Any) -> None:
    client = await make_client(Settings(allowed_hosts=("otpsim.test",)))
    for host in ("127.0.0.1:8790", "localhost:8790", "localhost", "[::1]:8790", "127.0.0.5",
                 "otpsim.test:8790", "OTPSIM.test"):  # fmt: skip
        resp = await client.get("/_sim/messages", headers={"Host": host})
        assert resp.status == 200, (host, await resp.text())
    resp = await client.get("/_sim/messages", headers={"Host": "otpsim.test.evil.test"})
    await expect_error(resp, 403, "access_denied", 1030)


def test_a_request_without_host_is_not_refused(start_server: Any) -> None:
    _, base = start_server()
    status, raw = raw_http("127.0.0.1", _port(base), b"GET /_sim/messages HTTP/1.0\r\n\r\n")
    assert status == 200, raw


async def test_the_provider_api_and_health_stay_host_agnostic(client: Any) -> None:
    resp = await client.post(
        "/otp", json={"phoneNumber": FR}, headers={**KEY, "Host": "sms.example.com"}
    )
    assert resp.status == 201
    assert (await client.get("/_sim/health", headers={"Host": "any.example"})).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/otp", {"phoneNumber": FR, "otpCallbackUrl": "http://10.0.0.1/hook"}),
     ("GET", "/otp/0123456789abcdef0123456789abcdef", None),
     ("DELETE", "/otp/0123456789abcdef0123456789abcdef", None),
     ("GET", "/account/balance", None),
     ("GET", "/numbers/validate/+33612345678", None)],
)  # fmt: skip
@pytest.mark.parametrize(
    "marker",
    [{"Origin": "http://attacker.example:8790"}, {"Sec-Fetch-Site": "same-origin"},
     {"Sec-Fetch-Site": "cross-site"}],
)  # fmt: skip
@pytest.mark.parametrize("admin_token", [None, "t0ken"])
async def test_a_rebinding_page_cannot_use_the_provider_api(
    make_client: Any, method: str, path: str, body: Any, marker: dict[str, str],
    admin_token: str | None,
) -> None:  # fmt: skip
    client = await make_client(Settings(admin_token=admin_token))
    headers = {**KEY, "Host": "attacker.example:8790", **marker}
    resp = await client.request(method, path, json=body, headers=headers)
    err = await expect_error(resp, 403, "access_denied", 1036)
    assert "attacker.example" in err["message"]
    assert sim_of(client).list_otps(limit=10) == []


async def test_a_rebinding_page_cannot_get_a_token(client: Any) -> None:
    resp = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Host": "attacker.example", "Origin": "http://attacker.example",
                 "Authorization": "Basic YXBwOnNlY3JldA=="},
    )  # fmt: skip
    await expect_error(resp, 403, "access_denied", 1036)


async def test_browsers_on_allowed_names_and_clients_without_origin_use_the_provider_api(
    make_client: Any,
) -> None:
    client = await make_client(Settings(allowed_hosts=("sms.test",)))
    for headers in (
        {"Host": "127.0.0.1:8790", "Origin": "http://127.0.0.1:8790"},
        {"Host": "localhost", "Sec-Fetch-Site": "same-origin"},
        {"Host": "sms.test", "Origin": "http://sms.test"},
        {"Host": "otpsim.internal:8790"},  # an SDK in a container: no browser markers
        {"Host": "otpsim.internal:8790", "Sec-Fetch-Site": "none"},  # typed in the bar
    ):
        resp = await client.post("/otp", json={"phoneNumber": FR}, headers={**KEY, **headers})
        assert resp.status == 201, (headers, await resp.text())


async def test_with_an_admin_token_the_token_is_the_protection(make_client: Any) -> None:
    # otpsim serve --host 0.0.0.0 --admin-token T in a container, reached by any name.
    client = await make_client(Settings(host="0.0.0.0", admin_token="t0ken"))
    other = {"Host": "otpsim.internal:8790"}
    resp = await client.get("/_sim/messages", headers={**other, "Authorization": "Bearer t0ken"})
    assert resp.status == 200
    resp = await client.get("/_sim/messages", headers=other)
    await expect_error(resp, 401, "unauthorized", 1024)


def test_allowed_hosts_come_from_flags_env_and_config(tmp_path: Any) -> None:
    assert load_settings(cli={"allowed_hosts": ("a.test",)}, env={}).allowed_hosts == ("a.test",)
    env = {"OTPSIM_ALLOWED_HOST": "a.test, b.test"}
    assert load_settings(env=env).allowed_hosts == ("a.test", "b.test")
    path = tmp_path / "c.yaml"
    path.write_text("allowed_hosts: [c.test]\n")
    assert load_settings(env={}, config_path=str(path)).allowed_hosts == ("c.test",)
    path.write_text("allowed_hosts: ['http://c.test/']\n")
    with pytest.raises(OtpsimError, match=r"c\.yaml:1: allowed_hosts: expected a host name"):
        load_settings(env={}, config_path=str(path))


# -- item 8: slowloris, connection caps, timeouts --------------------------------------


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_slow_connections_cannot_crowd_out_a_real_client(start_server: Any) -> None:
    proc, base = start_server("--max-connections", "20")
    port = _port(base)
    slow = []
    try:
        for _ in range(30):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(sock)
        status, raw = raw_http(
            "127.0.0.1", port, b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        assert status == 200, raw
        # The oldest slow connections were closed to make room; the rest are held.
        closed = 0
        for sock in slow:
            sock.settimeout(0.2)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:  # closed with our unread headers: a reset
                closed += 1
            except TimeoutError:  # still held
                pass
        assert closed >= 10
    finally:
        for sock in slow:
            sock.close()
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert "connection cap reached (20 open)" in err


def test_headers_that_never_finish_get_a_408_and_the_connection_closes(start_server: Any) -> None:
    _, base = start_server("--header-timeout", "1")
    started = time.monotonic()
    status, raw = raw_http(
        "127.0.0.1", _port(base), b"GET /_sim/health HTTP/1.1\r\nX-Slow: a", timeout=20
    )
    assert status == 408, raw
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request", 1031)
    assert time.monotonic() - started < 15  # generous: the timeout is 1 s
    with socket.create_connection(("127.0.0.1", _port(base)), timeout=20) as silent:
        assert silent.recv(100) == b""  # never said a word: closed without one


def test_a_body_that_never_arrives_gets_a_408(start_server: Any) -> None:
    _, base = start_server("--body-timeout", "1")
    head = (
        b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{}"
    )
    started = time.monotonic()
    status, raw = raw_http("127.0.0.1", _port(base), head, timeout=20)
    assert status == 408, raw
    assert b'"invalid_request"' in raw
    assert time.monotonic() - started < 15


def test_a_huge_content_length_is_refused_at_once(start_server: Any) -> None:
    _, base = start_server()
    head = (
        b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{}"
    )
    status, raw = raw_http("127.0.0.1", _port(base), head, timeout=20)
    assert status == 413, raw
    assert b'"invalid_body"' in raw
    assert b"1013" in raw


def _recv_head(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """What the server sent on ``sock`` until its headers ended, it closed, or timeout."""
    sock.settimeout(timeout)
    got = b""
    try:
        while b"\r\n\r\n" not in got and (chunk := sock.recv(4096)):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def _websocket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"GET /_sim/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    return sock


LONG_POLL = (
    b"GET /_sim/messages/latest?phoneNumber=%2B15005550002&wait=30 HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n\r\n"
)


def test_long_polls_at_the_stream_cap_make_room_oldest_first(start_server: Any) -> None:
    # 2 long polls fill --max-streams 2; a third is not refused: the oldest ends now
    # with its normal "nothing yet" 404 (Retry-After: 0, poll again) and the rest wait.
    _, base = start_server("--max-streams", "2")
    port = _port(base)
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(LONG_POLL)
            held.append(sock)
            time.sleep(0.2)  # in this order
        newcomer = socket.create_connection(("127.0.0.1", port), timeout=5)
        newcomer.sendall(LONG_POLL)
        held.append(newcomer)
        first = _recv_head(held[0])
        assert first.startswith(b"HTTP/1.1 404"), first
        assert b"Retry-After: 0" in first
        for sock in held[1:]:  # still waiting
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)
    finally:
        for sock in held:
            sock.close()


def test_websockets_have_their_own_share_and_long_polls_still_get_in(
    start_server: Any,
) -> None:
    _, base = start_server("--max-streams", "2")
    port = _port(base)
    held = [_websocket(port)]
    try:
        assert _recv_head(held[0]).startswith(b"HTTP/1.1 101")
        refused = _websocket(port)  # beyond the websockets' half of the cap
        held.append(refused)
        head = _recv_head(refused)
        assert head.startswith(b"HTTP/1.1 503"), head
        # Long polls pre-empt one another, never the websocket.
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(LONG_POLL)
            held.append(sock)
        assert _recv_head(held[2]).startswith(b"HTTP/1.1 404")
        assert _recv_head(held[3]).startswith(b"HTTP/1.1 404")
        held[4].settimeout(0.5)
        with pytest.raises(TimeoutError):
            held[4].recv(1)
    finally:
        for sock in held:
            sock.close()


def test_the_client_polls_again_when_its_long_poll_is_preempted(start_server: Any) -> None:
    _, base = start_server("--max-streams", "1")
    client = Client(base, api_key="k")
    otp = client.create_otp({"phoneNumber": "+15005550003"})  # delivered after 30 s (sim)
    got: list[Any] = []
    waiter = threading.Thread(
        target=lambda: got.append(client.wait_message(otp_id=otp["otpId"], timeout=20))
    )
    waiter.start()
    time.sleep(0.5)
    # Another long poll pre-empts the helper's; it polls again and still sees the SMS.
    status, raw = raw_http(
        "127.0.0.1", _port(base),
        b"GET /_sim/messages/latest?wait=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )  # fmt: skip
    assert status == 404, raw
    client.advance(31)
    waiter.join(timeout=20)
    assert got
    assert got[0]["otpId"] == otp["otpId"]


def test_slow_bodies_cannot_hold_every_connection(start_server: Any) -> None:
    # 20 POSTs announce 60 KB and trickle it: at the cap they are the ones closed (408),
    # the slowest first, and a real client is answered.
    proc, base = start_server("--max-connections", "20")
    port = _port(base)
    slow = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(
                b"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: k\r\n"
                b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
                b'{"phoneNumber":'
            )
            slow.append(sock)
        time.sleep(0.3)
        for _ in range(3):
            status, raw = raw_http(
                "127.0.0.1", port, b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            assert status == 200, raw
        answers = [_recv_head(sock, timeout=0.3) for sock in slow]
        evicted = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        assert len(evicted) == 1, answers  # one made room; the health checks closed after
    finally:
        for sock in slow:
            sock.close()
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert "sending a body below" in err


def test_limits_are_options_with_sane_defaults() -> None:
    settings = Settings()
    assert settings.max_connections >= 512
    assert 1 <= settings.header_timeout <= 60
    assert 1 <= settings.body_timeout <= 120
    assert settings.max_streams < settings.max_connections
    env = {"OTPSIM_MAX_CONNECTIONS": "50", "OTPSIM_KEEPALIVE_TIMEOUT": "5"}
    loaded = load_settings(env=env)
    assert (loaded.max_connections, loaded.keepalive_timeout) == (50, 5.0)
    with pytest.raises(OtpsimError, match="OTPSIM_HEADER_TIMEOUT: expected a positive number"):
        load_settings(env={"OTPSIM_HEADER_TIMEOUT": "0"})


def test_an_over_long_header_line_gets_the_error_shape(start_server: Any) -> None:
    _, base = start_server()
    request = b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n"
    status, raw = raw_http("127.0.0.1", _port(base), request)
    assert status == 431, raw
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request", 1034)


# -- low items: odd bodies -------------------------------------------------------------


async def test_a_json_integer_of_thousands_of_digits_is_a_400(client: Any) -> None:
    resp = await client.post(
        "/otp", data=b'{"ttl": ' + b"1" * 5000 + b"}",
        headers={**KEY, "Content-Type": "application/json"},
    )  # fmt: skip
    err = await expect_error(resp, 400, "invalid_body", 1012)
    assert "number" in err["message"]


@pytest.mark.parametrize(
    ("path", "body", "ctype", "type_", "code"),
    [("/oauth/token", b"grant_type=client_credentials", "application/x-www-form-urlencoded",
      "invalid_request", 1600),
     ("/_sim/login", b"token=x", "application/x-www-form-urlencoded", "invalid_body", 1012),
     ("/otp", b"{}", "application/json", "invalid_body", 1012)],
)  # fmt: skip
async def test_an_unknown_charset_is_a_400(
    client: Any, path: str, body: bytes, ctype: str, type_: str, code: int
) -> None:
    headers = {
        **KEY,
        "Authorization": "Basic YTpi",
        "Content-Type": ctype + "; charset=nonexistent",
    }
    resp = await client.post(path, data=body, headers=headers)
    err = await expect_error(resp, 400, type_, code)
    assert "nonexistent" in err["message"]


async def test_json_nested_600_deep_is_a_400_on_every_body_endpoint(client: Any) -> None:
    deep = b"[" * 600 + b"]" * 600
    for method, path in (("POST", "/otp"), ("PUT", "/_sim/scenario"), ("POST", "/_sim/clock")):
        resp = await client.request(
            method, path, data=deep, headers={**KEY, "Content-Type": "application/json"}
        )
        assert resp.status == 400, (path, await resp.text())
        body = await resp.json()
        assert set(body) == {"error"}


async def test_a_websocket_peer_reset_is_not_an_error(client: Any, caplog: Any) -> None:
    host, port = client.server.host, client.server.port
    upgrade = (
        f"GET /_sim/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(upgrade)
        sock.close()  # RST at once: the server is still answering the upgrade
        await asyncio.sleep(0.2)
    assert (await client.get("/_sim/health")).status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert all(" 500 " not in r.getMessage() for r in caplog.records)


# -- low items: logs -------------------------------------------------------------------


def _record(msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("otpsim.sms", logging.INFO, __file__, 1, msg, args, None)


def test_text_logs_escape_newlines_and_terminal_escapes() -> None:
    hostile = "code {{pin}}\n2030-01-01 00:00:00 INFO otpsim.access: forged\x1b[2J\x07\r"
    line = TextFormatter().format(_record("SMS to %s: %s", FR, hostile))
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "\\n2030-01-01" in line
    assert "\\x1b[2J" in line


def test_json_logs_stay_json() -> None:
    hostile = "a\nb\x1b[2J"
    line = JsonFormatter().format(_record("SMS: %s", hostile))
    assert "\n" not in line
    assert json.loads(line)["msg"] == "SMS: " + hostile


async def test_an_sms_text_with_a_newline_logs_one_line(client: Any, capsys: Any) -> None:
    from otpsim import logs

    logs.configure("info", "text")
    try:
        resp = await client.post(
            "/otp",
            json={"phoneNumber": FR, "template": "{{pin}}\nFAKE otpsim.access: GET / 200\x1b[31m"},
            headers=KEY,
        )
        assert resp.status == 201
        logs.flush()  # lines are written by a background writer, in batches
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    sms_lines = [line for line in err.splitlines() if "otpsim.sms" in line]
    assert len(sms_lines) == 1, err
    assert "\\nFAKE" in sms_lines[0]
    assert not any(line.startswith("FAKE") for line in err.splitlines())
    assert "\x1b" not in err


# -- round 2, item 4: every answer in the error shape ------------------------------------

BOGUS_PART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="%s"\r\n'
    b"Content-Type: text/plain; charset=bogus\r\n\r\n%s\r\n--XyZ--\r\n"
)
MULTIPART = {"Content-Type": "multipart/form-data; boundary=XyZ"}


async def test_a_form_part_with_an_unknown_charset_is_a_400(make_client: Any) -> None:
    client = await make_client(Settings(admin_token="t0ken"))
    resp = await client.post(
        "/_sim/login", data=BOGUS_PART % (b"token", b"t0ken"), headers=MULTIPART
    )
    err = await expect_error(resp, 400, "invalid_body", 1012)
    assert "bogus" in err["message"]
    resp = await client.post(
        "/oauth/token",
        data=BOGUS_PART % (b"grant_type", b"client_credentials"),
        headers={**MULTIPART, "Authorization": "Basic YXBwOnNlY3JldA=="},
    )
    err = await expect_error(resp, 400, "invalid_request", 1600)
    assert "bogus" in err["message"]
    assert "None" not in err["message"]


async def test_an_unknown_expectation_is_a_417_in_the_error_shape(client: Any) -> None:
    resp = await client.post("/otp", json={"phoneNumber": FR}, headers={**KEY, "Expect": "foo"})
    err = await expect_error(resp, 417, "invalid_request", 1037)
    assert "foo" in err["message"]
    assert "X-Request-Id" in resp.headers
    resp = await client.post(
        "/otp", json={"phoneNumber": FR}, headers={**KEY, "Expect": "100-continue"}
    )
    assert resp.status == 201


@pytest.mark.parametrize(
    "headers",
    [{}, {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "not a key"}],
)  # fmt: skip
async def test_a_websocket_request_without_a_handshake_is_a_400_in_the_error_shape(
    client: Any, headers: dict[str, str]
) -> None:
    resp = await client.get("/_sim/ws", headers=headers)
    err = await expect_error(resp, 400, "invalid_param", 1020)
    assert "websocket" in err["message"].lower()
