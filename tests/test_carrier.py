"""The simulated carrier: matching, each rule, sequences, seeded chance, magic numbers."""

from __future__ import annotations

import time

import phonenumbers
import pytest

from otpsim.clock import Clock
from otpsim.domain.message import Message, SmsStatus
from otpsim.engine.carrier import MAGIC_RULES, Action, Carrier, Fate, Network, Rule
from otpsim.engine.scheduler import Scheduler


def carrier_with(*rules: Rule, seed: int | None = None, magic: bool = True) -> Carrier:
    carrier = Carrier(Scheduler(Clock(start=0.0, frozen=True)))
    carrier.configure(Network(rules, seed, magic))
    return carrier


def message(phone: str = "+33612345678") -> Message:
    return Message("m1", "o1", "acct", phone, "FR", "OTPSIM", "code 1234", "1234", 1, "GSM-7", 0.0)


@pytest.mark.parametrize(
    ("match", "phone", "expected"),
    [
        ("+33612345678", "+33612345678", True),
        ("+33612345678", "+33612345679", False),
        ("+336123*", "+33612345678", True),
        ("+336124*", "+33612345678", False),
        ("*", "+15005550000", True),
        ("re:^\\+44", "+447400123456", True),
        ("re:5678$", "+33612345678", True),
        ("re:^\\+44", "+33612345678", False),
    ],
)
def test_matching(match: str, phone: str, expected: bool) -> None:
    assert Rule.of(match).matches(phone) is expected


def test_bad_regex_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Rule.of("re:([")
    with pytest.raises(ValueError, match=r"invalid regular expression: .*no backreferences"):
        Rule.of("re:(1)\\1")


def test_regex_rules_run_in_linear_time() -> None:
    rule = Rule.of("re:^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*\\D$")  # the pattern
    started = time.monotonic()
    assert not rule.matches("+33612345678")
    assert time.monotonic() - started < 2.0  # generous: Python's re backtracked ~10 s here
    assert rule.matches("+33612345678x")


def test_first_matching_rule_wins_and_default_is_deliver() -> None:
    carrier = carrier_with(
        Rule.of("+336123*", Fate(Action.REJECT)),
        Rule.of("*", Fate(Action.UNDELIVERED)),
    )
    assert carrier.decide("+33612345678").action is Action.REJECT
    assert carrier.decide("+4915123456789").action is Action.UNDELIVERED
    assert carrier_with().decide("+4915123456789") == Fate()


def test_sequences_count_per_number_and_repeat_their_last_step() -> None:
    carrier = carrier_with(
        Rule.of("*", Fate(Action.ERROR, status=500), Fate(Action.ERROR, status=503), Fate())
    )
    a = [carrier.decide("+33612345678") for _ in range(4)]
    assert [f.action for f in a] == [Action.ERROR, Action.ERROR, Action.DELIVER, Action.DELIVER]
    assert [f.status for f in a[:2]] == [500, 503]
    assert carrier.decide("+4915123456789").action is Action.ERROR  # its own count
    carrier.configure(carrier.network)  # configuring again restarts sequences
    assert carrier.decide("+33612345678").status == 500


def test_same_seed_same_outcomes() -> None:
    def run(seed: int) -> list[Action]:
        carrier = carrier_with(Rule.of("*", Fate(Action.UNDELIVERED), chance=0.3), seed=seed)
        return [carrier.decide(f"+336123456{n:02d}").action for n in range(60)]

    first, again, other = run(42), run(42), run(7)
    assert first == again
    assert first != other
    undelivered = first.count(Action.UNDELIVERED)
    assert 5 < undelivered < 35  # about 30% of 60


def test_undelivered_and_immediate_delivery() -> None:
    carrier = carrier_with()
    delivered, failed = [], []
    sms = message()
    carrier.submit(sms, Fate(Action.UNDELIVERED), delivered.append, failed.append)
    assert failed == [sms]
    assert sms.status is SmsStatus.UNDELIVERED
    other = message()
    carrier.submit(other, Fate(), delivered.append, failed.append)
    assert delivered == [other]
    assert other.status is SmsStatus.DELIVERED


