"""Credentials: API keys, OAuth client-credentials tokens, and who is calling.

Lenient mode (the default): any non-empty ``X-API-KEY`` or bearer token is accepted,
and any client id gets a token. Strict mode (any ``--api-key`` or ``--oauth-client``
configured): only those keys, and only unexpired tokens issued to those clients.

Every caller is an *account*: the API key itself, or the OAuth client id behind a
token (a lenient unknown token is its own account).

Example::

    auth = Authenticator(Settings(api_keys=("k1",)), clock)
    auth.authenticate(api_key="k1", bearer=None).account   # "k1"
"""

from __future__ import annotations

import hmac
import random
import secrets
from collections import deque
from dataclasses import dataclass

from otpsim.clock import Clock
from otpsim.config import Settings
from otpsim.errors import E, ProviderError

# The scopes a token may ask for; a token asked for with no scope gets them all.
KNOWN_SCOPES: tuple[str, ...] = (
    "sms", "otp", "groups", "templates", "originators", "numbers", "reports",
    "shortlinks", "attachments", "viber", "whatsapp", "multichannel", "conversations",
    "optouts", "account",
)  # fmt: skip


@dataclass(slots=True)  # not frozen: built per request (a frozen __init__ costs twice)
class Principal:
    account: str
    scopes: frozenset[str] | None  # None: every scope (API keys)

    def require(self, scope: str) -> None:
        if self.scopes is not None and scope not in self.scopes:
            raise ProviderError(
                E.AUTH_SCOPE,
                f"The access token does not have the '{scope}' scope required by this endpoint",
            )


@dataclass(frozen=True, slots=True)
class Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float


MAX_TOKENS = 100_000  # live tokens kept; beyond, the oldest issued is forgotten
# The longest API key, bearer token, OAuth client id or account name taken (characters):
# a credential becomes per-account state (tokens, balances, rate counts), so its size
# is bounded. Longer ones are refused (401 on the provider API, 400 on the control API).
MAX_CREDENTIAL = 256


def too_long(what: str) -> str:
    """``what`` is too long, saying the limit."""
    return f"{what} is too long (at most {MAX_CREDENTIAL} characters)"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Authenticator:
    """Checks credentials and issues tokens.

    Tokens live in a dict (constant-time lookup) and, in issue order, in a deque: issuing
    evicts from its front the tokens that have expired and, beyond ``max_tokens``, the
    oldest. Each token is evicted once, so issuing costs amortized O(1) however many
    were issued before. (A clock moved back can leave an expired token behind a live
    one; it is then dropped when looked up, or when it reaches the front.)
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._clients = dict(settings.oauth_clients)
        self._tokens: dict[str, Token] = {}
        self._issued: deque[str] = deque()  # token values, oldest first
        self._max_tokens = max_tokens

    @property
    def live_tokens(self) -> int:
        """How many issued tokens are kept (unexpired ones, up to the cap)."""
        return len(self._tokens)

    @property
    def strict(self) -> bool:
        return self._settings.strict_auth

    def authenticate(self, *, api_key: str | None, bearer: str | None) -> Principal:
        """Who is calling, from ``X-API-KEY`` or ``Authorization: Bearer``; 401 if no one."""
        if api_key is not None and api_key.strip():
            key = api_key.strip()
            if len(key) > MAX_CREDENTIAL:
                raise ProviderError(E.AUTH_BAD_KEY, f"Invalid API key: {too_long('the key')}")
            if self.strict and not any(_same(key, k) for k in self._settings.api_keys):
                raise ProviderError(E.AUTH_BAD_KEY)
            return Principal(key, None)
        if api_key is not None:
            raise ProviderError(E.AUTH_BAD_KEY, "Invalid API key (empty)")
        if bearer is not None and bearer.strip():
            if len(bearer.strip()) > MAX_CREDENTIAL:
                raise ProviderError(
                    E.AUTH_BAD_TOKEN, f"Invalid access token: {too_long('the token')}"
                )
            return self._from_token(bearer.strip())
        raise ProviderError(E.AUTH_MISSING)

    def _from_token(self, value: str) -> Principal:
        token = self._tokens.get(value)
        if token is not None and token.expires_at > self._clock.time():
            return Principal(token.client_id, token.scopes)
        if token is not None:
            self._tokens.pop(value, None)
            if self.strict:
                raise ProviderError(E.AUTH_BAD_TOKEN, "The access token has expired")
        if self.strict:
            raise ProviderError(E.AUTH_BAD_TOKEN)
        return Principal(value, None)

    def check_client(self, client_id: str | None, secret: str | None) -> str:
        """The client id, if these Basic credentials are acceptable; else 401 invalid_client."""
        if not client_id:
            raise ProviderError(
                E.OAUTH_INVALID_CLIENT,
                "Invalid client: send HTTP Basic credentials (application id and secret)",
            )
        if len(client_id) > MAX_CREDENTIAL:
            raise ProviderError(
                E.OAUTH_INVALID_CLIENT, f"Invalid client: {too_long('the application id')}"
            )
        if self.strict:
            expected = self._clients.get(client_id)
            if expected is None or not _same(expected, secret or ""):
                raise ProviderError(E.OAUTH_INVALID_CLIENT)
        return client_id

    def issue_token(self, client_id: str, scope: str | None) -> dict[str, object]:
        """A new bearer token (the ``/oauth/token`` response body)."""
        requested = (scope or "").split()
        unknown = [s for s in requested if s not in KNOWN_SCOPES]
        if unknown:
            raise ProviderError(
                E.OAUTH_INVALID_SCOPE,
                f"The requested scope is invalid, unknown, or malformed: {' '.join(unknown)}",
            )
        scopes = frozenset(requested) if requested else frozenset(KNOWN_SCOPES)
        now = self._clock.time()
        ttl = self._settings.token_ttl
        self._evict(now)
        value = (
            secrets.token_urlsafe(32) if self._rng is None else f"{self._rng.getrandbits(256):064x}"
        )
        self._tokens[value] = Token(client_id, scopes, now + ttl)
        self._issued.append(value)
        granted = " ".join(s for s in KNOWN_SCOPES if s in scopes)
        return {"access_token": value, "expires_in": ttl, "scope": granted, "token_type": "Bearer"}

    def expire(self, value: str, at: float) -> Token | None:
        """Forget a token whose lifetime ended by ``at``: the token, or None when it was
        already gone (evicted, or dropped when used late) or still has time left."""
        token = self._tokens.get(value)
        if token is None or token.expires_at > at:
            return None
        del self._tokens[value]
        return token

    def holds(self, value: str) -> bool:
        """Whether a token is still kept (it may have been evicted already)."""
        return value in self._tokens

    def _evict(self, now: float) -> None:
        """Forget expired tokens at the front of the issue order, and the oldest while
        there is no room for one more. Values already dropped on lookup are skipped, and
        the deque never holds more than twice the cap (a clock moved back could otherwise
        keep a live token in front of many dropped ones)."""
        issued, tokens, cap = self._issued, self._tokens, self._max_tokens
        while issued:
            token = tokens.get(issued[0])
            if (
                token is not None
                and token.expires_at > now
                and len(tokens) < cap
                and len(issued) < 2 * cap
            ):
                return
            tokens.pop(issued.popleft(), None)
