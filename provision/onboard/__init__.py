"""``provision onboard``: a bare Debian host to a verified mail server, in one command."""
