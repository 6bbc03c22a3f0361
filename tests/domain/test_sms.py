"""GSM-7 / UCS-2 detection and the exact part counts of concatenated SMS."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpsim.domain.sms import GSM7, UCS2, encoding_of, render, segment


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, GSM7, 1),
        ("a" * 161, GSM7, 2),
        ("a" * 306, GSM7, 2),
        ("a" * 307, GSM7, 3),
        ("Ω@£$¥èé" + "a" * 153, GSM7, 1),  # Greek and accented letters are in the basic table
        ("é" * 160, GSM7, 1),
        ("€" * 80, GSM7, 1),  # extension characters count two septets: 160
        ("€" * 81, GSM7, 2),
        ("ж" * 70, UCS2, 1),
        ("ж" * 71, UCS2, 2),
        ("ж" * 134, UCS2, 2),
        ("ж" * 135, UCS2, 3),
        ("😀" * 35, UCS2, 1),  # a surrogate pair is two UTF-16 units
        ("😀" * 36, UCS2, 2),
    ],
)
def test_parts_and_encoding(text: str, encoding: str, parts: int) -> None:
    seg = segment(text)
    assert (seg.encoding, seg.parts) == (encoding, parts)


def test_extension_escape_is_never_split_between_parts() -> None:
    # 152 plain septets then '{' (2 septets): the pair cannot straddle part 1 (153 max),
    # so part 1 holds 152 septets and the rest moves on.
    text = "a" * 152 + "{" + "a" * 152
    assert segment(text).units == 306
    assert segment(text).parts == 3  # 152 | 2+151 | 1


def test_surrogate_pair_is_never_split_between_parts() -> None:
    text = "ж" * 66 + "😀" + "ж" * 66
    assert segment(text).parts == 3  # 66 | 2+65 | 1


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2() -> None:
    assert encoding_of("Your code is 1234") == GSM7
    assert encoding_of("Your code is 1234 ✓") == UCS2
    assert encoding_of("Ваш код 1234") == UCS2


def test_render_replaces_every_placeholder() -> None:
    assert render("{{pin}} - again {{pin}}", "1234") == "1234 - again 1234"


GSM_HEAVY = st.text(alphabet=st.sampled_from("ab1 {}€^[]|~\\\f@£Ωé"), max_size=400)


@given(st.one_of(GSM_HEAVY, st.text(max_size=200)))
def test_units_count_every_character(text: str) -> None:
    seg = segment(text)
    if seg.encoding == GSM7:
        expected = sum(2 if ch in "{}€^[]|~\\\f" else 1 for ch in text)
    else:
        expected = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
    assert seg.units == expected
    single, per_part = (160, 153) if seg.encoding == GSM7 else (70, 67)
    assert seg.parts == 1 if expected <= single else seg.parts >= -(-expected // per_part)
