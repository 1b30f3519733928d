"""The simulated exchange: a random-walk market and a paper matching engine."""

from tradewind.exchanges.sim.adapter import SimAdapter

__all__ = ["SimAdapter"]
