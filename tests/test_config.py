"""Settings from config file, environment and flags; errors name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpsim.config import OPTIONS, Settings, load_settings
from otpsim.errors import OtpsimError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "otpsim.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_when_nothing_is_given() -> None:
    assert load_settings(cli={}, env={}) == Settings()


def test_config_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
port: 9000
api_keys: [k1, k2]
oauth_clients: ["app:secret"]
rate_limit: 5
defaults:
  from: ACME
  template: "ACME {{pin}}"
  ttl: 120
  maxAttempts: 5
  pinType: alphanumeric
  pinLength: 8
price_per_part: 0.07
clock:
  frozen: true
  start: "2030-01-01T00:00:00Z"
""",
    )
    s = load_settings(cli={}, env={}, config_path=path)
    assert (s.port, s.api_keys, s.oauth_clients, s.rate_limit) == (
        9000,
        ("k1", "k2"),
        (("app", "secret"),),
        5,
    )
    assert s.otp_defaults.sender == "ACME"
    assert s.otp_defaults.pin_length == 8
    assert (s.price_per_part, s.clock_frozen, s.clock_start) == (0.07, True, "2030-01-01T00:00:00Z")


def test_precedence_config_then_env_then_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\nrate_limit: 5\nseed: 1\n")
    env = {"OTPSIM_PORT": "9100", "OTPSIM_RATE_LIMIT": "7", "OTPSIM_API_KEY": "a, b"}
    s = load_settings(cli={"port": 9200}, env=env, config_path=path)
    assert (s.port, s.rate_limit, s.seed, s.api_keys) == (9200, 7, 1, ("a", "b"))


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9300\n")
    assert load_settings(cli={}, env={"OTPSIM_CONFIG": path}).port == 9300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port: 9000\nprot: 1\n", ":2: prot: unknown key (expected one of:"),
        ("defaults:\n  from: ACME\n  tll: 5\n", ":3: defaults.tll: unknown key"),
        ("port: 9000\nport2: [\n", ":3: invalid YAML"),
        ("port: lots\n", ":1: port: expected an integer"),
        ("port: 70000\n", ":1: port: expected a port from 0 to 65535"),
        ("oauth_clients: [nosecret]\n", ":1: oauth_clients: expected ID:SECRET"),
        ("\n\ndefaults:\n  ttl: 30\n", ":4: defaults.ttl: Min value for 'ttl' is 60 seconds"),
        ("defaults:\n  template: hello\n", ":2: defaults.template: The parameter 'template'"),
        ("defaults:\n  pinType: emoji\n", ":2: defaults.pinType: Invalid parameter 'pinType'"),
        ("clock:\n  start: someday\n", ":2: clock.start: not an ISO 8601 time"),
        ("- a\n- b\n", ":1: expected a mapping of settings"),
        ("defaults: 5\n", ":1: defaults: expected a mapping"),
        ("callbacks:\n  url: ftp://x\n", ":2: callbacks.url: expected an absolute http(s) URL"),
        (
            "callbacks:\n  url: http://127.0.0.1%3A80/x\n",
            ":2: callbacks.url: expected a URL callbacks can",
        ),
        ("callbacks:\n  retry_schedule: []\n", ":2: callbacks.retry_schedule: expected at least"),
        ("callbacks:\n  retry_schedule: [0, -5]\n", ":2: callbacks.retry_schedule: expected a"),
        ("seed: -1\n", ":1: seed: expected a whole number from 0 to 18446744073709551615"),
        (f"seed: {2**64}\n", ":1: seed: expected a whole number from 0 to 18446744073709551615"),
        (f"\nseed: {'9' * 5000}\n", ":2: invalid YAML: integer with more than 100 digits"),
        (
            "port: 1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22:23:24:25:26:27:28:29:"
            "30:31:32:33:34:35:36:37:38:39:40:41:42:43:44:45:46:47:48:49:50:51:52:53:54:55:56:57\n",
            ":1: invalid YAML: integer with more than 100 digits",
        ),
    ],
)
def test_config_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OtpsimError) as info:
        load_settings(cli={}, env={}, config_path=path)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert expected in message, message
    assert "\n" not in message


def test_callback_settings_from_env_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "callbacks:\n  url: http://127.0.0.1:9/hook\n  timeout: 2\n")
    env = {"OTPSIM_CALLBACK_RETRY_SCHEDULE": "0, 1.5, 60", "OTPSIM_CALLBACK_SECRET": "whsec_AA=="}
    s = load_settings(cli={}, env=env, config_path=path)
    assert s.callback_url == "http://127.0.0.1:9/hook"
    assert s.callback_timeout == 2
    assert s.callback_retry_schedule == (0, 1.5, 60)
    assert s.callback_secret == "whsec_AA=="


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(OtpsimError, match=r"^OTPSIM_RATE_LIMIT: expected a whole number"):
        load_settings(cli={}, env={"OTPSIM_RATE_LIMIT": "-3"})
    with pytest.raises(OtpsimError, match=r"^OTPSIM_DEFAULT_TTL: Max value for 'ttl'"):
        load_settings(cli={}, env={"OTPSIM_DEFAULT_TTL": "4000"})


