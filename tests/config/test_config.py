"""Configuration: TOML + environment + secret files, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stocksyncd.config import effective_every, load_config, parse_duration
from stocksyncd.errors import ConfigError

BASE = """
[daemon]
state_url = "sqlite:///state.db"

[shops.main]
url = "https://shop.myinsales.ru/"
api_key = "insales-key"
password = "insales-password"

[integrations.fulfilment]
type = "kak2c-insales"
shop = "main"
login = "user@example.com"
password = "kak2c-password"

[integrations.parts]
type = "mouser-inventree"
inventree_url = "https://inventree.example.com"
inventree_token = "inventree-token"
mouser_api_key = "mouser-key"
mouser_supplier = 3
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # No override from the machine running the tests may leak in.
    import os

    for name in list(os.environ):
        if name.startswith("STOCKSYNCD_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_a_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.shops["main"].url == "https://shop.myinsales.ru"  # trailing slash dropped
    fulfilment = config.integrations["fulfilment"]
    assert fulfilment.type == "kak2c-insales"
    assert effective_every(fulfilment, fulfilment.type) == 60.0
    assert effective_every(config.integrations["parts"], "mouser-inventree") == 90.0
    assert config.web.listen == "127.0.0.1:8780"
    assert set(config.secret_values()) >= {"insales-password", "kak2c-password", "mouser-key"}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("login =", "logn ="), "integrations.fulfilment.logn: unknown key"),
        (("login =", "logn ="), "integrations.fulfilment.login: required key is missing"),
        (('shop = "main"', 'shop = "other"'),
         "integrations.fulfilment.shop: shop 'other' is not defined in [shops] (defined: main)"),
        (("mouser_supplier = 3", ""),
         "integrations.parts.mouser_supplier: required key is missing"),
        (("mouser_supplier = 3", 'mouser_supplier = "three"'),
         "integrations.parts.mouser_supplier: Input should be a valid integer"),
        (("mouser_supplier = 3", "mouser_supplier = 0"),
         "integrations.parts.mouser_supplier: Input should be greater than or equal to 1"),
        (('type = "kak2c-insales"', 'type = "kak2c"'),
         "integrations.fulfilment: unknown integration type"),
        (('url = "https://shop.myinsales.ru/"', 'url = "shop.myinsales.ru"'),
         "shops.main.url: 'shop.myinsales.ru' is not an http(s) URL"),
        (('state_url = "sqlite:///state.db"', 'state_url = "mysql://x"'),
         "daemon.state_url: state_url must start with sqlite:// or postgresql://"),
        (('shop = "main"', 'shop = "main"\nevery = "soon"'),
         "integrations.fulfilment.every: 'soon' is not a duration"),
        (('shop = "main"', 'shop = "main"\nevery = "1m"\ncron = "* * * * *"'),
         "give either 'every' or 'cron', not both"),
        (('shop = "main"', 'shop = "main"\ncron = "61 * * * *"'),
         "integrations.fulfilment.cron: invalid cron expression '61 * * * *'"),
        (('shop = "main"', 'shop = "main"\nzero_guard = 1.5'),
         "integrations.fulfilment.zero_guard: Input should be less than or equal to 1"),
    ],
)
def test_errors_name_the_key_and_the_problem(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in BASE
    message = error_of(tmp_path, BASE.replace(old, new, 1))
    assert expected in message, message


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    text = BASE.replace("login =", "logn =").replace("mouser_supplier = 3", "")
    message = error_of(tmp_path, text)
    assert "integrations.fulfilment.logn: unknown key" in message
    assert "integrations.parts.mouser_supplier: required key is missing" in message


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE + "\n[daemon\n")
    assert "TOML syntax error" in message and "line" in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_non_loopback_listen_needs_a_token(tmp_path: Path) -> None:
    text = BASE + '\n[web]\nlisten = "0.0.0.0:8780"\n'
    assert "set web.token" in error_of(tmp_path, text)
    assert load_config(write(tmp_path, text + 'token = "t0ken-value"\n')).web.port == 8780


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKSYNCD_INTEGRATIONS__FULFILMENT__PASSWORD", "from-env")
    monkeypatch.setenv("STOCKSYNCD_DAEMON__LOG_LEVEL", "debug")
    monkeypatch.setenv("STOCKSYNCD_INTEGRATIONS__FULFILMENT__EVERY", "30s")
    config = load_config(write(tmp_path, BASE))
    fulfilment = config.integrations["fulfilment"]
    assert fulfilment.password.get_secret_value() == "from-env"  # type: ignore[union-attr]
    assert fulfilment.login == "user@example.com"  # the rest of the section is kept
    assert fulfilment.every == 30.0
    assert config.daemon.log_level == "DEBUG"


