"""The apache role compiled on the controller: what it renders and what it refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from provision.errors import ProvisionError

VHOST = {
    "server_name": "www.example.net",
    "document_root": "/srv/www",
    "directories": [{"path": "/srv/www/up", "limit_request_body": 1000}],
    "locations": [{"path": "/status", "handler": "server-status"}],
}


@pytest.fixture
def compile_host(compile_role: Callable[[str, str, dict[str, Any]], dict[str, str]]) -> Callable[[dict[str, Any]], dict[str, str]]:
    return lambda host_vars: compile_role("apache", "web1.example.net", host_vars)


def test_only_the_chosen_mpm_and_its_settings(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    modules = compile_host({"apache_mpm": "worker", "apache_mpm_settings": {"ThreadsPerChild": 25, "MaxRequestWorkers": 150}})[
        "/etc/apache2/provision/modules.conf"
    ]
    assert modules.count("mpm_") == 2 and "Include mods-available/mpm_worker.load\n" in modules
    assert "\tMaxRequestWorkers 150\n" in modules and "\tThreadsPerChild 25\n" in modules


def test_vhost_sections_and_tls_module(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    vhost = {
        **VHOST,
        "tls": {"cert_file": "/etc/ssl/certs/w.pem", "key_file": "/etc/ssl/private/w.key"},
        "handlers": {"cgi-script": [".cgi"]},
    }
    files = compile_host({"apache_vhosts": [vhost], "apache_mpm": "prefork"})
    vhosts, modules = files["/etc/apache2/provision/vhosts.conf"], files["/etc/apache2/provision/modules.conf"]
    assert '<Directory "/srv/www/up">' in vhosts and "LimitRequestBody 1000" in vhosts
    assert '<Location "/status">\n\t\tSetHandler server-status' in vhosts
    assert '<Directory "/srv/www">\n\t\tRequire all granted' in vhosts
    assert "SSLEngine on" in vhosts and "AddHandler cgi-script .cgi" in vhosts
    assert "mods-available/ssl.load" in modules and "mods-available/cgi.load" in modules


def test_one_name_on_two_addresses_is_two_sites(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    vhosts = [{**VHOST, "listen": "*:80"}, {**VHOST, "listen": "*:443", "aliases": ["WWW.example.net"]}]
    assert compile_host({"apache_vhosts": vhosts})["/etc/apache2/provision/vhosts.conf"].count("ServerName www.example.net") == 2


def test_handlers_load_the_module_that_answers_them(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    vhost = {
        **VHOST,
        "locations": [
            {"path": "/cgi-bin", "handler": "cgi-script"},
            {"path": "/app", "handler": "proxy:unix:/run/php/fpm.sock|fcgi://localhost"},
        ],
        "handlers": {"php-script": [".php"]},
    }
    files = compile_host({"apache_vhosts": [vhost], "apache_module_handlers": {"php-script": "php8_2"}})
    modules, vhosts = files["/etc/apache2/provision/modules.conf"], files["/etc/apache2/provision/vhosts.conf"]
    for module in ("cgid", "proxy", "proxy_fcgi", "php8_2"):
        assert f"Include mods-available/{module}.load\n" in modules
    assert 'SetHandler "proxy:unix:/run/php/fpm.sock|fcgi://localhost"' not in vhosts
    assert "SetHandler proxy:unix:/run/php/fpm.sock|fcgi://localhost\n" in vhosts and "AddHandler php-script .php\n" in vhosts


def test_paths_quoted_by_apache_rules(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    root = '/srv/a "b" c>d\\'
    vhost = {**VHOST, "document_root": root, "directories": [], "locations": [{"path": "/x'y>z", "require": "all denied"}]}
    vhosts = compile_host({"apache_vhosts": [vhost]})["/etc/apache2/provision/vhosts.conf"]
    assert 'DocumentRoot "/srv/a \\"b\\" c>d\\\\"\n' in vhosts
    assert '<Location "/x\'y>z">\n\t\tRequire all denied\n' in vhosts


def test_rotated_access_log(compile_host: Callable[[dict[str, Any]], dict[str, str]]) -> None:
    conf = compile_host({"apache_access_log": {"rotate": True, "interval": 3600}})["/etc/apache2/apache2.conf"]
    assert 'CustomLog "|/usr/bin/rotatelogs -l ${APACHE_LOG_DIR}/access_log.%Y-%m-%d 3600" combined' in conf


BAD = [
    (
        "thread setting under prefork",
        {"apache_mpm": "prefork", "apache_mpm_settings": {"ThreadsPerChild": 25}},
        "ThreadsPerChild does not belong to the prefork MPM",
    ),
    ("process setting under event", {"apache_mpm_settings": {"MinSpareServers": 5}}, "MinSpareServers does not belong to the event MPM"),
    (
        "workers above limits",
        {"apache_mpm": "worker", "apache_mpm_settings": {"ServerLimit": 2, "ThreadsPerChild": 25, "MaxRequestWorkers": 100}},
        "MaxRequestWorkers 100 is more than ServerLimit x ThreadsPerChild (2 x 25 = 50)",
    ),
    ("unknown mpm", {"apache_mpm": "threaded"}, "apache_mpm: expected one of 'prefork', 'worker', 'event'"),
    (
        "relative directory",
        {"apache_vhosts": [{**VHOST, "directories": [{"path": "srv/www"}]}]},
        "apache_vhosts[0].directories[0].path: expected an absolute path",
    ),
    (
        "location without slash",
        {"apache_vhosts": [{**VHOST, "locations": [{"path": "status"}]}]},
        "apache_vhosts[0].locations[0].path: must match",
    ),
    (
        "handler with a quote",
        {"apache_vhosts": [{**VHOST, "handlers": {'cgi script"': [".cgi"]}}]},
        "apache_vhosts[0].handlers: key 'cgi script\"': expected an Apache handler name",
    ),
    (
        "extension with a space",
        {"apache_vhosts": [{**VHOST, "handlers": {"cgi-script": [".p l"]}}]},
        "apache_vhosts[0].handlers.cgi-script[0]: expected one file name extension",
    ),
    (
        "handler in upper case",
        {"apache_vhosts": [{**VHOST, "locations": [{"path": "/x", "handler": "CGI-Script"}]}]},
        "expected an Apache handler name in lower case",
    ),
    (
        "handler no module answers",
        {"apache_vhosts": [{**VHOST, "handlers": {"cgi_script": [".cgi"]}}]},
        "no module provides the handler apache_vhosts[0].handlers: cgi_script: Apache would serve those files as they are",
    ),
    (
        "require that joins the next line",
        {"apache_vhosts": [{**VHOST, "directories": [{"path": "/srv", "require": "all granted\\"}]}]},
        "ends with a backslash",
    ),
    (
        "require with a variable",
        {"apache_vhosts": [{**VHOST, "locations": [{"path": "/x", "require": "ip ${ADMIN_NET}"}]}]},
        "holds ${...}",
    ),
    (
        "server name twice, in two cases",
        {"apache_vhosts": [{**VHOST, "server_name": "b.test"}, {**VHOST, "server_name": "B.TEST"}]},
        "B.TEST on *:80 is named by apache_vhosts[0].server_name (b.test) and apache_vhosts[1].server_name (B.TEST)",
    ),
    (
        "alias equal to another vhost's name",
        {"apache_vhosts": [{**VHOST, "server_name": "a.test"}, {**VHOST, "server_name": "b.test", "aliases": ["A.test"]}]},
        "A.test on *:80 is named by apache_vhosts[0].server_name (a.test) and apache_vhosts[1].aliases[0] (A.test)",
    ),
    ("admin that joins the next line", {"apache_server_admin": "a@b.example\\"}, "apache_server_admin: expected an email address"),
    (
        "newline in require",
        {"apache_vhosts": [{**VHOST, "directories": [{"path": "/srv", "require": "all granted\nInclude /x"}]}]},
        "must not contain a newline",
    ),
]


@pytest.mark.parametrize(("name", "values", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused(
    compile_host: Callable[[dict[str, Any]], dict[str, str]], name: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProvisionError) as caught:
        compile_host(values)
    assert message in caught.value.message
    assert caught.value.location is not None and caught.value.location.file.endswith("host_vars/web1.example.net.yml")
