"""Encryption at rest for credentials, with key rotation (``cryptography``'s MultiFernet).

Keys come from ``OZGW_ENCRYPTION_KEYS`` (newest first); without it one key is generated and
kept (0600) under ``data_dir``.  Decrypting tries every key, encrypting uses the newest,
and :meth:`Vault.rotate` re-encrypts a value under the newest key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.settings import Settings, persistent_secret


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        if settings.encryption_keys is not None:
            keys = [k.strip().encode() for k in settings.encryption_keys.get_secret_value().split(",") if k.strip()]
            return cls(keys)
        return cls([persistent_secret(settings.data_dir / "encryption_key", Fernet.generate_key)])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("a stored credential cannot be decrypted with the configured keys") from None

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
