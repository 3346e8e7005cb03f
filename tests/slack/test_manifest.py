"""The app manifest asks for what the code uses: its scopes are the OAuth install's, its events
are the ones the listeners handle."""

from __future__ import annotations

from pathlib import Path

import yaml

from bots.slack.app import BOT_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "slack-app.yml"


def test_manifest_matches_the_app() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    events = manifest["settings"]["event_subscriptions"]
    assert sorted(events["bot_events"]) == ["app_mention", "message.im", "reaction_added"]
    assert events["request_url"].endswith("/slack/events")
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