def test_a_bad_environment_value_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKSYNCD_INTEGRATIONS__PARTS__MOUSER_SUPPLIER", "many")
    assert "integrations.parts.mouser_supplier" in error_of(tmp_path, BASE)


def test_secrets_come_from_credential_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "integrations__fulfilment__password").write_text("from-file\n")
    (creds / "shops__main__password").write_text("shop-from-file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = BASE.replace('password = "kak2c-password"\n', "")  # only in the file now
    config = load_config(write(tmp_path, text))
    fulfilment = config.integrations["fulfilment"]
    assert fulfilment.password.get_secret_value() == "from-file"  # type: ignore[union-attr]
    assert config.shops["main"].password.get_secret_value() == "shop-from-file"
    # The environment still wins over a file.
    monkeypatch.setenv("STOCKSYNCD_SHOPS__MAIN__PASSWORD", "env-wins")
    assert load_config(write(tmp_path, text)).shops["main"].password.get_secret_value() == (
        "env-wins")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0),
     ("500ms", 0.5), (" 1.5m ", 90.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", True, "1w", None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_default_state_path_is_absolute() -> None:
    from stocksyncd.config import DaemonConfig

    # sqlite:/// + an absolute path: four slashes, the same file from any directory.
    assert DaemonConfig().state_url == "sqlite:////var/lib/stocksyncd/state.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "is empty"), ("# nothing yet\n\n", "is empty"),
     ('[daemon]\nlog_level = "DEBUG"\n', "configures no integration"),
     ("[integrations]\n", "configures no integration")],
)
def test_a_config_without_integrations_is_an_error(tmp_path: Path, text: str,
                                                   expected: str) -> None:
    message = error_of(tmp_path, text)
    assert expected in message and "[integrations.NAME]" in message, message


def test_an_environment_error_is_blamed_on_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKSYNCD_INTEGRATIONS__PARTS__MOUSER_SUPPLIER", "many")
    monkeypatch.setenv("STOCKSYNCD_DAEMON__LOG_LEVL", "debug")
    message = error_of(tmp_path, BASE)
    assert ("integrations.parts.mouser_supplier: Input should be a valid integer, unable to "
            "parse string as an integer (set by environment variable "
            "STOCKSYNCD_INTEGRATIONS__PARTS__MOUSER_SUPPLIER)") in message, message
    assert ("daemon.log_levl: unknown key (set by environment variable "
            "STOCKSYNCD_DAEMON__LOG_LEVL)") in message, message
    # Nothing is wrong with the file, so the message does not start with its name.
    assert message.startswith("invalid configuration"), message


def test_a_model_level_error_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKSYNCD_WEB__LISTEN", "0.0.0.0:8780")
    message = error_of(tmp_path, BASE)
    assert "web.listen: 0.0.0.0:8780 is not a loopback address" in message
    assert "(set by environment variable STOCKSYNCD_WEB__LISTEN)" in message


def test_a_file_error_still_names_the_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKSYNCD_DAEMON__LOG_LEVEL", "debug")
    message = error_of(tmp_path, BASE.replace("mouser_supplier = 3", "mouser_supplier = 0"))
    assert message.startswith(f"{tmp_path / 'config.toml'}: invalid configuration"), message
    assert "integrations.parts.mouser_supplier: Input should be greater than or equal to 1\n" in (
        message + "\n")


def test_a_bad_secret_file_is_blamed_on_the_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "integrations__parts__calls_per_day").write_text("lots")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    message = error_of(tmp_path, BASE)
    assert f"(set by secret file {creds / 'integrations__parts__calls_per_day'})" in message


def test_an_integration_named_like_its_type_keeps_its_name(tmp_path: Path) -> None:
    text = BASE.replace("[integrations.parts]", '[integrations."mouser-inventree"]').replace(
        "[integrations.fulfilment]", '[integrations."kak2c-insales"]'
    ).replace("mouser_supplier = 3", 'mouser_supplier = 3\nevery = "soon"').replace(
        'login = "user@example.com"', 'login = "user@example.com"\nevery = "sometime"')
    message = error_of(tmp_path, text)
    assert "integrations.mouser-inventree.every: 'soon' is not a duration" in message, message
    assert "integrations.kak2c-insales.every: 'sometime' is not a duration" in message, message
    assert "integrations.every" not in message


def test_allowed_hosts_are_names_without_port(tmp_path: Path) -> None:
    text = BASE + '[web]\nallowed_hosts = ["Stock.Example.COM.", "::1"]\n'
    ok = load_config(write(tmp_path, text))
    assert ok.web.allowed_hosts == ("stock.example.com", "::1")
    message = error_of(tmp_path, BASE + '[web]\nallowed_hosts = ["stock.example.com:8780"]\n')
    assert "web.allowed_hosts" in message and "without port" in message
