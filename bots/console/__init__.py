"""The management console (``/console``): server-rendered pages for people (``views.py``)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web


def safe_href(url: object) -> str:
    """Links built from data (a trigger URL, a PR URL) only when they are web addresses:
    autoescaping does not stop ``javascript:``."""
    text = str(url or "")
    return text if text.startswith(("https://", "http://")) else "#"


def setup_templates(app: web.Application) -> None:
    environment = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("bots.console", "templates"), autoescape=jinja2.select_autoescape(default=True)
    )
    environment.filters["href"] = safe_href
