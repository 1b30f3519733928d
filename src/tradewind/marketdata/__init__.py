"""Market data: pure helpers on candle rows (``candles``) and the one door into the candle store
(``accept``, imported on its own: it loads the storage layer)."""

from tradewind.marketdata.candles import (
    Row,
    aggregate,
    as_row,
    bucket_start,
    candle_problem,
    resample_rows,
    row_problem,
)

__all__ = ["Row", "aggregate", "as_row", "bucket_start", "candle_problem", "resample_rows", "row_problem"]
