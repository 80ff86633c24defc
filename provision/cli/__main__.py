"""``python3 -m provision.cli``: the same as the ``provision`` command."""

from provision.cli.main import main

main()
