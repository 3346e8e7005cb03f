"""``GET /api/v1/usage``: what the team's runs used and cost (our extension), grouped by day,
source, creator or model; the same figures as ``oz-gateway usage``."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from bots.api.context import principal
from bots.api.runs import json_response
from bots.web import reading
from core import usage


class UsageQuery(BaseModel):
    since: datetime | None = None
    """Start of the window (inclusive; a date means its UTC midnight); default: the 1st of this month."""
    until: datetime | None = None
    """End of the window (exclusive); default: now."""
    by: usage.Grouping = "day"


async def get_usage(request: web.Request) -> web.Response:
    query = UsageQuery.model_validate(dict(request.query))
    since, until = usage.window(query.since, query.until)
    who = principal(request)
    return json_response(await reading(request, usage.report, who.team_uid, since, until, query.by))
