"""Where the real market candles of ``../shared/data`` are: beside the checkout (as on the development
machines and CI), or where TRADEWIND_SHARED_DATA says (a clone elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_CANDIDATES = [Path(os.environ["TRADEWIND_SHARED_DATA"])] if os.environ.get("TRADEWIND_SHARED_DATA") else []
_CANDIDATES += [_BESIDE, Path("/work/shared/data")]

SHARED_DATA = next((p for p in _CANDIDATES if p.is_dir()), _BESIDE)
