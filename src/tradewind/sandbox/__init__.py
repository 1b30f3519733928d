"""The strategy sandbox: Lua states with nothing of the host in reach (``runtime``, ``sandbox.lua``), the
``ta`` indicator library (``ta``), the candle window (``window``) and the parameter declarations
(``params``). Below eval, backtest and web alike: each runs strategies through it, none reaches into the
others for it."""
