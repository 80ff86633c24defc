#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, lint, type-check, test.
# The lab tests start Docker themselves (scripts/start-docker.sh) and build
# the lab's Debian image on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[test]'
# The tests and molecule's playbooks call the installed 'provision' command.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
bash scripts/start-docker.sh
ruff check provision tests bench
ruff format --check provision tests bench
mypy
python3 -m pytest -q -ra "$@"
