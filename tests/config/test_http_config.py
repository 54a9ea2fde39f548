"""``[http]`` bounds and a shop URL that carries its credentials (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stocksyncd.config import load_config
from stocksyncd.errors import ConfigError
from stocksyncd.http.limits import MIB, Limits

SHOP = """
[daemon]
state_url = "sqlite:///state.db"

[shops.main]
{shop}

[integrations.fulfilment]
type = "kak2c-insales"
shop = "main"
login = "l"
password = "p"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STOCKSYNCD_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_credentials_in_the_shop_url_move_to_api_key_and_password(tmp_path: Path) -> None:
    config = load(tmp_path, SHOP.format(
        shop='url = "https://my-id:my%40pass@shop.myinsales.ru/"'))
    shop = config.shops["main"]  # type: ignore[attr-defined]
    assert shop.url == "https://shop.myinsales.ru"
    assert shop.api_key.get_secret_value() == "my-id"
    assert shop.password.get_secret_value() == "my@pass"
    assert "my@pass" in config.secret_values()  # type: ignore[attr-defined]


def test_the_same_credentials_given_twice_are_fine(tmp_path: Path) -> None:
    config = load(tmp_path, SHOP.format(shop='url = "https://my-id:pw-1234@shop.myinsales.ru"\n'
                                             'api_key = "my-id"\npassword = "pw-1234"'))
    assert config.shops["main"].url == "https://shop.myinsales.ru"  # type: ignore[attr-defined]


def test_credentials_that_disagree_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, SHOP.format(shop='url = "https://my-id:pw-1234@shop.myinsales.ru"\n'
                                        'api_key = "other"\npassword = "pw-1234"'))
    text = str(caught.value)
    assert "shops.main: url: the credentials in the URL differ from api_key" in text
    assert "pw-1234" not in text


def test_http_bounds_have_defaults_and_can_be_configured(tmp_path: Path) -> None:
    base = SHOP.format(shop='url = "https://s.myinsales.ru"\napi_key = "k"\npassword = "p"')
    config = load(tmp_path, base)
    assert config.http.limits("moysklad") == Limits(max_response_bytes=64 * MIB)  # type: ignore[attr-defined]
    config = load(tmp_path, base + """
[http]
max_wait = "2m"
min_429_wait = "3s"
breaker_429s = 10
breaker_pause = "10m"
max_response_mib = { kak2c = 4 }
""")
    limits = config.http.limits("kak2c")  # type: ignore[attr-defined]
    assert limits == Limits(max_wait=120, min_429_wait=3, breaker_429s=10, breaker_pause=600,
                            max_response_bytes=4 * MIB)


@pytest.mark.parametrize(("text", "expected"), [
    ("breaker_429s = 500", "http.breaker_429s: Input should be less than or equal to 150"),
    ('max_wait = "2d"', "http.max_wait: Input should be less than or equal to 3600"),
    ("max_response_mib = { kak2c = 0 }", "http.max_response_mib: kak2c: 0 MiB is outside 1..4096"),
    ("max_response_mib = { shop = 4 }", "http.max_response_mib.shop"),
])
def test_bad_http_bounds_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    base = SHOP.format(shop='url = "https://s.myinsales.ru"\napi_key = "k"\npassword = "p"')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, base + "\n[http]\n" + text + "\n")
    assert expected in str(caught.value)