def test_delayed_delivery_follows_the_simulator_clock() -> None:
    clock = Clock(start=100.0, frozen=True)
    scheduler = Scheduler(clock)
    carrier = Carrier(scheduler)
    delivered: list[Message] = []
    sms = message()
    carrier.submit(sms, Fate(delay=30), delivered.append, delivered.append)
    assert sms.status is SmsStatus.QUEUED
    clock.advance(29.9)
    scheduler.run_due()
    assert delivered == []
    clock.advance(0.1)
    scheduler.run_due()
    assert delivered == [sms]
    assert sms.delivered_at == 130.0


def test_every_magic_number_is_a_valid_number() -> None:
    for rule in MAGIC_RULES:
        number = phonenumbers.parse(rule.match)
        assert phonenumbers.is_valid_number(number), rule.match
        assert rule.note


def test_magic_numbers_can_be_switched_off() -> None:
    assert carrier_with().decide("+15005550001").action is Action.REJECT
    assert carrier_with(magic=False).decide("+15005550001").action is Action.DELIVER


def test_rules_apply_only_on_the_endpoints_they_name() -> None:
    from otpsim.engine.carrier import Endpoint

    verify_only = Rule.of("*", Fate(Action.ERROR, status=503), on=[Endpoint.VERIFY])
    carrier = carrier_with(verify_only)
    assert carrier.decide("+33612345678").action is Action.DELIVER  # create: untouched
    assert carrier.decide("+33612345678", Endpoint.VERIFY).status == 503
    assert carrier.decide(None, Endpoint.VERIFY).status == 503  # unknown OTP: "*" only
    assert carrier.decide("+33612345678", Endpoint.CANCEL).action is Action.DELIVER


def test_an_unknown_subject_meets_only_rules_for_everyone() -> None:
    from otpsim.engine.carrier import Endpoint

    carrier = carrier_with(
        Rule.of("re:.*", Fate(Action.ERROR, status=500), on=[Endpoint.STATUS]),
        Rule.of("+33*", Fate(Action.ERROR, status=500), on=[Endpoint.STATUS]),
    )
    assert carrier.decide(None, Endpoint.STATUS).action is Action.DELIVER


def test_sequences_count_per_endpoint_and_subject() -> None:
    from otpsim.engine.carrier import Endpoint

    rule = Rule.of(
        "*", Fate(Action.ERROR, status=500), Fate(), on=[Endpoint.VERIFY, Endpoint.STATUS]
    )
    carrier = carrier_with(rule)
    assert carrier.decide("+331", Endpoint.VERIFY).action is Action.ERROR
    assert carrier.decide("+331", Endpoint.STATUS).action is Action.ERROR  # its own count
    assert carrier.decide("+332", Endpoint.VERIFY).action is Action.ERROR  # its own count
    assert carrier.decide("+331", Endpoint.VERIFY).action is Action.DELIVER


def test_sms_outcomes_are_refused_on_other_endpoints() -> None:
    from otpsim.engine.carrier import Endpoint

    with pytest.raises(ValueError, match="SMS outcome"):
        Rule.of("*", Fate(Action.UNDELIVERED), on=[Endpoint.VERIFY])
    with pytest.raises(ValueError, match="SMS outcome"):
        Rule.of("*", Fate(delay=5), on=[Endpoint.CREATE, Endpoint.CANCEL])


def test_the_rule_that_decides_is_noted_when_a_request_is_journaled() -> None:
    from otpsim.engine.network import FIRED

    carrier = carrier_with(
        Rule.of("+33612345678", Fate(Action.UNDELIVERED), note="lost"),
        Rule.of("+44*", Fate(Action.REJECT)),
    )
    carrier.decide("+33612345678")  # not journaled: nothing recorded, nothing fails
    fired: list[str] = []
    token = FIRED.set(fired)
    try:
        carrier.decide("+33612345678")
        carrier.decide("+447700900123")
        carrier.decide("+15005550002")  # a magic number is a rule too
        carrier.decide("+4915123456789")  # no rule: the default decides, nothing noted
    finally:
        FIRED.reset(token)
    assert fired == ["lost", "+44*", "never delivered (UNDELIVERED)"]
