"""Exchange adapters (sim, bitfinex, ccxt) behind one small protocol, and the bus service that hosts them."""
