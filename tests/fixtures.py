"""A small project used by the engine and CLI tests: one role with a handler,
a validator, a secret and a template, applied with ``provision_root``."""

from __future__ import annotations

SVC_ROLE = {
    "roles/svc/role.yml": """
        description: A test service with a handler, a validator and a secret.
        variables:
          svc_port: {type: port, default: 2525, description: Port.}
          svc_banner: {type: str, default: hello, description: Banner line.}
          svc_password: {type: str, secret: true, default: hunter2-secret, description: Password.}
          svc_log: {type: path, required: true, description: Where the handler logs.}
          svc_validate_ok: {type: bool, default: true, description: Validator result.}
          svc_handler_ok: {type: bool, default: true, description: Handler result.}
          svc_listen: {type: list, elements: {type: ipv4}, default: [127.0.0.1], description: Addresses.}
        directories:
          - path: /srv/svc
            mode: "0750"
        files:
          - dest: /etc/svc/svc.conf
            template: svc.conf.j2
            notify: [reload svc]
          - dest: /etc/svc/secret.conf
            content: "password={{ svc_password }}\\n"
            mode: "0600"
            notify: [reload svc]
          - dest: /etc/svc/plain.txt
            content: "plain {{ svc_banner }}\\n"
        handlers:
          - name: reload svc
            command: "echo reloaded >> {{ svc_log }}; {{ 'true' if svc_handler_ok else 'false' }}"
        validators:
          - command: >-
              grep -q '^port=' {staging}/etc/svc/svc.conf &&
              {{ 'true' if svc_validate_ok else 'echo refused {staging}/etc/svc/svc.conf; false' }}
            files: [/etc/svc/svc.conf]
            description: svc config check
    """,
    "roles/svc/templates/svc.conf.j2": """
        # {{ provision_managed }}
        port={{ svc_port }}
        banner={{ svc_banner | line }}
        {% for address in svc_listen %}
        listen={{ address }}
        {% endfor %}
    """,
    "site.yml": """
        - hosts: all
          roles: [svc]
    """,
}


def svc_project(root_a: str, root_b: str, log: str) -> dict[str, str]:
    return {
        **SVC_ROLE,
        "hosts.yml": f"""
            all:
              vars:
                connection: local
                svc_log: {log}
              hosts:
                alpha: {{provision_root: {root_a}}}
                beta: {{provision_root: {root_b}}}
        """,
    }
