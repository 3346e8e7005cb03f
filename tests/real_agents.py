"""A pytest plugin (see ``tests/conftest.py``) for the real agent CLIs: the agent image, one
scripted model server per CLI, and an environment wired to it — the image, the repo, the
``egress`` network (the worker forwards the model gateway's base URL, an environment
variable, into the container; the settings allow private addresses: the fake is on
127.0.0.1) and the model key as a team secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import pytest

from core import environments, managed_secrets
from core.models import Principal
from core.settings import Settings
from core.store import Store
from core.vault import Vault
from tests.agent_image import agent_image as build_agent_image
from tests.fakes.models import FakeAnthropic, FakeGemini, FakeModelAPI, FakeOpenAI, Script


@dataclass(frozen=True)
class Cli:
    harness: str
    fake: type[FakeModelAPI]
    base_url_variable: str
    base_url_suffix: str
    key_secret: str
    model: str


CLIS = {
    "claude": Cli("claude", FakeAnthropic, "ANTHROPIC_BASE_URL", "", "ANTHROPIC_API_KEY", "claude-scripted-1"),
    "codex": Cli("codex", FakeOpenAI, "OPENAI_BASE_URL", "/v1", "OPENAI_API_KEY", "gpt-scripted-1"),
    "gemini": Cli("gemini", FakeGemini, "GOOGLE_GEMINI_BASE_URL", "", "GEMINI_API_KEY", "gemini-scripted-1"),
}


def readme_script(cli: str, repo: str = "api", **changes: object) -> Script:
    """Read README.md, add a line to it, run ``id -un; ls`` (which must say the agent is not root),
    answer."""
    fields: dict[str, object] = {
        "path": f"/workspace/{repo}/README.md",
        "old": f"# {repo}",
        "new": f"# {repo}\n\nEdited by {cli}.",
        "command": "id -un; ls",
        "expect": "agent\nREADME.md",
        "answer": "Updated README.md.",
    }
    fields.update(changes)
    return Script(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def agent_image(docker_client: docker.DockerClient) -> str:
    return build_agent_image(docker_client)


@pytest.fixture
def model_api() -> Iterator[Callable[[str, Script], FakeModelAPI]]:
    started: list[FakeModelAPI] = []

    def start(cli: str, script: Script) -> FakeModelAPI:
        fake = CLIS[cli].fake(script).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def model_env(store: Store, agent_image: str) -> Callable[..., str]:
    """An environment whose runs reach ``fake`` as their model API, with its key as a team secret."""

    def make(
        principal: Principal,
        settings: Settings,
        cli: str,
        fake: FakeModelAPI,
        repos: list[str] = ("acme/api",),
        *,
        key: str | None = None,
        image: str | None = None,
        read_only_root: bool = False,
        secret_names: list[str] = (),
    ) -> str:
        spec = CLIS[cli]
        with store.session() as session:
            if key != "":
                managed_secrets.put_secret(
                    session, Vault.from_settings(settings), principal, spec.key_secret, key or fake.api_key, "team"
                )
            env = environments.create_environment(
                session,
                principal,
                name=f"{cli}-env",
                docker_image=image or agent_image,
                repos=list(repos),
                network_mode="egress",
                read_only_root=read_only_root,
                secret_names=list(secret_names),
                variables={spec.base_url_variable: fake.url + spec.base_url_suffix},
            )
        return env.uid

    return make
