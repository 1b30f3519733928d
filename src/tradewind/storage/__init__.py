"""Storage: SQLAlchemy models, repositories, Alembic migrations and the candle store."""
