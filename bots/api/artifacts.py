"""``/api/v1/agent/artifacts/{uid}``: an artifact's description, and its download by signed link."""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

from bots.api.context import principal
from bots.api.runs import json_response
from bots.web import SETTINGS, public, reading
from core.artifacts import artifact_response, download
from core.signing import verify


async def get_artifact(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    result = await reading(
        request,
        artifact_response,
        principal(request),
        request.match_info["uid"],
        (settings.public_url or str(request.url.origin())).rstrip("/"),
        settings.signing_key(),
    )
    return json_response(result)


@public
async def download_artifact(request: web.Request) -> web.Response:
    """The signed link from :func:`get_artifact`; the signature stands in for the bearer key."""
    verify(
        request.app[SETTINGS].signing_key(), request.path, request.query.get("expires"), request.query.get("signature")
    )
    name, mime_type, content = await reading(request, download, request.match_info["uid"])
    # The name is the agent's: RFC 6266's quoted form and RFC 5987's encoded one, never raw.
    disposition = f"attachment; filename=\"{_ascii_name(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    return web.Response(
        body=content,
        content_type=mime_type,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


def _ascii_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:200] or "artifact"
