#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, lint, type-check, test.
# The lab tests start Docker themselves (scripts/start-docker.sh) and build
# the lab's Debian image on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian tools the tests use for real: Docker and debootstrap (the lab), the
# ssh client (molecule's verifier), dnsmasq (a DNS server on loopback for the
# report), chromium (the HTML report, rendered headless), swaks and openssl
# (real SMTP and TLS clients against the built-in MTA).
missing=()
for tool in dockerd:docker.io debootstrap:debootstrap ssh:openssh-client ip:iproute2 dnsmasq:dnsmasq-base chromium:chromium swaks:swaks openssl:openssl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
# Postfix itself, the reference the built-in MTA's adversarial tests compare
# against (tests/support/postfix.py runs it from a config folder of its own on
# a loopback address of its own). Installed without configuring or starting
# one: no Postfix may ever listen on 127.0.0.1:25 of this machine.
if ! command -v postconf >/dev/null 2>&1; then
    held=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# scripts/test.sh: no service starts while packages install\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        held=yes
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null
    if [ -n "$held" ]; then rm -f /usr/sbin/policy-rc.d && trap - EXIT; fi
fi
python3 -m pip install -q -e '.[test]'
# The tests and molecule's playbooks call the installed 'provision' command.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
bash scripts/start-docker.sh
ruff check provision provision_mta tests bench
ruff format --check provision provision_mta tests bench
mypy
python3 -m pytest -q -ra "$@"
