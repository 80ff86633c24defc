"""What each supported Debian release ships, as the probe reported it in the
lab (Debian's mirror, 2026-12-02): the facts ``provision render`` assumes,
since it contacts no host. A real run always uses the host's own probe."""

from __future__ import annotations

from provision.roles.facts import HostFacts


def _release(number: str, codename: str, debian_version: str, python: str, **packages: str) -> HostFacts:
    return HostFacts("debian", number, codename, debian_version, python, {}, {name.replace("_", "-"): v for name, v in packages.items()})


RELEASES: dict[str, HostFacts] = {
    "bullseye": _release(
        "11",
        "bullseye",
        "11.11",
        "3.9.2",
        postfix="3.5.25-0+deb11u1",
        apache2="2.4.62-1~deb11u1",
        openssh_server="1:8.4p1-5+deb11u3",
        openssl="1.1.1w-0+deb11u1",
        python3="3.9.2-3",
        python3_aiosmtpd="1.2.2-1+deb11u1",
        python3_dnspython="2.0.0-1",
    ),
    "bookworm": _release(
        "12",
        "bookworm",
        "12.15",
        "3.11.2",
        postfix="3.7.11-0+deb12u1",
        apache2="2.4.68-1~deb12u1",
        openssh_server="1:9.2p1-2+deb12u10",
        openssl="3.0.20-1~deb12u2",
        python3="3.11.2-1+b1",
        python3_aiosmtpd="1.4.3-1.1+deb12u1",
        python3_dnspython="2.3.0-1",
    ),
    "trixie": _release(
        "13",
        "trixie",
        "13.8",
        "3.13.5",
        postfix="3.10.13-0+deb13u1",
        apache2="2.4.71-1~deb13u1",
        openssh_server="1:10.0p1-7+deb13u4",
        openssl="3.5.9-1~deb13u1",
        python3="3.13.5-1",
        python3_aiosmtpd="1.4.6-5",
        python3_dnspython="2.7.0-1+deb13u1",
    ),
}
DEFAULT_RELEASE = "bookworm"
