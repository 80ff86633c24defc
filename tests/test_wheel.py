"""provision installs like real software: from a wheel, into a fresh venv, used from anywhere.

The bundled roles and the report template travel in the wheel as package
data; nothing may depend on the checkout being on disk beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of its own holding provision[mta] from the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(ROOT)], check=True)
    (wheel,) = (base / "dist").glob("provision-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[mta]"], check=True)
    return venv


def _run(venv: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH, and a folder with nothing in it: only the venv can answer.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PROVISION_ROLES_PATH")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, check=False, cwd=folder, env=env)


def test_the_wheel_carries_roles_and_templates_and_the_mta(installed: Path) -> None:
    (wheel,) = (installed.parent / "dist").glob("provision-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "provision/bundled/roles/postfix/role.yml" in names
    assert "provision/bundled/templates/report.html.j2" in names
    assert "provision_mta/daemon.py" in names
    assert not [name for name in names if name.startswith(("tests/", "inventories/", "bench/"))]


def test_commands_work_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(installed, empty, "python", "-c", "import provision; print(provision.__file__)")
    assert where.stdout.startswith(str(installed)), where.stdout + where.stderr

    roles = _run(installed, empty, "provision", "roles")
    assert roles.returncode == 0, roles.stderr
    for role in ("postfix", "apache", "ssl", "fstab", "motd", "sshd", "python_mta"):
        assert role in roles.stdout

    out = tmp_path / "out"
    rendered = _run(installed, empty, "provision", "render", "-i", str(ROOT / "inventories" / "example"), "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert (out / "example-1" / "etc" / "postfix" / "main.cf").is_file()
    # python_mta ships the MTA's wheel, which the builder registered as an entry point makes.
    mta_help = _run(installed, empty, "provision-mta", "--help")
    assert mta_help.returncode == 0 and "usage: provision-mta" in mta_help.stdout, mta_help.stderr


def test_a_missing_extra_is_named(installed: Path, tmp_path: Path) -> None:
    """The lab needs the docker SDK, which only provision[lab] brings."""
    done = _run(installed, tmp_path, "provision", "lab", "status", "--name", "nosuch")
    assert done.returncode == 1
    assert "pip install 'provision[lab]'" in done.stderr and "Traceback" not in done.stderr
