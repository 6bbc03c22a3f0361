"""OAuth tokens under a flood of issuance: constant time per token, a bounded number
of live tokens (oldest evicted first), expired ones evicted lazily."""

from __future__ import annotations

import time

import pytest

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.engine.auth import Authenticator
from otpsim.errors import ProviderError

STRICT = Settings(oauth_clients=(("app", "s3cret"),), token_ttl=60)


def test_issuing_20000_tokens_is_not_quadratic() -> None:
    auth = Authenticator(STRICT, Clock(start=0.0, frozen=True))
    started = time.perf_counter()
    tokens = [auth.issue_token("app", None)["access_token"] for _ in range(20_000)]
    elapsed = time.perf_counter() - started
    # Generous (a shared, noisy machine): linear work takes well under a second here;
    # rebuilding the table on every issue took minutes.
    assert elapsed < 10, f"20,000 tokens took {elapsed:.1f}s"
    for value in (tokens[0], tokens[10_000], tokens[-1]):
        assert auth.authenticate(api_key=None, bearer=str(value)).account == "app"


def test_live_tokens_are_capped_and_the_oldest_goes_first() -> None:
    auth = Authenticator(STRICT, Clock(start=0.0, frozen=True), max_tokens=100)
    tokens = [str(auth.issue_token("app", None)["access_token"]) for _ in range(150)]
    assert auth.live_tokens == 100
    for old in tokens[:50]:
        with pytest.raises(ProviderError) as refused:
            auth.authenticate(api_key=None, bearer=old)
        assert refused.value.spec.status == 401
    for recent in tokens[50:]:
        assert auth.authenticate(api_key=None, bearer=recent).account == "app"


def test_expired_tokens_are_evicted_without_being_looked_up() -> None:
    clock = Clock(start=0.0, frozen=True)
    auth = Authenticator(STRICT, clock)
    for _ in range(1000):
        auth.issue_token("app", None)
    clock.advance(61)  # past the 60 s token TTL
    fresh = str(auth.issue_token("app", None)["access_token"])
    assert auth.live_tokens == 1
    assert auth.authenticate(api_key=None, bearer=fresh).account == "app"


def test_a_clock_moved_back_never_evicts_a_live_token_early() -> None:
    clock = Clock(start=1000.0, frozen=True)
    auth = Authenticator(STRICT, clock)
    late = str(auth.issue_token("app", None)["access_token"])  # expires at 1060
    clock.set(0.0)
    early = str(auth.issue_token("app", None)["access_token"])  # expires at 60
    clock.set(59.0)
    auth.issue_token("app", None)
    for value in (late, early):
        assert auth.authenticate(api_key=None, bearer=value).account == "app"
