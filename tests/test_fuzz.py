"""Hypothesis throws hostile bodies at a live provider API: never a 5xx, and every
refusal in the provider's error shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import launch, stop

FIELDS = ["phoneNumber", "countryIso", "from", "template", "template_fr", "trackId", "ttl",
          "maxAttempts", "pinType", "pinLength", "otpCallbackUrl", "pin"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40),
    st.sampled_from(["+33612345678", "0612345678", "FR", "UK", "{{pin}}", "numbers", "60"]),
)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)  # fmt: skip
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values, max_size=8)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "quiet.yaml").write_text("network:\n  magic_numbers: false\n")
    proc, base = launch(folder, "--scenario", str(folder / "quiet.yaml"), "--log-level", "warning")
    try:
        yield base
    finally:
        stop(proc)


def send(url: str, method: str, data: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"X-API-KEY": "fuzz", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def assert_provider_shape(status: int, body: Any) -> None:
    assert status < 500, body
    if status >= 400:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"type", "code", "message", "uri"}
        assert isinstance(body["error"]["code"], int)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=bodies)
def test_create_never_fails_and_refuses_in_shape(live: str, body: dict[str, Any]) -> None:
    if isinstance(body.get("otpCallbackUrl"), str):
        body["otpCallbackUrl"] = "http://127.0.0.1:9/cb"  # nothing leaves this machine
    status, answer = send(f"{live}/otp", "POST", json.dumps(body).encode())
    assert status in (201, 400), answer
    assert_provider_shape(status, answer)


@FUZZ
@given(
    raw=st.binary(max_size=300),
    path=st.sampled_from(["/otp", "/otp/0b5b4f3e-0000-4000-8000-000000000000"]),
)
def test_raw_bytes_never_fail(live: str, raw: bytes, path: str) -> None:
    status, answer = send(f"{live}{path}", "POST", raw)
    assert_provider_shape(status, answer)


@FUZZ
@given(body=bodies)
def test_verify_never_fails(live: str, body: dict[str, Any]) -> None:
    _, otp = send(f"{live}/otp", "POST", b'{"phoneNumber": "+33612345678"}')
    status, answer = send(f"{live}/otp/{otp['otpId']}", "POST", json.dumps(body).encode())
    assert status in (200, 400), answer
    assert_provider_shape(status, answer)


def test_an_empty_body_is_a_clear_400(live: str) -> None:
    status, answer = send(f"{live}/otp", "POST", b"{}")
    assert (status, answer["error"]["code"]) == (400, 2001)
