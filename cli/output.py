"""``--output-format pretty|json|ndjson|text``, as the Oz CLI offers them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel

FORMATS = ("pretty", "json", "ndjson", "text")


def _plain(item: Any) -> Any:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    return item


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def emit(data: Any, fmt: str, columns: Sequence[str]) -> None:
    """Print one object or a list of them; ``columns`` picks what pretty and text show."""
    many = isinstance(data, list)
    items = [_plain(i) for i in (data if many else [data])]
    if fmt == "json":
        click.echo(json.dumps(items if many else items[0], indent=2, default=str))
    elif fmt == "ndjson":
        for item in items:
            click.echo(json.dumps(item, default=str))
    elif fmt == "text":
        for item in items:
            click.echo("\t".join(_cell(item.get(c)) for c in columns))
    elif many:
        rows = [[_cell(i.get(c)) for c in columns] for i in items]
        widths = [max([len(c)] + [len(r[n]) for r in rows]) for n, c in enumerate(columns)]
        click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if not rows:
            click.echo("(none)")
    else:
        item = items[0]
        width = max(len(k) for k in item) if item else 0
        for key, value in item.items():
            shown = json.dumps(value) if isinstance(value, dict) else _cell(value)
            click.echo(f"{key.ljust(width)}  {shown}")
