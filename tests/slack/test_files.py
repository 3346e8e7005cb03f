"""Files shared in the thread reach the run: downloaded with the bot token (``files:read``),
kept with the run and placed in the agent's workspace; a file over the cap, beyond the count,
hosted anywhere but Slack, or refused by Slack is named in the prompt with why — and the token
never goes anywhere but Slack."""

from __future__ import annotations

import copy
import secrets

from sqlalchemy import select

from core.settings import Settings
from core.store import Store
from core.store.tables import RunAttachmentRow
from tests.fakes.slack import FakeSlack, api_fixture
from tests.support.slack import SlackDelivery, all_runs, event
from tests.support.waiting import wait_for

CHANNEL = "C0LAN2Q65"
THREAD = "1732320100.000200"


def thread_with(files: list[dict]) -> list[dict]:
    messages = copy.deepcopy(api_fixture("conversations.replies")["messages"])
    messages[0]["files"] = files
    return messages


def attachments(store: Store) -> dict[str, bytes]:
    with store.reader() as session:
        return {row.file_name: row.data for row in session.scalars(select(RunAttachmentRow))}


def test_the_threads_files_are_downloaded_with_the_bot_token_and_kept_with_the_run(
    deliver: SlackDelivery,
    fake_slack: FakeSlack,
    store: Store,
    slack_settings: Settings,
    bot_token: str,
    linked_ada,
    slack_integration,
) -> None:
    fake_slack.file_token = bot_token
    trace = fake_slack.share_file("F01", "trace.txt", "text/plain", b"Traceback: KeyError 'password'\n")
    huge = fake_slack.share_file("F02", "dump.bin", "application/octet-stream", b"x" * 64)
    huge["size"] = slack_settings.slack_file_max_bytes + 1  # Slack says how big before anything is read
    elsewhere = {**trace, "id": "F03", "name": "phish.txt", "url_private_download": "https://evil.example/f"}
    fake_slack.threads[f"{CHANNEL}:{THREAD}"] = thread_with([trace, huge, elsewhere])

    deliver.post(event("event.app_mention.thread"))
    [run] = wait_for(lambda: all_runs(store), what="the run")

    assert attachments(store) == {"trace.txt": b"Traceback: KeyError 'password'\n"}
    assert fake_slack.downloads == [("F01", f"Bearer {bot_token}")]  # only Slack's host, with the token
    assert "Files not given to the agent" in run.prompt
    assert "dump.bin:" in run.prompt and "over the" in run.prompt
    assert "phish.txt: no download from Slack" in run.prompt


def test_without_files_read_slack_answers_its_sign_in_page_and_the_prompt_says_so(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    fake_slack.file_token = "xoxb-" + secrets.token_hex(12)  # another token: the bot's lacks files:read
    trace = fake_slack.share_file("F01", "trace.txt", "text/plain", b"Traceback\n")
    fake_slack.threads[f"{CHANNEL}:{THREAD}"] = thread_with([trace])

    deliver.post(event("event.app_mention.thread"))
    [run] = wait_for(lambda: all_runs(store), what="the run")

    assert attachments(store) == {}
    assert "trace.txt: Slack did not give the file" in run.prompt and "files:read" in run.prompt
