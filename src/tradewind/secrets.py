"""Encryption of exchange API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tradewind.config import ConfigError, Settings

if TYPE_CHECKING:
    from tradewind.storage.db import SessionFactory

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
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored secret cannot be decrypted with any key of secret_key (TRADEWIND_SECRET_KEY): "
                "keep the old key after the new one until the rotation is done"
            ) from None


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


async def reencrypt_stored_keys(sf: SessionFactory, box: SecretBox) -> int:
    """Re-encrypt every stored trading account's API key and secret under ``box``'s newest key, each one
    in the audit log of its owner, in one transaction; the number of accounts. The alert channels' secrets
    (webhook URLs and signing keys, bot tokens, SMTP passwords) are re-encrypted in the same transaction."""
    from sqlalchemy import select

    from tradewind.storage.models import AlertChannel, AuditEntry, Trader

    count = 0
    async with sf() as s:
        for t in (await s.execute(select(Trader).where(Trader.api_key_enc.is_not(None)))).scalars():
            if t.api_key_enc is not None:  # (always, by the query: said again for the type)
                t.api_key_enc = box.rotate(t.api_key_enc)
            if t.api_secret_enc is not None:
                t.api_secret_enc = box.rotate(t.api_secret_enc)
            s.add(AuditEntry(user_id=t.owner_id, action="trader.key_reencrypted", detail={"trader_id": t.id}))
            count += 1
        sealed = select(AlertChannel).where(AlertChannel.secret_enc.is_not(None))
        for channel in (await s.execute(sealed)).scalars():
            if channel.secret_enc is not None:  # (always, by the query)
                channel.secret_enc = box.rotate(channel.secret_enc)
        await s.commit()
    return count
