"""Core: ingest, resample, decide and trade — the path from a candle to an order."""
