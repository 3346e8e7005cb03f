"""Files shared in the thread a run is asked for, downloaded with the bot token (Slack's
``files:read``) so the agent gets them in its workspace (``/workspace/.oz/attachments/``).

Bounded: at most ``OZGW_SLACK_FILES_MAX`` files of at most ``OZGW_SLACK_FILE_MAX_BYTES`` each
(read in chunks and abandoned past the cap, never buffered whole first).  The bot token goes
only to Slack's own hosts: a file whose download URL points anywhere else is skipped.  A file
that cannot be had is named in the prompt with why, rather than failing the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import structlog
from slack_sdk.web.async_client import AsyncWebClient

from core.settings import Settings

log = structlog.get_logger(__name__)
CHUNK = 64 * 1024


@dataclass
class SharedFiles:
    files: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(name, MIME type, bytes) of each file downloaded."""
    skipped: list[str] = field(default_factory=list)
    """Each file left out, with why."""


def _slack_host(url: str, settings: Settings) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    api_host = (urlsplit(settings.slack_api_url).hostname or "").lower()
    return host == api_host or host == "slack.com" or host.endswith(".slack.com")


async def download(client: AsyncWebClient, settings: Settings, shared: list[dict]) -> SharedFiles:
    result = SharedFiles()
    cap = settings.slack_file_max_bytes
    for index, meta in enumerate(shared):
        name = str(meta.get("name") or meta.get("title") or meta.get("id") or "file")
        if index >= settings.slack_files_max:
            result.skipped.append(f"{name}: more than {settings.slack_files_max} files in the thread")
            continue
        url = meta.get("url_private_download") or meta.get("url_private")
        if not url or not _slack_host(url, settings):
            result.skipped.append(f"{name}: no download from Slack")
            continue
        if int(meta.get("size") or 0) > cap:
            result.skipped.append(f"{name}: {meta.get('size')} bytes, over the {cap}-byte limit")
            continue
        data, why = await _fetch(client, settings, url, cap)
        if data is None:
            result.skipped.append(f"{name}: {why}")
            continue
        result.files.append((name, str(meta.get("mimetype") or "application/octet-stream"), data))
    return result


async def _fetch(client: AsyncWebClient, settings: Settings, url: str, cap: int) -> tuple[bytes | None, str]:
    headers = {"Authorization": f"Bearer {client.token}"}
    timeout = aiohttp.ClientTimeout(total=settings.outbound_timeout_seconds)
    own = client.session is None
    session = client.session if client.session is not None else aiohttp.ClientSession()
    try:
        async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200 or response.content_type == "text/html":
                # Without files:read Slack answers with its sign-in page, not the file.
                return None, f"Slack did not give the file (HTTP {response.status}; does the app have files:read?)"
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > cap:
                    return None, f"over the {cap}-byte limit"
            return bytes(data), ""
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("slack.file_download_failed", reason=type(exc).__name__)
        return None, f"Slack did not answer ({type(exc).__name__})"
    finally:
        if own:
            await session.close()
