"""Backtesting: the live sandbox and fill rules run over history."""
