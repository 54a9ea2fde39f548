"""CLI exit codes and messages."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from stocksyncd.cli import main

GOOD = """
[daemon]
state_url = "sqlite:///x.db"
[web]
listen = "127.0.0.1:{port}"
token = "{token}"
[shops.main]
url = "https://shop.myinsales.ru"
api_key = "key-1234"
password = "pass-1234"
[integrations.fulfilment]
type = "kak2c-insales"
shop = "main"
login = "l"
password = "kak2c-pass"
[integrations.warehouse]
type = "moysklad-insales"
shop = "main"
token = "ms-token-1234"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def good(tmp_path: Path, port: int = 8780, token: str = "") -> str:
    return write(tmp_path, GOOD.format(port=port, token=token))


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", good(tmp_path), "check-config"]) == 0
    assert capsys.readouterr().out == "OK: 2 integrations (fulfilment, warehouse)\n"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STOCKSYNCD_CONFIG", good(tmp_path))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 integrations")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[daemon]", "[daemon]\nlog_levle = 'INFO'"), "daemon.log_levle: unknown key"),
        (('shop = "main"\nlogin', 'shop = "other"\nlogin'), "shop 'other' is not defined"),
        (('type = "kak2c-insales"', 'type = "kak2c"'), "unknown integration type"),
        (("[web]", "[web"), "TOML syntax error"),
    ],
)
def test_check_config_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          change: tuple[str, str], expected: str) -> None:
    text = GOOD.format(port=8780, token="").replace(*change)
    assert main(["--config", write(tmp_path, text), "check-config"]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and captured.out == ""


@pytest.mark.parametrize("command", [["check-config"], ["sync", "fulfilment", "--dry-run"],
                                     ["check"], ["run"], ["test", "fulfilment"]])
def test_config_option_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         command: list[str]) -> None:
    from stocksyncd.cli import build_parser

    path = good(tmp_path)
    args, extra = build_parser().parse_known_args([*command, "--config", path])
    assert extra == [] and str(args.config) == path
    # Given before the command, it is not lost when the command has none.
    args, _ = build_parser().parse_known_args(["--config", path, *command])
    assert str(args.config) == path


def test_check_config_after_the_command_runs(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", good(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 integrations")


def test_an_empty_config_fails_the_check(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", write(tmp_path, "")]) == 2
    captured = capsys.readouterr()
    assert "is empty" in captured.err and captured.out == ""


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "check-config"]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["sync"], ["check-config", "--what"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_sync_unknown_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", good(tmp_path), "sync", "nope", "--json"]) == 2
    err = capsys.readouterr().err
    assert "unknown integration 'nope'" in err and "fulfilment, warehouse" in err


def test_demo_missing_or_dispatched(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import importlib
    import types

    real = importlib.import_module

    def fake_import(name: str, *args: object) -> types.ModuleType:
        if name == "stocksyncd.demo":
            raise ImportError("No module named 'stocksyncd.demo'")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert main(["demo"]) == 2
    assert "demo is not available" in capsys.readouterr().err

    seen: list[list[str]] = []
    demo = types.ModuleType("stocksyncd.demo")
    demo.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: demo if name == "stocksyncd.demo" else real(name))
    assert main(["demo", "--port", "9000"]) == 0
    assert seen == [["--port", "9000"]]


class _Health(BaseHTTPRequestHandler):
    status = 200
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        body = b'{"status":"ok"}' if self.path == "/healthz" else b"{}"
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_check_healthy_and_unhealthy(tmp_path: Path, health_server: HTTPServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    port = health_server.server_address[1]
    path = good(tmp_path, port=port, token="web-token-1234")
    _Health.status = 200
    assert main(["--config", path, "check"]) == 0
    assert _Health.seen_auth[-1] == "Bearer web-token-1234"
    _Health.status = 503
    assert main(["--config", path, "check"]) == 1
    assert "HTTP 503" in capsys.readouterr().err


def test_check_connection_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--config", good(tmp_path, port=port), "check"]) == 1
    assert "cannot reach the daemon" in capsys.readouterr().err
