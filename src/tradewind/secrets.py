"""Encryption of exchange API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`)."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tradewind.config import ConfigError, Settings

KEY_FILE = "secret.key"


class SecretBox:
    """Encrypts and decrypts secrets. Several keys: the first encrypts, all decrypt (for rotation)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigError("secret_key (TRADEWIND_SECRET_KEY): no key given")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise ConfigError(
                "secret_key (TRADEWIND_SECRET_KEY): not a Fernet key; make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from None

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with the configured secret_key") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: TRADEWIND_SECRET_KEY (comma-separated, newest first), or, embedded only,
    a key generated once into the data folder with owner-only permissions."""
    if settings.secret_key:
        return SecretBox([k.strip() for k in settings.secret_key.split(",") if k.strip()])
    if settings.mode == "distributed":
        raise ConfigError("secret_key (TRADEWIND_SECRET_KEY) is required in distributed mode")
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return SecretBox([path.read_text().strip()])
