"""Load harnesses: `tradewind bench latency` drives a known load and measures tick -> order call."""
