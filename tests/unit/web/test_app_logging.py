"""Session tokens sent in a query string (the stream's ?token=) never reach uvicorn's log lines."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet

from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.web.app import create_app


@pytest.mark.parametrize(
    ("logger", "fmt"),
    [
        ("uvicorn.access", '%s - "%s %s HTTP/%s" %d'),
        ("uvicorn.error", '%s - "WebSocket %s" %s'),
    ],
)
def test_a_token_in_the_query_string_is_masked_in_uvicorns_logs(tmp_path, logger: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    create_app(Settings(data_dir=tmp_path), None, None, SecretBox([Fernet.generate_key().decode()]))  # type: ignore[arg-type]
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger(logger)
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        path = "/api/stream?token=SeCrEt-T0ken_value&x=1"
        args = (
            ("127.0.0.1:5", "GET", path, "1.1", 101)
            if logger == "uvicorn.access"
            else ("127.0.0.1:5", path, "[accepted]")
        )
        log.info(fmt, *args)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert lines and "SeCrEt-T0ken_value" not in lines[0] and "token=***&x=1" in lines[0]
