"""The systemd install as the README gives it: user, file modes, and who can read what.

The README's commands are run against a scratch root (``--root``), then the
service's user reads the config the way the daemon does, and a stranger and the
service user both fail to read what they must not.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stocksyncd.cli import main

from .test_deploy_files import ROOT, UNIT, unit_directives

README = ROOT / "README.md"
SYSUSERS = ROOT / "deploy" / "systemd" / "stocksyncd.sysusers"
TMPFILES = ROOT / "deploy" / "systemd" / "stocksyncd.tmpfiles"

CONFIG = """
[shops.main]
url = "https://shop.myinsales.ru"
api_key = "key"
password = "pass"
[integrations.warehouse]
type = "moysklad-insales"
shop = "main"
token = "ms-token"
"""


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def shell_lines(section: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_readme_installs_what_the_unit_expects() -> None:
    lines = shell_lines(readme_section("Running under systemd"))
    d = unit_directives(UNIT.read_text())
    user = d["Service.User"][0]
    exec_start = d["Service.ExecStart"][0].split()[0]
    venv = exec_start.removesuffix("/bin/stocksyncd")
    assert f"python3 -m venv {venv}" in " ".join(lines)  # the unit runs what the README installs
    assert any(f"{venv}/bin/pip install" in line for line in lines)
    assert "apt-get install -y python3-venv" in " ".join(lines)  # Debian 12 lacks ensurepip
    assert any("stocksyncd.sysusers /etc/sysusers.d/stocksyncd.conf" in line for line in lines)
    assert any("stocksyncd.tmpfiles /etc/tmpfiles.d/stocksyncd.conf" in line for line in lines)
    assert "systemd-sysusers stocksyncd.conf" in lines
    assert "systemd-tmpfiles --create stocksyncd.conf" in lines
    config_install = next(line for line in lines if "/etc/stocksyncd/config.toml" in line
                          and line.startswith("install"))
    assert f"-m 0640 -o root -g {user}" in config_install
    # The sysusers file creates the unit's user, the tmpfiles file grants its group.
    assert re.search(rf"^u {user} ", SYSUSERS.read_text(), re.M)
    assert re.search(rf"^z /etc/stocksyncd/config.toml\s+0640 root {user}\b",
                     TMPFILES.read_text(), re.M)
    # Nothing in the README or the unit still installs the old unreadable way.
    assert "DynamicUser=yes" not in UNIT.read_text()


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create files owned by another user")
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    # Not under pytest's tmp_path: its parents are closed to other users.
    root = Path(tempfile.mkdtemp(prefix="stocksyncd-root-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def _ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"{name} not in {root}/etc/passwd")


def _as(uid: int, gid: int, argv: list[str], peek: Path | None = None) -> tuple[int, str]:
    """``stocksyncd ARGV`` as uid:gid with no other group: (exit code, stdout + stderr).

    A forked child of this process rather than a new interpreter: the test's
    interpreter may live where the service user cannot read it, and the modules
    the command needs are imported by the caller first. ``peek`` is a file the
    child also tries to read.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(argv)
                if peek is not None:
                    try:
                        peek.read_bytes()
                        print(f"read {peek}")
                    except PermissionError as exc:
                        print(f"peek: {exc.strerror}")
            payload = json.dumps([code, out.getvalue()])
        except BaseException as exc:
            payload = json.dumps([99, repr(exc)])
        os.write(write, payload.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    code, output = json.loads(b"".join(chunks))
    return int(code), str(output)


def test_the_service_user_reads_the_config_and_nothing_else(scratch_root: Path) -> None:
    root = scratch_root
    (root / "etc" / "sysusers.d").mkdir(parents=True)
    (root / "etc" / "tmpfiles.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, root / "etc" / "sysusers.d" / "stocksyncd.conf")
    shutil.copy(TMPFILES, root / "etc" / "tmpfiles.d" / "stocksyncd.conf")
    subprocess.run(["systemd-sysusers", f"--root={root}", "stocksyncd.conf"], check=True,
                   capture_output=True, timeout=60)
    uid, gid = _ids(root, "stocksyncd")
    assert uid != 0 and gid != 0

    # install -D -m 0640 -o root -g stocksyncd config.example.toml /etc/stocksyncd/config.toml
    # (the group is resolved in the scratch root, so by number here).
    etc = root / "etc" / "stocksyncd"
    etc.mkdir(mode=0o755)
    config = etc / "config.toml"
    config.write_text(CONFIG)
    os.chown(config, 0, gid)
    config.chmod(0o640)
    creds = etc / "credentials"
    creds.mkdir()
    secret = creds / "shops__main__password"
    secret.write_text("s3cret")
    secret.chmod(0o644)  # a careless copy: tmpfiles puts it right
    subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", "stocksyncd.conf"],
                   check=True, capture_output=True, timeout=60)

    def mode(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert mode(etc) == (0o750, 0, gid)
    assert mode(config) == (0o640, 0, gid)
    assert mode(creds) == (0o700, 0, 0)
    assert mode(secret) == (0o600, 0, 0)

    argv = ["check-config", "--config", str(config)]
    assert main(argv) == 0  # as root: imports everything the children need
    code, output = _as(uid, gid, argv, peek=secret)
    assert code == 0 and output.startswith("OK: 1 integration"), output
    # The service user gets secrets only through systemd's LoadCredential=.
    assert "peek: Permission denied" in output
    code, output = _as(65534, 65534, argv)
    assert code == 2 and "cannot read: Permission denied" in output, output


def test_quick_start_uses_a_venv_and_ci_runs_its_test_command() -> None:
    text = README.read_text()
    top = text[: text.index("\n## ")]
    lines = shell_lines(top)
    assert len(lines) == 2, lines  # still two commands
    assert lines[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    assert lines[0].endswith(".venv/bin/stocksyncd demo")
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines()
                   if line.strip() and not line.strip().startswith("#")]
    assert ci_commands[-1] == lines[1] == ".venv/bin/python -m pytest"
    assert "python3 -m venv .venv" in ci


def test_readme_docker_volumes_match_the_image_user() -> None:
    from .test_deploy_files import DOCKERFILE, _docker_instructions

    user = [v for k, v in _docker_instructions(DOCKERFILE.read_text()) if k == "USER"][-1]
    uid, _, gid = user.partition(":")
    lines = shell_lines(readme_section("Running under Docker"))
    state = next(line for line in lines if line.startswith("install -d"))
    assert f"-o {uid} -g {gid}" in state and "/srv/stocksyncd/state" in state
    config = next(line for line in lines if line.startswith("install -D"))
    assert f"-m 0640 -o root -g {gid}" in config and "/srv/stocksyncd/config.toml" in config
    run = " ".join(lines)
    assert "/srv/stocksyncd/config.toml:/etc/stocksyncd/config.toml:ro" in run
    assert "/srv/stocksyncd/state:/var/lib/stocksyncd" in run
    # A non-loopback listen address needs the token the command sets.
    assert "STOCKSYNCD_WEB__LISTEN=0.0.0.0:8780" in run and "STOCKSYNCD_WEB__TOKEN=" in run
