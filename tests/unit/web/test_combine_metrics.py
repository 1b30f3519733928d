"""/metrics under `tradewind up` answers for several processes at once (web.routes.system.combine_metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tradewind.web.routes.system import combine_metrics


def process_text(requests: int, latencies: list[float], rss: float, label: str = "GET") -> bytes:
    """What one process would expose: its requests, their latencies and a per-process family."""
    r = CollectorRegistry()
    c = Counter("tw_requests_total", "requests", ["method"], registry=r)
    c.labels(label).inc(requests)
    h = Histogram("tw_latency_seconds", "latency", ["method"], buckets=(0.1, 1.0), registry=r)
    for x in latencies:
        h.labels(label).observe(x)
    Gauge("process_resident_memory_bytes", "memory", registry=r).set(rss)
    return generate_latest(r)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }


def test_counters_and_histograms_add_up_and_per_process_families_are_the_first_ones() -> None:
    one = process_text(3, [0.05, 0.5], rss=100.0)
    two = process_text(4, [2.0], rss=200.0)
    three = process_text(1, [], rss=300.0, label="POST")  # a label the others have not seen
    whole = combine_metrics([one, two, three])
    got = samples(whole)
    get = (("method", "GET"),)
    assert got[("tw_requests_total", get)] == 7
    assert got[("tw_requests_total", (("method", "POST"),))] == 1
    assert got[("tw_latency_seconds_bucket", (("le", "0.1"), ("method", "GET")))] == 1
    assert got[("tw_latency_seconds_bucket", (("le", "1.0"), ("method", "GET")))] == 2
    assert got[("tw_latency_seconds_bucket", (("le", "+Inf"), ("method", "GET")))] == 3
    assert got[("tw_latency_seconds_count", get)] == 3
    assert got[("tw_latency_seconds_sum", get)] == 2.55
    assert got[("process_resident_memory_bytes", ())] == 100.0  # the answering process's own
    created = [samples(t)[("tw_requests_created", get)] for t in (one, two)]
    assert got[("tw_requests_created", get)] == min(created)  # the earliest, not a sum of timestamps
    helps = [line.split()[2] for line in whole.decode().splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)) and "tw_requests_total" in helps


def test_one_process_is_its_own_exposition() -> None:
    one = process_text(3, [0.05], rss=100.0)
    assert samples(combine_metrics([one])) == samples(one)
