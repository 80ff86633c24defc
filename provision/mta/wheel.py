"""The wheel the python_mta role installs: provision's MTA and nothing else.

Built on the controller from the files of the installed ``provision``
package, so a user who installed provision from PyPI (no source tree, no
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
from pathlib import Path

import provision

DISTRIBUTION = "provision_mta"
# Only what the daemon imports: the toolkit's other modules need fabric,
# cryptography and the rest, which a mail host does not have.
MODULES = ["__init__.py", "errors.py", "nameserver.py", "mta/*.py"]
ENTRY_POINTS = "[console_scripts]\nprovision-mta = provision.mta.daemon:main\n"


def wheel_name(version: str = provision.__version__) -> str:
    return f"{DISTRIBUTION}-{version}-py3-none-any.whl"


@functools.lru_cache(maxsize=1)
def build_wheel() -> bytes:
    package = Path(provision.__file__).parent
    files: dict[str, bytes] = {}
    for pattern in MODULES:
        for path in sorted(package.glob(pattern)):
            files[f"provision/{path.relative_to(package).as_posix()}"] = path.read_bytes()
    info = f"{DISTRIBUTION}-{provision.__version__}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: provision-mta\nVersion: {provision.__version__}\n"
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
