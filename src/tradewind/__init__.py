"""tradewind: a multi-user platform for algorithmic trading with sandboxed Lua strategies."""

__version__ = "0.1.0"
