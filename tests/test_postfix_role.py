"""The postfix role compiled on the controller: what it renders and what it refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from provision.errors import ProvisionError

GOOD: dict[str, Any] = {
    "postfix_inet_interfaces": ["127.0.0.5"],
    "postfix_transports": [
        {"name": "out1", "bind_address": "127.0.0.11", "helo_name": "out1.example.net"},
        {
            "name": "out2",
            "bind_address": "2001:db8::2",
            "helo_name": "out2.example.net",
            "weight": 3,
            "options": {"smtp_connect_timeout": "10s", "smtp_tls_note_starttls_offer": True},
        },
    ],
    "postfix_transport_selection": "sender",
    "postfix_sender_transports": {"@news.example.net": "out1"},
    "postfix_instances": [
        {
            "name": "postfix-out",
            "inet_interfaces": ["127.0.0.6"],
            "transport_selection": "random",
            "transports": [{"name": "bulk1", "bind_address": "127.0.0.21"}],
        }
    ],
}


@pytest.fixture
def compile_host(compile_role: Callable[[str, str, dict[str, Any]], dict[str, str]]) -> Callable[[dict[str, Any]], dict[str, str]]:
    return lambda host_vars: compile_role("postfix", "mx1.example.net", host_vars)


def test_master_cf_binds_each_transport(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    files = compile_host(GOOD)
    master = files["/etc/postfix/master.cf"]
    assert "out1      unix  -       -       n       -       -       smtp\n  -o smtp_bind_address=127.0.0.11\n" in master
    assert "  -o smtp_bind_address6=2001:db8::2\n  -o smtp_helo_name=out2.example.net\n" in master
    assert "  -o smtp_tls_note_starttls_offer=yes\n" in master
    main = files["/etc/postfix/main.cf"]
    assert "sender_dependent_default_transport_maps = hash:/etc/postfix/sender_transport\n" in main
    assert "multi_instance_directories = /etc/postfix-out\n" in main
    assert files["/etc/postfix/sender_transport"].endswith("@news.example.net out1:\n")
    assert "sender_dependent_default_transport_maps = randmap:{bulk1}\n" in files["/etc/postfix-out/main.cf"]
    assert "bulk1     unix" in files["/etc/postfix-out/master.cf"] and "out1" not in files["/etc/postfix-out/master.cf"]


def test_random_selection_weights(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    values = {**GOOD, "postfix_transport_selection": "random", "postfix_sender_transports": {}}
    main = compile_host(values)["/etc/postfix/main.cf"]
    assert "sender_dependent_default_transport_maps = randmap:{out1,out2,out2,out2}\n" in main


def test_random_selection_with_pinned_senders(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    files = compile_host({**GOOD, "postfix_transport_selection": "random"})
    expected = "sender_dependent_default_transport_maps = hash:/etc/postfix/sender_transport, randmap:{out1,out2,out2,out2}\n"
    assert expected in files["/etc/postfix/main.cf"]
    assert files["/etc/postfix/sender_transport"].endswith("@news.example.net out1:\n")


def test_option_with_spaces_uses_braces(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    values = {**GOOD}
    values["postfix_transports"] = [{"name": "out1", "bind_address": "127.0.0.11", "options": {"smtp_tls_policy_maps": "hash:/a, hash:/b"}}]
    assert "  -o { smtp_tls_policy_maps = hash:/a, hash:/b }\n" in compile_host(values)["/etc/postfix/master.cf"]


def test_option_values_by_postfix_rules(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    options = {
        "smtp_tls_policy_maps": "inline:{ {a.test = encrypt}, {b.test = may} }",
        "smtp_address_preference": ["ipv4"],
        "smtp_helo_timeout": "$smtp_connect_timeout",
        "smtp_tls_mandatory_exclude_ciphers": "aNULL,#x",
    }
    values = {**GOOD, "postfix_transports": [{"name": "out1", "bind_address": "127.0.0.11", "options": options}]}
    master = compile_host(values)["/etc/postfix/master.cf"]
    assert "  -o { smtp_tls_policy_maps = inline:{ {a.test = encrypt}, {b.test = may} } }\n" in master
    assert "  -o smtp_address_preference=ipv4\n" in master and "  -o smtp_helo_timeout=$smtp_connect_timeout\n" in master
    assert "  -o smtp_tls_mandatory_exclude_ciphers=aNULL,#x\n" in master


def test_aliases_quote_commands_and_files(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    aliases = {"root": ["admin", "|/usr/bin/logger -t mail", "/var/mail/archive", ":include:/etc/postfix/team"], "admin": "a@b.example"}
    text = compile_host({**GOOD, "postfix_aliases": aliases})["/etc/aliases"]
    assert 'root: admin, "|/usr/bin/logger -t mail", "/var/mail/archive", ":include:/etc/postfix/team"\n' in text
    assert "admin: a@b.example\n" in text


def test_postfix_main_and_booleans(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    main = compile_host({**GOOD, "postfix_main": {"smtputf8_enable": False, "header_size_limit": 204800, "smtpd_timeout": "45s"}})[
        "/etc/postfix/main.cf"
    ]
    assert "smtputf8_enable = no\n" in main and "header_size_limit = 204800\n" in main
    assert main.count("smtpd_timeout =") == 1 and "smtpd_timeout = 45s\n" in main  # postfix_main wins, once


BAD = [
    (
        "bind address",
        {"postfix_transports": [{"name": "out1", "bind_address": "mx.example.net"}]},
        "postfix_transports[0].bind_address: expected an IPv4 or IPv6 address",
    ),
    (
        "hostname with newline",
        {"postfix_myhostname": "mx1.example.net\nrelayhost = evil"},
        "postfix_myhostname: must not contain a newline",
    ),
    (
        "duplicate transports",
        {"postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2"}, {"name": "out1", "bind_address": "127.0.0.3"}]},
        "name 'out1' is used twice",
    ),
    ("time unit", {"postfix_maximal_queue_lifetime": "5y"}, "postfix_maximal_queue_lifetime: expected a time with Postfix units"),
    (
        "unknown transport",
        {
            "postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2"}],
            "postfix_transport_selection": "sender",
            "postfix_sender_transports": {"@a.example": "out9"},
        },
        "postfix_sender_transports: names a transport that postfix_transports does not define (out9)",
    ),
    ("selection without transports", {"postfix_transport_selection": "random"}, "needs at least one entry in postfix_transports"),
    (
        "pinned senders without selection",
        {"postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2"}], "postfix_sender_transports": {"@a.example": "out1"}},
        'postfix_sender_transports: is set but postfix_transport_selection is "none"',
    ),
    (
        "newline in main",
        {"postfix_main": {"smtpd_banner": "hi\nmynetworks = 0.0.0.0/0"}},
        "postfix_main.smtpd_banner: must not contain a newline",
    ),
    (
        "access key with space",
        {"postfix_access": {"client": {"a b": "REJECT"}}},
        "variable postfix_access.client: key 'a b': expected a lookup table key",
    ),
    (
        "option value with a stray brace",
        {"postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2", "options": {"smtp_helo_name": "x }"}}]},
        "variable postfix_transports[0].options.smtp_helo_name: 'x }' has a '}' without its '{'",
    ),
    (
        "option name with a space",
        {"postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2", "options": {"smtp_helo_name = x": "y"}}]},
        "key 'smtp_helo_name = x': expected a Postfix parameter name",
    ),
    ("main.cf name", {"postfix_main": {"mynetworks = 0.0.0.0/0 #": "x"}}, "expected a Postfix parameter name"),
    ("main.cf value Postfix trims", {"postfix_main": {"smtpd_banner": " hi"}}, "starts or ends with whitespace, which Postfix removes"),
    ("alias name with a colon", {"postfix_aliases": {"a:b": "root"}}, "key 'a:b': expected a local alias name"),
    ("alias target with a comma", {"postfix_aliases": {"a": "root, evil@example.com"}}, "is not an address"),
    ("command with a quote", {"postfix_aliases": {"a": '|/bin/sh -c "x"'}}, "must not contain double quotes"),
    ("alias names equal but for case", {"postfix_aliases": {"Root": "a", "root": "b"}}, "keys 'Root' and 'root' are the same key"),
    (
        "transport named as a built-in service",
        {"postfix_transports": [{"name": "local", "bind_address": "127.0.0.2"}]},
        "local is a service master.cf already has",
    ),
    (
        "instance sender map names another instance's transport",
        {
            "postfix_transports": [{"name": "out1", "bind_address": "127.0.0.2"}],
            "postfix_instances": [
                {
                    "name": "postfix-b",
                    "inet_interfaces": ["127.0.0.6"],
                    "transport_selection": "sender",
                    "transports": [{"name": "bulk1", "bind_address": "127.0.0.21"}],
                    "sender_transports": {"@a.example": "out1"},
                }
            ],
        },
        "names a transport that instance does not define (postfix-b: out1)",
    ),
    ("shell in the mail log path", {"postfix_maillog_file": "/var/log/x;reboot"}, "variable postfix_maillog_file: must match"),
    ("typo", {"postfix_relayhots": "[relay]:25"}, "did you mean 'postfix_relayhost'?"),
]


@pytest.mark.parametrize(("name", "values", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_variable_and_file(
    compile_host: Callable[[dict[str, Any]], dict[str, str]], name: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProvisionError) as caught:
        compile_host(values)
    assert message in caught.value.message
    assert caught.value.location is not None and caught.value.location.file.endswith("host_vars/mx1.example.net.yml")
