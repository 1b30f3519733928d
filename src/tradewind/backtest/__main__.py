"""``python -m tradewind.backtest STRATEGY.lua ...``: the backtest command without the rest of the CLI."""

from tradewind.backtest.commands import backtest

if __name__ == "__main__":
    backtest(prog_name="python -m tradewind.backtest")