def test_seed_from_environment_is_bounded() -> None:
    assert load_settings(cli={}, env={"OTPSIM_SEED": str(2**64 - 1)}).seed == 2**64 - 1
    with pytest.raises(
        OtpsimError, match=r"^OTPSIM_SEED: expected an integer of at most 30 digits$"
    ):
        load_settings(cli={}, env={"OTPSIM_SEED": "7" * 5000})


def test_missing_config_file() -> None:
    with pytest.raises(OtpsimError, match="cannot read config file"):
        load_settings(cli={}, env={}, config_path="/nonexistent/otpsim.yaml")


def test_every_option_has_a_distinct_flag_env_and_key() -> None:
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)
    assert len({o.key for o in OPTIONS}) == len(OPTIONS)
    assert all(o.env.startswith("OTPSIM_") for o in OPTIONS)


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("default_from", "x", "from"),
        ("default_template", "no placeholder", "template"),
        ("default_ttl", "5", "ttl"),
        ("default_max_attempts", "0", "maxAttempts"),
        ("default_pin_type", "emoji", "pinType"),
        ("default_pin_length", "99", "pinLength"),
    ],
)
def test_a_bad_default_is_named_by_the_error_not_found_in_its_text(
    field: str, value: str, param: str
) -> None:
    from otpsim.domain.request import check_defaults
    from otpsim.errors import ProviderError

    with pytest.raises(OtpsimError, match=f"^OTPSIM_{field.upper()}: "):
        load_settings(env={f"OTPSIM_{field.upper()}": value})
    settings = Settings(**{field: int(value) if value.isdigit() else value})  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as refused:
        check_defaults(settings.otp_defaults)
    assert refused.value.param == param  # carried by the exception


def test_fixed_pins_from_flags_env_and_file(tmp_path: Path) -> None:
    from otpsim.cli import _cli_values, _parser

    args = _parser().parse_args(
        ["serve", "--fixed-pin", "+33612345678=123456", "--fixed-pin", "4477009*=ABCD"]
    )
    assert _cli_values(args)["fixed_pins"] == (("+33612345678", "123456"), ("+4477009*", "ABCD"))
    env = {"OTPSIM_FIXED_PIN": r"re:^\+1555=0000,*=999999"}
    assert load_settings(env=env).fixed_pins == ((r"re:^\+1555", "0000"), ("*", "999999"))
    path = write(tmp_path, "fixed_pins: ['+33612345678=123456']\n")
    assert load_settings(env={}, config_path=path).fixed_pins == (("+33612345678", "123456"),)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("+33612345678", "OTPSIM_FIXED_PIN: expected NUMBER_OR_PATTERN=PIN, got '+33612345678'"),
        (
            "+33612345678=12",
            "OTPSIM_FIXED_PIN: expected a PIN of 4 to 10 digits or capital letters, got '12'",
        ),
        (
            "+33612345678=abcdef",
            "OTPSIM_FIXED_PIN: expected a PIN of 4 to 10 digits or capital letters, got 'abcdef'",
        ),
        (
            "phone=123456",
            "OTPSIM_FIXED_PIN: expected an E.164 number, a prefix ending in '*' or re:REGEX, got 'phone'",
        ),
        ("re:([=123456", "OTPSIM_FIXED_PIN: invalid regular expression"),
    ],
)
def test_a_bad_fixed_pin_is_one_clear_line(given: str, expected: str) -> None:
    with pytest.raises(OtpsimError) as info:
        load_settings(env={"OTPSIM_FIXED_PIN": given})
    assert str(info.value).startswith(expected), str(info.value)


def test_beyond_loopback_needs_an_admin_token_or_an_explicit_insecure_open() -> None:
    with pytest.raises(OtpsimError) as refused:
        load_settings(env={"OTPSIM_HOST": "0.0.0.0"})
    assert "needs --admin-token" in str(refused.value)
    assert "--insecure-open true" in str(refused.value)  # the way out is named
    opened = load_settings(env={"OTPSIM_HOST": "0.0.0.0", "OTPSIM_INSECURE_OPEN": "true"})
    assert opened.insecure_open
    assert opened.admin_token is None


def test_insecure_open_is_announced_loudly_only_when_it_opens_something() -> None:
    from otpsim.cli import exposure_warning

    opened = load_settings(env={"OTPSIM_HOST": "0.0.0.0", "OTPSIM_INSECURE_OPEN": "true"})
    warning = exposure_warning(opened, 8790)
    assert warning is not None
    assert warning.startswith("otpsim: WARNING: --insecure-open: 0.0.0.0:8790 has no admin token")
    assert "every PIN" in warning
    guarded = load_settings(
        env={"OTPSIM_HOST": "0.0.0.0", "OTPSIM_INSECURE_OPEN": "true", "OTPSIM_ADMIN_TOKEN": "t"}
    )
    assert exposure_warning(guarded, 8790) is None
    assert exposure_warning(load_settings(env={"OTPSIM_INSECURE_OPEN": "true"}), 8790) is None
