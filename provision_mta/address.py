"""Envelope addresses: their syntax, and where they are routed.

One function, :func:`route`, says where an address goes; intake decides
relaying with it (RCPT TO) and the queue manager delivers with it, so the
address that was judged is the address that is delivered. It resolves an
address as Postfix's trivial-rewrite does: the rightmost ``@`` outside
quotes and brackets separates the domain; when that domain is ours, the
local part is looked into (``resolve_dequoted_address``, quotes removed)
for another ``@`` (``"user@elsewhere"@ours``, ``user@elsewhere@ours``),
a bang path (``elsewhere!user@ours``, ``swap_bangpath``) or a percent
hack (``user%elsewhere@ours``, ``allow_percent_hack``), and the address
is resolved again. Source routes (``@a,@b:user@c``) are dropped (RFC 5321
4.1.1.3), domains are compared in lower case without trailing dots, and a
domain literal is ours when it is one of our addresses.

Syntax is Postfix's as far as a client can tell: a control character (CR,
LF, NUL, TAB...) anywhere, a space outside quotes, an empty local part or a
domain that is not a host name or an address literal is refused.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

# Postfix's resolver loops at most this often on one address (user%a%b%c@...).
_MAX_REWRITES = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 5321 atext plus the dots and the routing characters @ % ! Postfix reads in an unquoted local part;
# anything at or above 0x80 is UTF-8 (SMTPUTF8).
_UNQUOTED = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@\u0080-\U0010ffff]+")
_LABEL = re.compile(r"[A-Za-z0-9_\u0080-\U0010ffff]([A-Za-z0-9_\-\u0080-\U0010ffff]*[A-Za-z0-9_\u0080-\U0010ffff])?")
_NEEDS_QUOTES = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]|^\.|\.$|\.\.")


class AddressError(ValueError):
    """An address that is not one (the text says why, for a 501 reply or a sendmail error)."""


@dataclass(frozen=True)
class Mailbox:
    local: str
    """The local part without its quotes."""
    domain: str
    """As written (lower case and trailing dots are :func:`route`'s business); empty for a bare name."""

    def __str__(self) -> str:
        return join(self.local, self.domain)


def join(local: str, domain: str) -> str:
    """``local@domain`` with the local part quoted where RFC 5321 wants quotes."""
    if _NEEDS_QUOTES.search(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{domain}" if domain else local


def split_path(argument: str) -> tuple[str, str]:
    """The MAIL FROM / RCPT TO argument after the colon: (the address, the ESMTP
    parameters). With angle brackets the address is what they enclose; without
    them (Postfix accepts that) it is the first word."""
    text = argument.lstrip(" ")
    if text.startswith("<"):
        end = _closing_bracket(text)
        return text[1:end], text[end + 1 :].strip(" ")
    address, _, rest = text.partition(" ")
    return address, rest.strip(" ")


def _closing_bracket(text: str) -> int:
    quoted = escaped = False
    for index, char in enumerate(text[1:], start=1):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    raise AddressError("unbalanced '<'")


# Pure functions of their arguments, asked the same addresses again and again (a sender's
# every message, intake then the queue manager): each text is parsed once while it is in use.
@functools.lru_cache(maxsize=4096)
def parse_mailbox(text: str) -> Mailbox:
    """``local@domain``, ``"quoted local"@domain``, a bare ``local``; a source route in front is dropped."""
    if _CONTROL.search(text):
        raise AddressError("control character in address")
    if text.startswith("@"):  # @relay1,@relay2:user@domain
        route, colon, rest = text.partition(":")
        if not colon or not all(hop.startswith("@") and _valid_domain(hop[1:]) for hop in route.split(",")):
            raise AddressError("malformed source route")
        text = rest
    local_text, domain = _split_at_domain(text)
    local = _dequote(local_text)
    if not local:
        raise AddressError("empty local part")
    if domain and not _valid_domain(domain):
        raise AddressError(f"malformed domain {domain!r}")
    return Mailbox(local, domain)


def _split_at_domain(text: str) -> tuple[str, str]:
    """At the rightmost ``@`` outside quotes and brackets."""
    quoted = escaped = False
    depth = 0
    at = -1
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "[":
            depth += 1
        elif not quoted and char == "]":
            depth -= 1
        elif not quoted and depth == 0 and char == "@":
            at = index
    if quoted or escaped:
        raise AddressError("unbalanced quote")
    if at < 0:
        return text, ""
    if at == len(text) - 1:
        raise AddressError("empty domain")
    return text[:at], text[at + 1 :]


def _dequote(text: str) -> str:
    """The local part's value: quoted pieces unquoted, unquoted pieces as they are (no spaces there)."""
    value = []
    index = 0
    while index < len(text):
        if text[index] == '"':
            end = index + 1
            while text[end] != '"':
                if text[end] == "\\":
                    end += 1
                value.append(text[end])
                end += 1
            index = end + 1
            continue
        match = _UNQUOTED.match(text, index)
        if not match:
            raise AddressError(f"{text[index]!r} outside quotes")
        value.append(match.group())
        index = match.end()
    return "".join(value)


def _valid_domain(domain: str) -> bool:
    if domain.startswith("["):
        return literal_address(domain) is not None
    labels = domain.rstrip(".").split(".")
    return bool(domain.rstrip(".")) and all(_LABEL.fullmatch(label) for label in labels)


def literal_address(domain: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a domain literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``), or None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            return ipaddress.IPv6Address(inner[5:])
        return ipaddress.IPv4Address(inner)
    except ValueError:
        return None


def normal_domain(domain: str) -> str:
    return domain.rstrip(".").lower()


@dataclass(frozen=True)
class Routing:
    """What :func:`route` needs from main.cf."""

    is_local_domain: Callable[[str], bool]
    myorigin: str
    recipient_delimiter: str = ""
    allow_percent_hack: bool = True
    swap_bangpath: bool = True
    resolve_dequoted_address: bool = True


@dataclass(frozen=True)
class Route:
    address: str
    """The address as it is delivered: the next hop's RCPT TO, or the local mailbox's Delivered-To."""
    local: bool
    domain: str
    """Lower case, no trailing dot: the destination (remote) or our own domain (local)."""
    user: str = ""
    """Local only: the mailbox name looked up in aliases and passwd (lower case, extension removed)."""


@functools.lru_cache(maxsize=4096)
def route(text: str, routing: Routing) -> Route:
    """Where ``text`` goes. Raises :class:`AddressError` when it is not an address."""
    mailbox = parse_mailbox(text)
    local, domain = mailbox.local, mailbox.domain or routing.myorigin
    # Quoted text is looked into only as resolve_dequoted_address says; unquoted
    # @ % ! (user@a@b) always count, as in Postfix.
    was_quoted = '"' in text.rpartition("@")[0] if mailbox.domain else '"' in text
    for _ in range(_MAX_REWRITES):
        domain = normal_domain(domain)
        if not routing.is_local_domain(domain):
            return Route(join(local, domain), False, domain)
        if was_quoted and not routing.resolve_dequoted_address:
            break
        if "@" in local:
            local, _, domain = local.rpartition("@")
        elif routing.swap_bangpath and "!" in local:
            domain, _, local = local.partition("!")
        elif routing.allow_percent_hack and "%" in local:
            local, _, domain = local.rpartition("%")
        else:
            break
        if not local or not domain or not _valid_domain(domain):
            raise AddressError("malformed address in the local part")
        was_quoted = False
    else:
        raise AddressError("too many routing operators in the local part")
    user = local.lower()
    if routing.recipient_delimiter:
        for delimiter in routing.recipient_delimiter:
            user = user.split(delimiter, 1)[0] or user
    return Route(join(local, domain), True, domain, user)
