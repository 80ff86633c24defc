"""``provision mail``: queue and maintenance commands on every host and Postfix instance (or provision-mta)."""
