"""Gateway settings, read from ``OZGW_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OZGW_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".oz-gateway")
    """Where the embedded default keeps its SQLite file and the Redis it starts itself."""

    database_url: str | None = None
    """SQLAlchemy URL; SQLite under ``data_dir`` when unset, PostgreSQL in production."""

    redis_url: str | None = None
    """RQ's Redis; ``oz-gateway up`` starts a private one when unset."""

    queue_name: str = "oz-runs"
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL people reach the gateway at (links in Slack, Linear, GitHub); defaults to host:port."""

    secret_key: SecretStr | None = None
    """Signs download links; ``oz-gateway up`` generates and keeps one under ``data_dir``."""

    agent_limit: int = Field(default=5, ge=1)
    """Cloud agents a team may have, the default one included (the plan limit)."""

    max_runtime_seconds: int = Field(default=3600, ge=10)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    orphan_grace_seconds: float = Field(default=5.0, ge=0)
    """How old a QUEUED run without a job must be before a sweep enqueues it again."""
    api_threads: int = Field(default=8, ge=1)
    """Worker threads that run blocking store and queue calls for the aiohttp process."""

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'oz-gateway.db').resolve()}"

    def signing_key(self) -> bytes:
        """The secret key, or one generated once and kept (0600) in ``data_dir``."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
