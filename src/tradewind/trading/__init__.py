"""The trading model: the rules that turn a decision into orders, pure and synchronous (no I/O).

Core calls it for live and paper orders; see ``risk`` for sizing a buy within an account's limits.
"""
