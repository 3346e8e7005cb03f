"""Linear's rate limits are waited out; user errors inside the answer are not retried; a PR
that cannot be linked as a GitHub PR is linked as a URL."""

from __future__ import annotations

import pytest

from bots.linear import queries
from bots.linear.client import LinearClient, LinearError
from tests.fakes.linear import FakeLinear


async def test_rate_limited_call_is_retried(fake_linear: FakeLinear) -> None:
    client = LinearClient(fake_linear.url, "token")
    fake_linear.rate_limit("agentActivityCreate", 1)
    done = await client.execute(queries.ACTIVITY_CREATE, input={"agentSessionId": "s", "content": {"type": "thought"}})
    await client.close()
    assert done["agentActivityCreate"]["success"] is True
    assert len(fake_linear.calls("agentActivityCreate")) == 2


async def test_user_error_is_not_retried(fake_linear: FakeLinear) -> None:
    client = LinearClient(fake_linear.url, "lin_api_" + "x" * 20)
    fake_linear.refuse("issue")
    with pytest.raises(LinearError) as raised:
        await client.execute(queries.ISSUE, id="nope")
    await client.close()
    assert raised.value.user_error is True
    assert str(raised.value) == "Could not find referenced Issue."
    assert len(fake_linear.calls("issue")) == 1
    assert fake_linear.calls("issue")[0].authorization == "lin_api_" + "x" * 20  # personal keys go bare


async def test_pull_request_falls_back_to_a_url_attachment(fake_linear: FakeLinear, linear_settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bots.linear.app import build_reporter

    fake_linear.refuse("attachmentLinkGitHubPR")
    reporter = build_reporter(linear_settings, None, None, ThreadPoolExecutor(1))  # only the client is used
    await reporter._attach(reporter.clients.default, "ENG-123", "https://github.com/acme/web/pull/42", "Fix login")
    await reporter.clients.close()
    urls = fake_linear.calls("attachmentLinkURL")
    assert [c.variables["url"] for c in urls] == ["https://github.com/acme/web/pull/42"]


def test_agent_text_cannot_mention_people() -> None:
    from core.mentions import strip_mentions

    assert strip_mentions("ping @ada and @grace.h, mail ada@acme.dev") == "ping ada and grace.h, mail ada@acme.dev"
