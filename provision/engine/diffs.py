"""Unified diffs of managed files, with secrets masked."""

from __future__ import annotations

from provision.state import DesiredFile, FileFact

MASK = "********"


MIN_LINE = 8
"""A line of a multi-line secret at least this long is masked on its own (a
validator may echo one line of a key); shorter ones would mask common words."""


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value, and every line of a multi-line one, replaced;
    also where it is written escaped (an error message quoting a value with repr())."""
    fragments = set(secrets)
    for secret in secrets:
        if "\n" in secret:
            fragments.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_LINE)
    forms = {form for fragment in fragments for form in (fragment, repr(fragment)[1:-1]) if form}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def file_diff(actual: FileFact, desired: DesiredFile, secrets: list[str]) -> str | None:
    """The diff to show for a changed file; a secret file shows only hashes."""
    if desired.secret:
        return f"(secret content changed: sha256 {_short(actual.sha256)} → {_short(desired.sha256)})"
    if actual.exists and actual.sha256 == desired.sha256:
        return None
    before = b"" if not actual.exists else actual.content
    if before is None:
        return f"(content changed: sha256 {_short(actual.sha256)} → {_short(desired.sha256)}; too large to show)"
    try:
        old, new = before.decode("utf-8"), desired.content.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary content changed: sha256 {_short(actual.sha256)} → {_short(desired.sha256)})"
    import difflib  # only with --diff

    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{desired.path} (host)" if actual.exists else "/dev/null",
        tofile=f"{desired.path} (desired)",
    )
    return mask("".join(line if line.endswith("\n") else line + "\n" for line in lines), secrets)
