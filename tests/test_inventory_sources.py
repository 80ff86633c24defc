"""Inventory sources that go wrong: each is a clear error naming the file
(and line where there is one), never a traceback and never a silently
smaller inventory. The happy paths are compared with ansible-inventory in
test_inventory_ansible.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provision.errors import InventoryError, ProvisionError
from provision.inventory import load_inventory
from provision.inventory.hostranges import expand_host_pattern, parse_address
from tests.support.ansible_ref import provision
from tests.support.files import write


def test_failing_script_is_an_error_with_its_reason(tmp_path: Path) -> None:
    script = write(tmp_path / "inv.sh", "#!/bin/sh\necho 'cloud API said 403' >&2\nexit 3\n", 0o755)
    with pytest.raises(InventoryError) as caught:
        load_inventory(script)
    assert "as a script" in str(caught.value) and "exited with status 3: cloud API said 403" in str(caught.value)
    assert str(caught.value).startswith(str(script))


def test_script_printing_bad_json_is_an_error(tmp_path: Path) -> None:
    script = write(tmp_path / "inv.py", '#!/usr/bin/env python3\nprint(\'{"web": ["a",]}\')\n', 0o755)
    with pytest.raises(InventoryError, match=r"not JSON: Expecting value at line 1 column 14"):
        load_inventory(script)
    shapes = write(tmp_path / "shapes.py", "#!/usr/bin/env python3\nprint('[1, 2]')\n", 0o755)
    with pytest.raises(InventoryError, match="must print a JSON object of groups, not a list"):
        load_inventory(shapes)


def test_hung_script_is_killed_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "child-still-running"
    script = write(tmp_path / "slow.sh", f"#!/bin/sh\n(sleep 3; touch {marker}) &\nsleep 30\n", 0o755)
    monkeypatch.setenv("PROVISION_INVENTORY_SCRIPT_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(InventoryError, match=r"did not finish within 1s"):
        load_inventory(script)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists(), "the script's children die with it"


def test_script_host_variables_by_host_call(tmp_path: Path) -> None:
    script = write(
        tmp_path / "inv.py",
        """
        #!/usr/bin/env python3
        import json, sys
        if sys.argv[1] == "--list":
            print(json.dumps({"web": {"hosts": ["w1"]}}))
        else:
            assert sys.argv[1:] == ["--host", "w1"], sys.argv
            print(json.dumps({"port": 8080, "secret": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\\n00"}}))
        """,
        0o755,
    )
    inventory = load_inventory(script)
    values = inventory.host_vars("w1")
    assert values["port"] == 8080
    assert repr(values["secret"]).startswith("<vault-encrypted value at")


def test_unreadable_file_gives_every_parsers_reason(tmp_path: Path) -> None:
    listed = write(tmp_path / "hosts.yml", "- web1\n- web2\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(listed)
    message = str(caught.value)
    assert message.startswith(f"{listed}: cannot read this inventory file")
    assert "as YAML: a YAML inventory is a mapping of groups, this is a list" in message
    assert "as INI: line 1: expected key=value host variable, got 'web1'" in message


def test_what_roles_write_beside_the_inventory_is_not_read_as_inventory(tmp_path: Path) -> None:
    """The ssl role's CSRs (INVENTORY/csr) and the dkim role's records (INVENTORY/dkim): the folder still reads."""
    write(tmp_path / "hosts.yml", "all:\n  hosts:\n    web1:\n")
    write(tmp_path / "csr" / "web1-shop.csr", "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
    write(tmp_path / "dkim" / "web1" / "s1._domainkey.example.org.txt", 's1._domainkey.example.org. IN TXT "v=DKIM1; p=MIIB"\n')
    write(tmp_path / ".local-ca" / "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert set(load_inventory(tmp_path).hosts) == {"web1"}
    # Anywhere else such a file is no inventory, and the folder says so.
    write(tmp_path / "requests" / "web1-shop.csr", "-----BEGIN CERTIFICATE REQUEST-----\n")
    with pytest.raises(InventoryError, match=r"web1-shop\.csr: cannot read this inventory file"):
        load_inventory(tmp_path)


def test_yaml_mistakes_are_not_hidden_by_the_ini_fallback(tmp_path: Path) -> None:
    typo = write(tmp_path / "hosts.yml", "all:\n  children:\n    web:\n      hots:\n        w1:\n")
    with pytest.raises(InventoryError, match=r"hosts.yml:4:7: group 'web' has an unexpected key 'hots'"):
        load_inventory(typo)


@pytest.mark.parametrize("plugin", ["amazon.aws.aws_ec2", "community.general.proxmox", "ansible.builtin.generator"])
def test_other_plugins_are_named(tmp_path: Path, plugin: str) -> None:
    config = write(tmp_path / "cloud.yml", f"plugin: {plugin}\nregions: [eu-central-1]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(config)
    assert f"cloud.yml:1:1: inventory plugin '{plugin}' is not supported" in str(caught.value)
    assert "ansible-inventory -i" in str(caught.value)


def test_constructed_strict_and_options(tmp_path: Path) -> None:
    write(tmp_path / "inv/01.ini", "[web]\nw1 dc=fra\n")
    config = write(tmp_path / "inv/02.yml", "plugin: constructed\nstrict: true\ngroups:\n  bad: nosuch == 1\n")
    with pytest.raises(InventoryError, match=r"constructed: group bad for host w1: 'nosuch == 1' failed: 'nosuch' is undefined"):
        load_inventory(tmp_path / "inv")
    config.write_text("plugin: constructed\nstrict: true\ngroups:\n  notbool: dc\n")
    with pytest.raises(InventoryError, match=r"gives str 'fra' for host w1, not true or false"):
        load_inventory(tmp_path / "inv")
    config.write_text("plugin: constructed\ncompos: {}\n")
    with pytest.raises(InventoryError, match=r"02.yml:2:1: constructed: unknown option 'compos'"):
        load_inventory(tmp_path / "inv")
    config.write_text("plugin: constructed\ngroups:\n  escape: \"''.__class__.__mro__[1].__subclasses__()\"\n")
    inventory = load_inventory(tmp_path / "inv")  # the sandbox refuses it: not strict, so the entry is skipped
    assert "escape" not in inventory.groups


def test_encrypted_inventory_is_never_parsed_as_hosts(tmp_path: Path) -> None:
    payload = "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(["6162636465666768696a6b6c6d6e6f70" * 2] * 8) + "\n"
    encrypted = write(tmp_path / "hosts", payload)
    with pytest.raises(ProvisionError, match="this is encrypted with Ansible Vault"):
        load_inventory(encrypted)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[web:vars]\nport=1\n", "section [web:vars] is for a group 'web' that is never defined"),
        ("[all:children]\n\nnosuch\n", "section [all:children] names a group 'nosuch' that is never defined"),
        ("[web:hosts2]\n", "unknown kind 'hosts2'"),
        ("[web group]\n", "invalid section header"),
        ("web[01:5]\n", "same number of digits"),
        ("web[3:1]\n", "starts after it ends"),
        ("web:\n", "ends with ':'"),
        ("---\n", "sign that this is a YAML file"),
        ("web1 port\n", "expected key=value host variable, got 'port'"),
    ],
)
def test_ini_mistakes_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    source = write(tmp_path / "hosts.ini", "# the mistake is on line 2, or the last line\n" + text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(source)
    assert message in str(caught.value)
    assert f"line {len(text.splitlines()) + 1 if 'children' in text else 2}:" in str(caught.value)


def test_addresses_and_ranges() -> None:
    assert parse_address("[2001:db8::1]:2022") == ("2001:db8::1", 2022)
    assert parse_address("2001:db8::1") == ("2001:db8::1", None)
    assert parse_address("web[1:3].example.net:22") == ("web[1:3].example.net", 22)
    assert parse_address("192.0.2.[1:3]") == ("192.0.2.[1:3]", None)
    assert parse_address("not a host!") is None
    assert expand_host_pattern("mail[:2]") == ["mail0", "mail1", "mail2"]
    assert expand_host_pattern("db-[a:c]-[1:2]") == ["db-a-1", "db-a-2", "db-b-1", "db-b-2", "db-c-1", "db-c-2"]
    assert expand_host_pattern("2001:db8::[1:2]") == ["2001:db8::1", "2001:db8::2"]


def test_yaml_dates_and_text_in_the_cli(tmp_path: Path) -> None:
    """A YAML date was a traceback ('Object of type date is not JSON serializable')."""
    source = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    h1:\n      since: 2024-02-29\n      city: Zürich\n")
    done = provision("inventory", "-i", str(source), "--host", "h1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{\n    "city": "Zürich",\n    "since": "2024-02-29"\n}\n'


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    done = provision("inventory", "-i", str(tmp_path / "nope"), "--list")
    assert (done.returncode, done.stdout) == (1, "")
    assert f"{tmp_path / 'nope'}: no such inventory file or folder" in done.stderr


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("x\\nrm -rf /tmp/zz", "control character"),
        ("mx1\\u0000", "control character"),
        ("../../etc", "slash"),
        ("..", "is not a name"),
    ],
)
def test_a_host_name_that_cannot_be_a_folder_or_a_line_is_refused_where_written(tmp_path: Path, name: str, why: str) -> None:
    """A host's name becomes a folder (render's OUT/HOST, the DKIM records) and a line of output."""
    inventory = write(tmp_path / "hosts.yml", f'all:\n  hosts:\n    ok1:\n    "{name}":\n')
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    assert why in str(caught.value) and str(caught.value).startswith(f"{inventory}:4:")
    script = write(tmp_path / "inv.py", f"#!/usr/bin/env python3\nimport json\nprint(json.dumps({{'web': ['{name}']}}))\n", 0o755)
    with pytest.raises(InventoryError, match=why):
        load_inventory(script)
