#!/usr/bin/env bash
# From a fresh Debian machine to the bundled example converged on three real
# Debian hosts: install provision, start Docker, start the lab, apply, check.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[test]'
# The 'provision' command pip just installed, wherever pip puts scripts.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
bash scripts/start-docker.sh
# 'lab up' prints the path of the lab's inventory (in provision's state folder).
inventory=(-i inventories/example -i "$(provision lab up --name example --hosts 3)")
provision apply "${inventory[@]}"
echo
echo "second run (nothing to change):"
provision apply "${inventory[@]}"
echo
provision check "${inventory[@]}"
echo
echo "The lab stays up: try 'provision lab status --name example', edit a file with"
echo "'provision lab exec --name example example-1 -- sh -c \"echo x >> /etc/motd\"',"
echo "then 'provision check ${inventory[*]} --diff'. Stop it with 'provision lab down --name example'."
