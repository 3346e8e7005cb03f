"""People and their keys, and artifacts, as tests create them."""

from __future__ import annotations

import uuid

from oz_agent_sdk import OzAPI

from core.models import Account
from core.store import Store

AGENT_LIMIT = 3
"""The plan's cloud agents where a test calls the core directly (the gateway tests' settings say 3)."""


class Person:
    """An account with a personal key, and an SDK client that uses it."""

    def __init__(self, account: Account, key: str, base_url: str) -> None:
        self.account = account
        self.key = key
        self.client = OzAPI(api_key=key, base_url=base_url, max_retries=0)


def add_file_artifact(store: Store, run_id: str, filename: str, content: bytes, mime_type: str) -> str:
    """A file the run's agent left in ``.oz/artifacts/`` (as the runner records it); its uid."""
    from core.store import utcnow
    from core.store.tables import ArtifactRow

    uid = str(uuid.uuid4())
    with store.session() as session:
        session.add(
            ArtifactRow(
                uid=uid,
                run_id=run_id,
                artifact_type="FILE",
                created_at=utcnow(),
                content=content,
                data={"filename": filename, "filepath": f".oz/artifacts/{filename}", "mime_type": mime_type},
            )
        )
    return uid
