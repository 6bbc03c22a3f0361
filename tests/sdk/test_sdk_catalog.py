"""The error catalog speaks the provider's language: the official SDK's Error.type enum."""

from __future__ import annotations

from smscx_client.model.error import Error

from otpsim.errors import E, ErrorSpec

SPECS = [v for v in vars(E).values() if isinstance(v, ErrorSpec)]


def sdk_error_types() -> set[str]:
    """The enum as the installed SDK (smscx-client 0.1.13) defines it, not a copy."""
    return set(Error.allowed_values[("type",)].values())


def test_the_sdk_enum_is_the_one_the_issue_quotes() -> None:
    types = sdk_error_types()
    assert len(types) == 22
    assert {"invalid_api_key", "invalid_client", "invalid_method", "invalid_body"} <= types


def test_every_provider_api_error_type_is_in_the_sdk_enum() -> None:
    outside = [
        s for s in SPECS if s.surface in ("provider", "edge") and s.type not in sdk_error_types()
    ]
    assert outside == [], (
        "the provider never answers these types (the official SDKs' Error.type enum); "
        "use one of its types, or mark a control-API-only error surface='control'"
    )


def test_only_the_control_api_keeps_types_of_its_own() -> None:
    assert {s.surface for s in SPECS} == {"provider", "control", "edge"}
    control = {s.code for s in SPECS if s.surface == "control"}
    assert control == {1020, 1021, 1022, 1023, 1024, 1030, 1040}
