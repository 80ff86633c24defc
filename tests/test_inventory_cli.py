"""An Ansible user's command-line habits: -e, --list-hosts, --skip-tags,
-u, --private-key, -b, and an existing ansible.cfg, compared with the real
``ansible-inventory`` and ``ansible`` where they have the same option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from provision.cli.common import ansible_options
from provision.cli.converge import check
from provision.connectors import settings_from_vars
from provision.inventory.ansible_cfg import load_ansible_config
from provision.inventory.options import LoadOptions
from provision.roles.compiler import Project
from tests.conftest import DATA
from tests.support.ansible_ref import ansible_inventory, ansible_list_hosts, needs_ansible, provision, vault_encrypt_string
from tests.support.files import write

MIXED = DATA / "inventories" / "folder_mixed"


# --- -e / --extra-vars ---------------------------------------------------------------


@needs_ansible
def test_extra_vars_forms_match_ansible(tmp_path: Path) -> None:
    write(tmp_path / "vars.yml", "from_file: {nested: [1, 2]}\nrelay: from-file\n")
    write(tmp_path / "vars.json", '{"json_file": true, "relay": "from-json-file"}')
    extra = [
        "-e",
        "relay=from-cli plain=a=b quoted='two words' escaped=line\\nnext unicode=Zürich",
        "-e",
        '{"listed": [1, {"k": null}], "n": 5}',
        "-e",
        "{yaml_style: yes, when: 2024-02-29}",
        "-e",
        f"@{tmp_path / 'vars.yml'}",
        "-e",
        f"@{tmp_path / 'vars.json'}",
        "-e",
        'template="{{ inventory_hostname }} x"',
    ]
    ours = provision("inventory", "-i", str(MIXED), "--host", "mx1.example.net", *extra)
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout) == ansible_inventory(MIXED, "--host", "mx1.example.net", *extra)
    listed = json.loads(provision("inventory", "-i", str(MIXED), "--list", "-e", "relay=x").stdout)
    assert listed == ansible_inventory(MIXED, "--list", "-e", "relay=x")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/etc/vars.yml", "write -e @/etc/vars.yml"),
        ("novalue", "expected key=value, got 'novalue'"),
        ("[1, 2]", "must be key=value pairs, a mapping or @FILE"),
        ("@/nonexistent/vars.yml", "/nonexistent/vars.yml: cannot read file"),
        ("a='open", "quote is never closed"),
        ("{bad: [yaml", "--extra-vars:2:1: did not find expected ',' or ']'"),
    ],
)
def test_bad_extra_vars_are_one_line_errors(value: str, message: str) -> None:
    done = provision("inventory", "-i", str(MIXED), "--host", "mx1.example.net", "-e", value)
    assert (done.returncode, done.stdout) == (1, "")
    assert message in done.stderr and "Traceback" not in done.stderr


GREET = {
    "hosts.yml": """
        all:
          hosts:
            h1:
              greeting_name: from-host-vars
              ansible_user: inventory-user
            h2:
              ansible_become: false
    """,
    "site.yml": """
        - hosts: all
          roles:
            - {role: greet, vars: {greeting_name: from-site-role-entry}}
    """,
    "roles/greet/role.yml": """
        description: writes a greeting
        variables:
          greeting_name: {type: str, default: from-role-default, description: Who.}
        vars:
          greeting_line: "hello {{ greeting_name }}"
        files:
          - dest: /etc/greeting
            content: "{{ greeting_line }}\\n"
          - dest: /etc/greeting.extra
            content: "extra\\n"
            tags: [extra]
    """,
}


@pytest.fixture
def greet(make_tree: Any) -> Path:
    folder: Path = make_tree(GREET)
    return folder


def test_extra_vars_win_over_everything(greet: Path) -> None:
    plain = Project.load(greet).compile("h1").desired.files["/etc/greeting"].content
    assert plain == b"hello from-site-role-entry\n"
    options = LoadOptions(extra_vars={"greeting_name": "from-cli"})
    assert Project.load(greet, options=options).compile("h1").desired.files["/etc/greeting"].content == b"hello from-cli\n"
    # A role's own computed vars give way too, as Ansible's role vars give way to -e.
    options = LoadOptions(extra_vars={"greeting_line": "overridden"})
    assert Project.load(greet, options=options).compile("h1").desired.files["/etc/greeting"].content == b"overridden\n"


def test_extra_vars_reach_render(greet: Path, tmp_path: Path) -> None:
    done = provision("render", "-i", str(greet), "--out", str(tmp_path / "out"), "-e", "greeting_name=Zoë")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/h2/etc/greeting").read_text() == "hello Zoë\n"


# --- --skip-tags, --list-hosts ----------------------------------------------------------


def test_skip_tags(greet: Path, tmp_path: Path) -> None:
    def files(*args: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        done = provision("render", "-i", str(greet), "--out", str(out), "--limit", "h1", *args)
        assert done.returncode == 0, done.stderr
        return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())

    assert files() == ["h1/etc/greeting", "h1/etc/greeting.extra"]
    assert files("--skip-tags", "extra") == ["h1/etc/greeting"]
    assert files("--tags", "extra") == ["h1/etc/greeting.extra"]
    compiled = Project.load(greet, options=LoadOptions(skip_tags=frozenset({"greet"}))).compile("h1").desired
    assert compiled.files == {} and compiled.handlers == {}


def test_a_skip_tag_no_role_has_stops_the_run_before_any_host(greet: Path, tmp_path: Path) -> None:
    """A misspelt --skip-tags would change what the operator meant to leave alone
    (Ansible ignores it silently): an error naming the tag, before anything is
    rendered or any host is contacted (h1 and h2 have no address: a connection
    attempt would be reported as unreachable)."""
    for command in (["render", "--out", str(tmp_path / "out")], ["apply"], ["check"]):
        done = provision(*command, "-i", str(greet), "--skip-tags", "extra,gret")
        assert (done.returncode, done.stdout) == (1, ""), done.stdout + done.stderr
        assert "--skip-tags: no role has the tag 'gret'; did you mean 'greet'?" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "unreachable" not in done.stderr
    assert not (tmp_path / "out").exists()
    # A tag some role has, but none of the chosen hosts' roles: said, and the run goes on.
    (greet / "roles/other").mkdir()
    (greet / "roles/other/role.yml").write_text("description: o\nfiles: [{dest: /etc/other, content: o, tags: [rare]}]\n")
    (greet / "site.yml").write_text((greet / "site.yml").read_text() + "- hosts: nohost\n  roles: [other]\n")
    done = provision("render", "-i", str(greet), "--out", str(tmp_path / "out2"), "--skip-tags", "rare")
    assert done.returncode == 0, done.stderr
    assert "warning: --skip-tags: the tag 'rare' is on no role of the 2 selected host(s), it skips nothing" in done.stderr


def test_ansible_special_tags_always_never_all(make_tree: Any, tmp_path: Path) -> None:
    """always runs under any --tags (only --skip-tags stops it); never only when --tags names it or one of its tags."""
    tree = {**GREET}
    tree["roles/greet/role.yml"] = GREET["roles/greet/role.yml"].replace(
        "            tags: [extra]\n",
        "            tags: [extra]\n"
        "          - dest: /etc/greeting.always\n            content: a\n            tags: [always]\n"
        "          - dest: /etc/greeting.debug\n            content: d\n            tags: [never, debug]\n",
    )
    folder = make_tree(tree)

    def files(*args: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        done = provision("render", "-i", str(folder), "--out", str(out), "--limit", "h1", *args)
        assert done.returncode == 0, done.stderr
        assert "no role has the tag" not in done.stderr, done.stderr
        return sorted(str(p.relative_to(out / "h1" / "etc")) for p in out.rglob("*") if p.is_file())

    assert files() == ["greeting", "greeting.always", "greeting.extra"]
    assert files("--tags", "all") == ["greeting", "greeting.always", "greeting.extra"]
    assert files("--tags", "extra") == ["greeting.always", "greeting.extra"]
    assert files("--tags", "debug") == ["greeting.always", "greeting.debug"]
    assert files("--tags", "never") == ["greeting.always", "greeting.debug"]
    assert files("--tags", "extra", "--skip-tags", "always") == ["greeting.extra"]
    assert files("--skip-tags", "extra") == ["greeting", "greeting.always"]


@needs_ansible
@pytest.mark.parametrize("limit", ["all", "web:!cloud", "mail:&web", "cloud[1],db", "db:mail", "~mx[12]"])
def test_list_hosts_matches_ansible(limit: str) -> None:
    for command in ("check", "apply"):
        done = provision(command, "-i", str(MIXED), "--limit", limit, "--list-hosts")
        hosts = ansible_list_hosts(MIXED, "all", "--limit", limit)
        if not hosts:
            assert done.returncode == 1 and "matches no host" in done.stderr
            continue
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"  hosts ({len(hosts)}):\n" + "".join(f"    {h}\n" for h in hosts)


# --- -u, --private-key, -b: below the inventory, as in Ansible --------------------------


def test_connection_defaults_lie_below_the_inventory(greet: Path) -> None:
    defaults = {"ansible_user": "cli-user", "ansible_ssh_private_key_file": "/keys/cli", "ansible_become": True}
    project = Project.load(greet, options=LoadOptions(connection_defaults=defaults))
    h1 = settings_from_vars("h1", project.compile("h1").variables)
    h2 = settings_from_vars("h2", project.compile("h2").variables)
    assert (h1.user, h1.ssh_key, h1.become) == ("inventory-user", "/keys/cli", True)
    assert (h2.user, h2.ssh_key, h2.become) == ("cli-user", "/keys/cli", False)
    overridden = Project.load(greet, options=LoadOptions(extra_vars={"ansible_user": "extra-user"}, connection_defaults=defaults))
    assert settings_from_vars("h1", overridden.compile("h1").variables).user == "extra-user"


@pytest.mark.parametrize(
    ("lower", "higher", "expected"),
    [
        # group_vars below host_vars, whichever name each uses (Ansible: the host's value wins)
        ({"group_vars/all.yml": "user: group-user\n"}, {"host_vars/h1.yml": "ansible_user: host-user\n"}, "host-user"),
        ({"group_vars/all.yml": "ansible_ssh_user: group-user\n"}, {"host_vars/h1.yml": "user: host-user\n"}, "host-user"),
        ({"group_vars/all.yml": "user: group-user\n"}, {"host_vars/h1.yml": "ansible_ssh_user: host-user\n"}, "host-user"),
        # within one layer provision's short name wins, as documented
        ({}, {"host_vars/h1.yml": "user: short\nansible_user: long\n"}, "short"),
    ],
)
def test_a_higher_layer_sets_the_user_whichever_name_either_uses(
    make_tree: Any, lower: dict[str, str], higher: dict[str, str], expected: str
) -> None:
    folder: Path = make_tree({**GREET, **lower, **higher})
    project = Project.load(folder)
    compiled = project.compile("h1")
    assert settings_from_vars("h1", compiled.variables).user == expected
    # Every name of the setting says the same, so a template's {{ ansible_user }} names the account used.
    given = {name: compiled.variables[name] for name in ("user", "ansible_user", "ansible_ssh_user") if name in compiled.variables}
    assert set(given.values()) == ({expected, "long"} if expected == "short" else {expected})
    written = next(iter(higher))
    if expected != "short":
        assert all(str(compiled.locations[name]).startswith(str(folder / written)) for name in given), compiled.locations


def test_extra_vars_set_the_user_over_the_inventory_short_name(make_tree: Any, tmp_path: Path) -> None:
    """``-e ansible_user=x`` wins over an inventory's ``user:`` (it lost before):
    -e is above everything in Ansible, whichever name of the setting it uses."""
    folder: Path = make_tree({**GREET, "host_vars/h1.yml": "user: inventory-short\nport: 2222\n"})
    project = Project.load(folder, options=LoadOptions(extra_vars={"ansible_user": "extra-user", "ansible_port": "2200"}))
    settings = settings_from_vars("h1", project.compile("h1").variables)
    assert (settings.user, settings.port) == ("extra-user", 2200)
    # -u (a connection default) stays below the inventory's short name.
    below = Project.load(folder, options=LoadOptions(connection_defaults={"ansible_user": "cli-user"}))
    assert settings_from_vars("h1", below.compile("h1").variables).user == "inventory-short"


def test_ansible_options_become_load_options(tmp_path: Path) -> None:
    seen: list[LoadOptions] = []

    @click.command()
    @ansible_options()
    def probe(load_options: LoadOptions) -> None:
        seen.append(load_options)

    extra = write(tmp_path / "x.yml", "from_file: 1\n")
    result = CliRunner().invoke(probe, ["-u", "deploy", "--private-key", "~/.ssh/k", "-b", "-e", "a=1", "-e", f"@{extra}"])
    assert result.exit_code == 0, result.output
    assert seen[0].connection_defaults == {"ansible_user": "deploy", "ansible_ssh_private_key_file": "~/.ssh/k", "ansible_become": True}
    assert seen[0].extra_vars == {"a": "1", "from_file": 1}
    assert str(seen[0].extra_var_locations["from_file"]) == f"{extra}:1:1"


# --- ansible.cfg ------------------------------------------------------------------------


def test_config_is_found_where_ansible_looks(tmp_path: Path) -> None:
    home, cwd, elsewhere = tmp_path / "home", tmp_path / "project", tmp_path / "elsewhere"
    write(home / ".ansible.cfg", "[defaults]\nforks = 7\n")
    write(cwd / "ansible.cfg", "[defaults]\nforks = 8\n")
    write(elsewhere / "ansible.cfg", "[defaults]\nforks = 9\n")
    assert load_ansible_config({}, cwd, home).get("forks") == 8
    assert load_ansible_config({}, tmp_path, home).get("forks") == 7
    assert load_ansible_config({"ANSIBLE_CONFIG": str(elsewhere)}, cwd, home).get("forks") == 9
    assert load_ansible_config({"ANSIBLE_CONFIG": str(elsewhere / "ansible.cfg")}, cwd, home).path == elsewhere / "ansible.cfg"
    assert load_ansible_config({"ANSIBLE_FORKS": "3"}, cwd, home).settings["forks"].origin == "$ANSIBLE_FORKS"
    cwd.chmod(0o777)  # world-writable: anyone could have planted it, so Ansible skips it
    try:
        skipped = load_ansible_config({}, cwd, home)
    finally:
        cwd.chmod(0o755)
    assert skipped.path == home / ".ansible.cfg" and "world-writable" in skipped.warnings[0]


def test_config_values_and_mistakes(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "ansible.cfg",
        """
        [defaults]
        inventory = inventories/prod , extra.ini ; comment
        remote_user = deploy
        private_key_file = keys/id_ed25519
        host_key_checking = False
        vault_identity_list = prod@~/prod.pass, dev@prompt
        [privilege_escalation]
        become = yes
        """,
    )
    config = load_ansible_config({}, tmp_path, tmp_path)
    assert config.get("inventory") == [str(tmp_path / "inventories/prod"), str(tmp_path / "extra.ini")]
    assert config.get("private_key_file") == str(tmp_path / "keys/id_ed25519")
    assert (config.get("remote_user"), config.get("host_key_checking"), config.get("become")) == ("deploy", False, True)
    assert config.get("vault_identity_list") == ["prod@~/prod.pass", "dev@prompt"]
    cfg.write_text("[defaults]\nforks = many\n")
    with pytest.raises(Exception, match=r"ansible.cfg \[defaults\] forks: expected a whole number, got 'many'"):
        load_ansible_config({}, tmp_path, tmp_path)
    cfg.write_text("forks = 5\n")
    with pytest.raises(Exception, match=r"ansible.cfg:1: ansible.cfg is not valid INI"):
        load_ansible_config({}, tmp_path, tmp_path)


@needs_ansible
def test_project_folder_needs_no_inventory_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`provision check` in an Ansible project folder: the inventory, user, key,
    forks and vault password all come from its ansible.cfg."""
    project = tmp_path / "ansible-project"
    for entry in MIXED.iterdir():
        target = project / "inventory" / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.is_dir():
            for file in entry.iterdir():
                write(target / file.name, file.read_text())
        else:
            write(target, entry.read_text(), entry.stat().st_mode & 0o777)
    write(project / "vault.pass", "s3cret\n")
    write(project / "inventory/group_vars/web.yml", vault_encrypt_string(project / "vault.pass", "Cfg-Vault-Value-5", "web_secret"))
    write(
        project / "ansible.cfg",
        """
        [defaults]
        inventory = inventory
        forks = 3
        remote_user = deploy
        private_key_file = keys/deploy
        host_key_checking = false
        vault_password_file = vault.pass
        """,
    )
    env = {"HOME": str(tmp_path)}
    listed = provision("check", "--list-hosts", "--limit", "mail", cwd=project, env=env)
    assert listed.returncode == 0, listed.stderr
    expected = ansible_list_hosts(project / "inventory", "mail")
    assert listed.stdout == f"  hosts ({len(expected)}):\n" + "".join(f"    {h}\n" for h in expected)

    revealed = provision("inventory", "--host", "www1.example.net", "--show-secrets", cwd=project, env=env)
    assert json.loads(revealed.stdout)["web_secret"] == "Cfg-Vault-Value-5"

    shown = provision("config", "--json", cwd=project, env=env)
    settings = json.loads(shown.stdout)
    assert settings["config_file"] == str(project / "ansible.cfg")
    origin = f"{project / 'ansible.cfg'} [defaults] private_key_file"
    assert settings["settings"]["private_key_file"] == {"value": str(project / "keys/deploy"), "origin": origin}
    version = provision("--version", cwd=project, env=env)
    assert f"config file = {project / 'ansible.cfg'}" in version.stdout

    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    monkeypatch.chdir(project)
    with click.Context(click.Group("provision")) as root:
        params = check.make_context("check", ["--list-hosts"], parent=root).params
    assert params["forks"] == 3
    assert params["remote_user"] == "deploy" and params["private_key"] == str(project / "keys/deploy")
    assert params["accept_new_host_keys"] is True
    assert params["inventory"] == (project / "inventory",)


def test_unsafe_values_are_never_templated(greet: Path) -> None:
    """Ansible's !unsafe (and what a constructed source computes) stays as written."""
    (greet / "host_vars").mkdir()
    (greet / "host_vars/h2.yml").write_text("greeting_name: !unsafe \"{{ lookup('pipe', 'id') }}\"\n")
    site = (greet / "site.yml").read_text().replace("{role: greet, vars: {greeting_name: from-site-role-entry}}", "greet")
    (greet / "site.yml").write_text(site)
    content = Project.load(greet).compile("h2").desired.files["/etc/greeting"].content
    assert content == b"hello {{ lookup('pipe', 'id') }}\n"
