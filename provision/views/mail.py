"""``provision mail``: queue tables and per-instance results, readable at 80 columns."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.mail.queues import MailResult, held, queue_rows

VERBS = {"flush": "flushed", "requeue": "requeued", "delete": "deleted", "hold": "put on hold", "release": "released", "check": "checked"}


def print_mail(console: Console, action: str, results: Sequence[MailResult]) -> None:
    if action == "queue":
        table = Table("host", "instance", "messages", "deferred", "held", "oldest", "top destinations", title="mail queue")
        for column in table.columns[2:5]:
            column.justify = "right"
        for row in queue_rows(list(results)):
            table.add_row(
                Text(row["host"], overflow="fold"),
                Text(row["instance"], overflow="fold"),
                str(row["count"]),
                str(row["deferred"]),
                str(row["held"]),
                row["oldest_age"],
                Text(row["top_destinations"], overflow="fold"),
            )
        console.print(table)
    else:
        for result in results:
            for entry in result.instances:
                name = entry["name"] if entry["name"] != "-" else "postfix"
                step = entry.get("check") or entry.get("result")
                state = VERBS.get(action, action) if step is not None and step["exit"] == 0 else f"{action} failed"
                extra = f" (map types: {' '.join(entry['map_types'])})" if entry.get("map_types") else ""
                on_hold = held(entry)
                if on_hold is not None:
                    total = entry.get("queue", {}).get("count", 0)
                    extra += f": {on_hold} held, {total} in the queue"
                console.print(Text(f"{result.host} {name}: {state}{extra}"), soft_wrap=True)
    for result in results:
        if result.skipped is not None:
            console.print(Text(f"{result.host}: skipped: {result.skipped}", style="dim"), soft_wrap=True)
        for error in result.errors:
            line = Text(f"{result.host}", style="bold red")
            line.append(f": {result.status}: {error}")
            console.print(line, soft_wrap=True)
