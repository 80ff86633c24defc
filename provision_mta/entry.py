"""The ``provision-mta`` command's entry point: a clear word when a library is missing.

The daemon needs aiosmtpd and dnspython. On a mail host they come from
Debian's packages; on a controller from the ``mta`` extra. Without them the
command says so in one line instead of a traceback.
"""

from __future__ import annotations

import sys

NEEDED = {"aiosmtpd": "python3-aiosmtpd", "dns": "python3-dnspython"}


def main() -> None:
    try:
        from provision_mta.daemon import main as daemon_main
    except ModuleNotFoundError as exc:
        if exc.name not in NEEDED:
            raise
        sys.exit(
            f"provision-mta needs the Python library {exc.name}: pip install 'provision[mta]' "
            f"(on a Debian mail host: apt install {' '.join(NEEDED.values())})"
        )
    daemon_main()


if __name__ == "__main__":
    main()
