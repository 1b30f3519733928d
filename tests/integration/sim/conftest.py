"""The sim exchange with the exchange service: the fixtures of the core tests (NATS, SQLite/PostgreSQL)."""

from tests.integration.core.conftest import db_url, nats_url, nc, settings, sf  # noqa: F401
