"""The systemd unit, the Dockerfile and the example config carry what operators rely on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from stocksyncd.config import (
    Config,
    DaemonConfig,
    HttpConfig,
    Kak2cInSalesConfig,
    MouserInvenTreeConfig,
    MoySkladInSalesConfig,
    NotifyConfig,
    ShopConfig,
    WebConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "stocksyncd.service"
DOCKERFILE = ROOT / "Dockerfile"
EXAMPLE = ROOT / "config.example.toml"


def unit_directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value it is given (systemd allows repeats)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def test_unit_has_the_directives_that_matter() -> None:
    d = unit_directives(UNIT.read_text())
    assert d["Service.Type"] == ["notify"]
    assert d["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Service.ExecStart"][0].endswith(" run")
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.RestartPreventExitStatus"] == ["2"]
    assert int(d["Service.WatchdogSec"][0]) > 0
    # A fixed system user (sysusers.d), so the config's group can grant it read access.
    assert "Service.DynamicUser" not in d
    assert d["Service.User"] == ["stocksyncd"] and d["Service.Group"] == ["stocksyncd"]
    assert int(d["Service.LimitNOFILE"][0]) >= 4 * WebConfig().max_connections
    assert d["Service.StateDirectory"] == ["stocksyncd"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    assert d["Service.ProtectSystem"] == ["strict"]
    assert set(d["Service.RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in d["Service.SystemCallFilter"]
    assert d["Service.CapabilityBoundingSet"] == [""]
    assert d["Install.WantedBy"] == ["multi-user.target"]
    # LoadCredential is documented in the unit (commented until the operator fills it in).
    assert re.search(r"^#LoadCredential=\S+:\S+", UNIT.read_text(), re.M)
    # The grace period systemd allows must exceed the daemon's default drain time.
    assert int(d["Service.TimeoutStopSec"][0]) > DaemonConfig().shutdown_timeout


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart exists: point it at this interpreter.
    text = UNIT.read_text().replace("/opt/stocksyncd/bin/stocksyncd", sys.executable)
    assert text != UNIT.read_text()
    unit = tmp_path / "stocksyncd.service"
    unit.write_text(text)
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    # Unknown keys and unparsable values are only warnings to systemd ("ignoring"),
    # so any line about our file counts as a failure.
    problems = [line for line in proc.stderr.splitlines() if str(unit) in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def _docker_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_non_root_exec_form_with_healthcheck() -> None:
    instr = _docker_instructions(DOCKERFILE.read_text())
    froms = [v for k, v in instr if k == "FROM"]
    assert froms and all("slim" in f for f in froms)
    users = [v for k, v in instr if k == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    entry = [v for k, v in instr if k == "ENTRYPOINT"]
    cmd = [v for k, v in instr if k == "CMD"]
    assert json.loads(entry[-1]) == ["stocksyncd"]  # exec form: signals reach the daemon
    assert json.loads(cmd[-1]) == ["run"]
    health = [v for k, v in instr if k == "HEALTHCHECK"]
    assert health and 'CMD ["stocksyncd", "check"]' in health[0]
    volumes = json.loads(next(v for k, v in instr if k == "VOLUME"))
    assert "/var/lib/stocksyncd" in volumes and "/etc/stocksyncd" in volumes


def _keys(model: type[BaseModel]) -> set[str]:
    return {name for name in model.model_fields if name != "type"}


def test_example_config_is_valid_and_documents_every_key() -> None:
    config = load_config(EXAMPLE)
    assert {i.type for i in config.integrations.values()} == {
        "moysklad-insales", "kak2c-insales", "mouser-inventree"}
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([a-z0-9_]+)\s*=", text, re.M))
    for model in (DaemonConfig, WebConfig, HttpConfig, NotifyConfig,
                  ShopConfig, MoySkladInSalesConfig,
                  Kak2cInSalesConfig, MouserInvenTreeConfig):
        missing = _keys(model) - documented
        assert not missing, f"{model.__name__}: {sorted(missing)} not in config.example.toml"
    assert set(Config.model_fields) <= {"daemon", "web", "http", "notify", "shops", "integrations"}
