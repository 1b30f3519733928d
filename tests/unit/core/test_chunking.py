"""core.decide sizes evaluation requests by the eval workers that answered lately."""

import time

from tradewind.core import decide
from tradewind.core.decide import Decider


def test_one_chunk_per_worker_seen_lately_never_above_the_batch_size(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    d = Decider(nc=None, batch_size=400, timeout_s=1)  # type: ignore[arg-type]
    assert d.chunk_size(1000) == 400  # no worker seen yet: as large as allowed
    assert d.chunk_size(300) == 300
    d._seen = {"w1": time.monotonic(), "w2": time.monotonic()}
    assert d.chunk_size(600) == 300 and d.chunk_size(601) == 301 and d.chunk_size(1000) == 400
    # a small load is not split: two chunks of 150 would cost more than they save
    assert d.chunk_size(300) == 300 and d.chunk_size(2 * decide.MIN_CHUNK - 1) == 2 * decide.MIN_CHUNK - 1
    assert d.chunk_size(1) == 1
    d._seen["w3"] = time.monotonic() - decide.WORKER_SEEN_S - 1  # gone quiet: no longer counted
    assert d.chunk_size(600) == 300 and "w3" not in d._seen
