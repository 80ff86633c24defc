"""The wheel the python_mta role installs: provision's MTA and nothing else.

Built on the controller from the files of the installed ``provision_mta``
package alone (it imports nothing of ``provision``), so a user who installed provision from PyPI (no source tree, no
build backend) can ship it too, and the host needs no internet: aiosmtpd
and dnspython come from Debian's packages there. The wheel is written by
hand because it must be byte-identical for identical code (fixed
timestamps, sorted entries): it is a managed file, and a second apply must
find nothing changed. The format is the one ``pip`` installs (PEP 427: the
files, then ``.dist-info`` with METADATA, WHEEL, entry_points.txt and a
RECORD of sha256 digests).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from importlib.metadata import version as distribution_version
from pathlib import Path

DISTRIBUTION = "provision_mta"
PACKAGE = Path(__file__).resolve().parent
ENTRY_POINTS = "[console_scripts]\nprovision-mta = provision_mta.entry:main\n"


def mta_version() -> str:
    """The MTA ships with the provision release that builds it (one version, in provision/__init__.py)."""
    return distribution_version("provision")


def wheel_name(version: str | None = None) -> str:
    return f"{DISTRIBUTION}-{version or mta_version()}-py3-none-any.whl"


@functools.lru_cache(maxsize=1)
def build_wheel() -> bytes:
    version = mta_version()
    files: dict[str, bytes] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        files[f"provision_mta/{path.name}"] = path.read_bytes()
    info = f"{DISTRIBUTION}-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: provision-mta\nVersion: {version}\n"
        "Summary: provision's built-in mail transfer agent\nRequires-Python: >=3.11\n"
        "Requires-Dist: aiosmtpd>=1.4\nRequires-Dist: dnspython>=2.3\n"
    ).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: provision\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = ENTRY_POINTS.encode()
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
