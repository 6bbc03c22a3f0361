"""Phone parsing with phonenumbers, and the languages used for localized templates."""

import pytest

from otpsim.domain.phones import country_languages, parse
from otpsim.errors import ProviderError


def test_e164_number_gets_its_country() -> None:
    assert parse("+33612345678", None) == ("+33612345678", "FR")
    assert parse("+447400123456", None) == ("+447400123456", "GB")


def test_national_number_with_country() -> None:
    assert parse("06 12 34 56 78", "fr") == ("+33612345678", "FR")


def test_country_is_ignored_for_e164() -> None:
    assert parse("+33612345678", "DE").country_iso == "FR"
    assert parse("+33612345678", "UK").country_iso == "FR"


@pytest.mark.parametrize(
    ("raw", "country", "code"),
    [
        ("0612345678", None, 2002),
        ("0612345678", "UK", 2003),  # ISO-3166 says GB
        ("0612345678", "ZZ", 2003),
        ("+3361234", None, 2020),
        ("+447700900123", None, 2020),  # the UK drama range is not a valid number
        ("not a number", "FR", 2020),
        ("+" + "1" * 300, None, 2020),
    ],
)
def test_errors(raw: str, country: str | None, code: int) -> None:
    with pytest.raises(ProviderError) as info:
        parse(raw, country)
    assert info.value.spec.code == code


def test_country_languages_in_order_of_use() -> None:
    assert country_languages("FR") == ("fr",)
    assert country_languages("BE")[:2] == ("nl", "fr")
    assert "fr" in country_languages("CA")
    assert country_languages("BG") == ("bg",)
