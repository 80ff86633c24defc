"""What a run will touch, said when part of it touches nothing.

A play whose ``hosts:`` matches no host, a ``--limit`` that leaves a play no
host, and a ``--tags`` naming a tag no role has are warnings (a typo there
means less is converged or checked than the user believes); ``--tags`` that
select nothing at all on the chosen hosts are an error, since the run would
check nothing and say all is well. A ``--skip-tags`` tag that no role has is
an error too (the run would change what the user meant to leave alone); one
on no role of the chosen hosts is a warning.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from provision.errors import ProvisionError
from provision.inventory import select_hosts
from provision.roles.compiler import Project
from provision.roles.loader import Role
from provision.roles.site import Play

SHOWN_HOSTS = 5


class NothingSelected(ProvisionError):
    """--tags that select nothing on any chosen host."""


class UnknownSkipTag(ProvisionError):
    """--skip-tags naming a tag no role has: most likely a typo, and then the run
    would change what the user meant to leave alone."""


# Ansible's special tags: never a typo.
SPECIAL_TAGS = frozenset({"all", "always", "never"})


@dataclass
class Selection:
    hosts: list[str]
    tags: set[str] | None
    warnings: list[str] = field(default_factory=list)


def parse_tags(text: str | None) -> set[str] | None:
    """``--tags a,b``: None when not given (everything)."""
    if text is None:
        return None
    return {t.strip() for t in text.split(",") if t.strip()} or None


def _play_name(play: Play) -> str:
    where = f"{play.location}: " if play.location else ""
    return f"{where}play {play.name!r}" if play.name else f"{where}play"


def _hosts_text(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:SHOWN_HOSTS])
    return shown + (f" and {len(hosts) - SHOWN_HOSTS} more" if len(hosts) > SHOWN_HOSTS else "")


def play_warnings(project: Project, selected: list[str], limit: str | None) -> list[str]:
    chosen = set(selected)
    warnings = []
    for play in project.plays:
        matched = select_hosts(project.inventory, play.hosts)
        if not matched:
            warnings.append(f"{_play_name(play)}: hosts pattern {play.hosts!r} matches no host in {project.inventory.source}")
        elif limit is not None and not chosen.intersection(matched):
            warnings.append(
                f"{_play_name(play)} (hosts: {play.hosts}): --limit {limit!r} leaves it no host (it matches {_hosts_text(matched)})"
            )
    return warnings


def role_tags(role: Role, use_tags: list[str]) -> set[str]:
    """Every tag that selects some part of the role: its name, its own and the site's tags, its files' and folders' tags."""
    tags = {role.name, *role.tags, *use_tags}
    for resource in role.files:
        tags.update(resource.tags)
    for directory in role.directories:
        tags.update(directory.tags)
    return tags


def host_tags(project: Project, host: str) -> set[str]:
    assigned = project.host_roles(host)
    found: set[str] = set()
    for role, use in zip(assigned.roles, assigned.uses, strict=True):
        found |= role_tags(role, use.tags)
    return found


def site_tags(project: Project) -> set[str]:
    found: set[str] = set()
    for play in project.plays:
        for use in play.roles:
            found |= role_tags(project.loader.get(use.name, use.location), use.tags)
    return found


def _tags_on(project: Project, selected: list[str]) -> set[str]:
    found: set[str] = set()
    for host in selected:
        found |= host_tags(project, host)
    return found


def tag_warnings(project: Project, selected: list[str], wanted: set[str]) -> list[str]:
    """Warnings for tags no role has; raises when no tag selects anything on the chosen hosts."""
    known, on_hosts = site_tags(project), _tags_on(project, selected)
    warnings: list[str] = []
    if "all" in wanted:  # Ansible's "everything": nothing to warn about
        return warnings
    for tag in sorted(wanted):
        if tag not in known:
            hint = difflib.get_close_matches(tag, sorted(known), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            warnings.append(f"--tags: no role has the tag {tag!r}{suggestion} (tags: {', '.join(sorted(known)) or 'none'})")
        elif tag not in on_hosts:
            warnings.append(f"--tags: the tag {tag!r} is on no role of the {len(selected)} selected host(s)")
    if not wanted & on_hosts:
        reasons = "; ".join(w.removeprefix("--tags: ") for w in warnings)
        raise NothingSelected(f"--tags {','.join(sorted(wanted))} select nothing on the selected hosts, nothing would be done: {reasons}")
    return warnings


def skip_tag_warnings(project: Project, selected: list[str], skipped: frozenset[str]) -> list[str]:
    """Warnings for skipped tags on no role of the chosen hosts; raises, before
    anything is contacted, for one that no role has at all."""
    known, on_hosts = site_tags(project), _tags_on(project, selected)
    warnings = []
    for tag in sorted(skipped - SPECIAL_TAGS):
        if tag not in known:
            hint = difflib.get_close_matches(tag, sorted(known), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise UnknownSkipTag(
                f"--skip-tags: no role has the tag {tag!r}{suggestion} (tags: {', '.join(sorted(known)) or 'none'}); "
                "nothing was done, since the run would change what you meant to leave alone"
            )
        if tag not in on_hosts:
            warnings.append(f"--skip-tags: the tag {tag!r} is on no role of the {len(selected)} selected host(s), it skips nothing")
    return warnings


def select(project: Project, limit: str | None, tags: str | None) -> Selection:
    """The hosts and tags of a run, with a warning for each part that selects nothing."""
    hosts = project.select(limit)
    wanted = parse_tags(tags)
    selection = Selection(hosts, wanted, play_warnings(project, hosts, limit))
    if wanted is not None:
        selection.warnings += tag_warnings(project, hosts, wanted)
    if project.options.skip_tags:
        selection.warnings += skip_tag_warnings(project, hosts, project.options.skip_tags)
    return selection
