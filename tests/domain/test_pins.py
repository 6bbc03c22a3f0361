"""PIN alphabets, lengths and comparison."""

import math
import os
import random
import string
from collections import Counter

import pytest

from otpsim.domain.pins import ALPHABETS, from_random_bytes, generate, matches
from otpsim.entropy import EntropyPool, token_bytes


@pytest.mark.parametrize(
    ("pin_type", "alphabet"),
    [
        ("numbers", string.digits),
        ("letters", string.ascii_uppercase),
        ("alphanumeric", string.ascii_uppercase + string.digits),
    ],
)
@pytest.mark.parametrize("length", [4, 6, 10])
def test_pins_use_the_alphabet_and_length(pin_type: str, alphabet: str, length: int) -> None:
    pins = {generate(pin_type, length) for _ in range(200)}
    assert all(len(p) == length and set(p) <= set(alphabet) for p in pins)
    assert len(pins) > 150  # random, not constant


def test_alphanumeric_pins_mix_letters_and_digits() -> None:
    chars = "".join(generate("alphanumeric", 10) for _ in range(100))
    assert any(c.isdigit() for c in chars)
    assert any(c.isalpha() for c in chars)


def test_seeded_generation_replays() -> None:
    a = [generate("numbers", 6, random.Random(3)) for _ in range(3)]
    b = [generate("numbers", 6, random.Random(3)) for _ in range(3)]
    assert a == b


def test_matches_is_exact_and_case_sensitive() -> None:
    assert matches("AB12", "AB12")
    assert not matches("AB12", "ab12")
    assert not matches("AB12", "AB123")
    assert set(ALPHABETS) == {"numbers", "letters", "alphanumeric"}


@pytest.mark.parametrize("pin_type", ["numbers", "letters", "alphanumeric"])
def test_every_character_is_about_equally_likely(pin_type: str) -> None:
    alphabet = ALPHABETS[pin_type]
    counts = Counter("".join(generate(pin_type, 10) for _ in range(10_000)))
    expected = 100_000 / len(alphabet)
    assert set(counts) == set(alphabet)
    # Chi-squared against uniform, with a bound a fair generator passes but for one run
    # in about a million. Without rejection sampling the modulo bias on the letters and
    # alphanumeric alphabets (256 % 36 = 4 characters drawn 8/7 as often) lands above it.
    df = len(alphabet) - 1
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi2 < df + 6 * math.sqrt(2 * df) + 10


def test_the_pool_never_hands_out_the_same_bytes_twice() -> None:
    pool = EntropyPool(block=64)
    chunks = [pool.take(16) for _ in range(40)] + [pool.take(100)]  # across refills
    assert len(set(chunks)) == len(chunks)
    assert [len(c) for c in chunks] == [16] * 40 + [100]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_its_parents_bytes() -> None:
    token_bytes(1)  # the pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes, then leave at once
        os.write(write, token_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != token_bytes(32)  # the parent's next bytes


def test_a_fixed_pin_fits_a_request_or_says_why_not() -> None:
    from otpsim.domain.pins import check_fixed, misfit

    assert misfit("123456", "numbers", 6) is None
    assert misfit("123456", "alphanumeric", 6) is None  # digits are alphanumeric too
    assert misfit("ABCDEF", "letters", 6) is None
    assert misfit("1234", "numbers", 6) == "its pinLength is 6"
    assert misfit("AB12", "numbers", 4) == "its pinType is numbers"
    assert check_fixed("0000") == "0000"
    for bad in ("123", "12345678901", "abcd", "12 34", ""):
        with pytest.raises(ValueError, match="expected a PIN of 4 to 10 digits or capital"):
            check_fixed(bad)


def test_a_pin_from_given_random_bytes_and_topped_up_when_rejection_leaves_too_few() -> None:
    # Digits: byte b is digit b % 10 below 250; 250-255 are dropped (no bias).
    assert from_random_bytes("numbers", 6, bytes([0, 11, 22, 250, 33, 44, 55, 66])) == "012345"
    for pin_type, alphabet in ALPHABETS.items():
        pin = from_random_bytes(pin_type, 8, b"\xff" * 16)  # every byte dropped: read more
        assert len(pin) == 8
        assert set(pin) <= set(alphabet)
