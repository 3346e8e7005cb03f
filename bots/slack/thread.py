"""A Slack thread as the prompt sees it: people's messages by name, files and links listed.

Bot chatter (other apps' posts) and the app's own status posts are left out: they are not
what the person asked, and feeding our own posts back would make the agent read itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.prompts import Conversation, Message

USER_REF = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL_REF = re.compile(r"<#[CG][A-Z0-9]+\|([^>]*)>")
LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
SPECIAL = re.compile(r"<!(here|channel|everyone)[^>]*>")
REPLIES_PAGE = 200
APP_NAME = "Oz"


@dataclass(frozen=True)
class SlackMessage:
    """The message that mentioned the app (or was sent to it directly)."""

    team: str
    channel: str
    user: str
    ts: str
    text: str
    thread_ts: str | None = None
    enterprise: str | None = None
    files: list[dict] = field(default_factory=list)

    @property
    def root(self) -> str:
        """The thread the conversation lives in: an existing thread, or the message's own."""
        return self.thread_ts or self.ts

    @property
    def origin_key(self) -> str:
        return f"slack:{self.team}:{self.channel}:{self.root}"

    @classmethod
    def from_event(cls, team: str, event: dict, enterprise: str | None = None) -> SlackMessage:
        return cls(
            team=team,
            channel=event["channel"],
            user=event["user"],
            ts=event["ts"],
            text=event.get("text") or "",
            thread_ts=event.get("thread_ts"),
            enterprise=enterprise,
            files=list(event.get("files") or []),
        )

    def as_payload(self) -> dict:
        return {
            "team": self.team,
            "channel": self.channel,
            "user": self.user,
            "ts": self.ts,
            "text": self.text,
            "thread_ts": self.thread_ts,
            "enterprise": self.enterprise,
            "files": self.files,
        }


def request_text(text: str, bot_user_id: str | None) -> str:
    """The words addressed to the app: its own mention removed, whitespace tidied."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


def links_of(text: str) -> list[str]:
    return [m.group(1) for m in LINK.finditer(text)]


def plain(text: str, names: dict[str, str]) -> str:
    """Slack's mrkdwn references made readable: ``<@U1>`` → ``@Ada``, ``<url|label>`` → ``label (url)``."""
    text = USER_REF.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = CHANNEL_REF.sub(lambda m: "#" + m.group(1), text)
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    text = SPECIAL.sub(lambda m: "@" + m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def is_bot_message(message: dict, bot_user_id: str | None) -> bool:
    return bool(
        message.get("bot_id")
        or message.get("subtype") in ("bot_message", "message_changed", "message_deleted")
        or (bot_user_id and message.get("user") == bot_user_id)
    )


class Names:
    """Display names of workspace members, looked up once per process (``users.info``)."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}

    async def of(self, client: AsyncWebClient, team: str, user: str) -> str:
        key = (team, user)
        if key not in self._names:
            try:
                response = await client.users_info(user=user)
            except SlackApiError:
                return user  # a deleted or foreign user: the id is better than failing the request
            profile = response["user"].get("profile") or {}
            self._names[key] = (
                profile.get("real_name") or profile.get("display_name") or response["user"].get("name") or user
            )
        return self._names[key]


async def thread_messages(client: AsyncWebClient, channel: str, root: str) -> list[dict]:
    """Every message of the thread, oldest first, across ``conversations.replies`` pages."""
    messages: list[dict] = []
    cursor: str | None = None
    while True:
        page = await client.conversations_replies(channel=channel, ts=root, limit=REPLIES_PAGE, cursor=cursor)
        messages += page.get("messages") or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return messages


def _files(message: dict) -> list[str]:
    return [
        f"{f.get('name') or f.get('title') or f.get('id')} ({f.get('permalink', 'no link')})"
        for f in message.get("files") or []
    ]


async def conversation(
    client: AsyncWebClient, names: Names, mention: SlackMessage, bot_user_id: str | None, permalink: str | None
) -> tuple[Conversation, list[dict]]:
    """The thread around ``mention`` (which is the request and so left out of the messages), and
    the files people shared in it (Slack's file objects)."""
    raw = [mention.as_payload()]
    if mention.thread_ts:
        raw = await thread_messages(client, mention.channel, mention.root)
    people = [m for m in raw if not is_bot_message(m, bot_user_id) and m.get("user")]
    ids = {m["user"] for m in people}
    for m in people:
        ids.update(USER_REF.findall(m.get("text") or ""))
    ids.discard(bot_user_id or "")
    lookup = {uid: await names.of(client, mention.team, uid) for uid in sorted(ids)}
    if bot_user_id:
        lookup[bot_user_id] = APP_NAME

    files: list[str] = []
    links: list[str] = []
    messages: list[Message] = []
    for m in people:
        files += _files(m)
        links += [u for u in links_of(m.get("text") or "") if u not in links]
        if m.get("ts") != mention.ts:
            messages.append(Message(lookup.get(m["user"], m["user"]), plain(m.get("text") or "", lookup)))
    opening = messages.pop(0) if messages and people[0].get("ts") == mention.root else None
    kind = "Slack direct message" if mention.channel.startswith("D") else "Slack thread"
    facts = [("Files shared in the thread", "\n".join(files)), ("Links in the thread", "\n".join(links))]
    shared = [f for m in people for f in m.get("files") or []]
    return Conversation(kind=kind, url=permalink, opening=opening, messages=messages, facts=facts), shared
