"""Roles and the compiler: ``role.yml`` schema and loader, typed variables,
host variables, Jinja rendering and filters, merged and generated files
(fstab, certificates), ``site.yml``, and the compiler that turns an
inventory and its roles into each host's desired state."""
