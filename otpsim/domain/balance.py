"""Account balances: what each SMS costs is drawn from its account's balance.

An account starts with the default balance (``--balance AMOUNT``; unlimited when not
set) or its own (``--balance ACCOUNT:AMOUNT``, ``PUT /_sim/accounts/{account}/balance``,
a scenario's ``network.balance``). A limited balance goes down by each OTP's ``cost``; a
request that costs more than is left is refused with 400 ``insufficient_credit`` 1113.
An unlimited account is billed after the fact (``postpaid``): its balance is minus what
it has spent.

Example::

    balances = Balances(default=0.10)
    balances.check("key", 0.05)     # fine
    balances.charge("key", 0.05)    # 0.05 left
    balances.charge("key", 0.05)    # 0.0 left
    balances.check("key", 0.05)     # raises ProviderError 1113
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from otpsim.errors import E, ProviderError

CURRENCY = "eur"
_PLACES = 6  # money is rounded to a millionth, so that 0.1 + 0.2 spends exactly 0.3


@dataclass(slots=True)
class _Account:
    limit: float | None  # the balance; None: unlimited (postpaid)
    spent: float = 0.0


class Balances:
    def __init__(
        self, default: float | None = None, accounts: Mapping[str, float | None] | None = None
    ) -> None:
        self._default = default
        self._configured = dict(accounts or {})
        self._own_default: dict[str, float | None] = {}  # an account scenario's balance
        self._accounts: dict[str, _Account] = {}

    def __len__(self) -> int:
        """How many accounts have a balance of their own (set, or spent from)."""
        return len(self._accounts)

    def _account(self, account: str) -> _Account:
        """The account's state, kept from now on (to charge or set it)."""
        found = self._accounts.get(account)
        if found is None:
            found = self._accounts[account] = self._peek(account)
        return found

    def _peek(self, account: str) -> _Account:
        """The account's state for reading: a fresh one is not kept, so that asking
        about any number of accounts creates nothing."""
        found = self._accounts.get(account)
        if found is None:
            default = self._own_default.get(account, self._default)
            found = _Account(self._configured.get(account, default))
        return found

    def balance(self, account: str) -> float | None:
        """What is left (None: unlimited)."""
        return self._peek(account).limit

    def view(self, account: str) -> dict[str, object]:
        """The provider's AccountBalance object: ``{"balance", "currency", "billing"}``."""
        found = self._peek(account)
        if found.limit is None:
            return {"balance": round(-found.spent, _PLACES), "currency": CURRENCY,
                    "billing": "postpaid"}  # fmt: skip
        return {"balance": found.limit, "currency": CURRENCY, "billing": "prepaid"}

    def check(self, account: str, cost: float) -> None:
        """Raise 400 ``insufficient_credit`` 1113 if ``cost`` is more than what is left."""
        left = self._peek(account).limit
        if left is not None and cost > left:
            raise ProviderError(
                E.INSUFFICIENT_CREDIT,
                f"Insufficient credit (balance {left:g} {CURRENCY.upper()}, "
                f"this message costs {cost:g})",
            )

    def charge(self, account: str, cost: float) -> None:
        """Draw ``cost`` from the account (:meth:`check` first: this never refuses)."""
        found = self._account(account)
        found.spent = round(found.spent + cost, _PLACES)
        if found.limit is not None:
            found.limit = round(found.limit - cost, _PLACES)

    def set(self, account: str, amount: float | None) -> None:
        """Give the account this balance from now on (None: unlimited)."""
        self._accounts[account] = _Account(None if amount is None else round(amount, _PLACES))

    def use_default(self, default: float | None) -> None:
        """Accounts without a balance of their own start with ``default`` (a scenario's
        ``network.balance``); every account starts again, but those with a default of
        their own (:meth:`use_own_default`)."""
        self._default = default
        own = self._own_default
        self._accounts = {k: v for k, v in self._accounts.items() if k in own}

    def use_own_default(self, account: str, default: float | None, *, own: bool = True) -> None:
        """``account`` starts again from ``default`` (its own scenario's balance), or,
        with ``own=False``, from the shared default again (its scenario is gone)."""
        if own:
            self._own_default[account] = default
        else:
            self._own_default.pop(account, None)
        self._accounts.pop(account, None)

    def reset(self, account: str | None = None) -> None:
        """Every account (or one) back to its starting balance."""
        if account is None:
            self._accounts.clear()
        else:
            self._accounts.pop(account, None)
