"""PIN alphabets, lengths and comparison."""

import random
import string

import pytest

from otpsim.domain.pins import ALPHABETS, generate, matches


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
