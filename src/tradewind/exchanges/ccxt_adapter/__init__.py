"""Every exchange ccxt supports, behind the adapter protocol (named so it never shadows ``ccxt`` itself)."""

from tradewind.exchanges.ccxt_adapter.adapter import CcxtAdapter
from tradewind.exchanges.ccxt_adapter.venues import VENUES, Venue

__all__ = ["VENUES", "CcxtAdapter", "Venue"]
