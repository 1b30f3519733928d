"""Exports of a kept run: the trades CSV (its columns, every trade, no formula a spreadsheet would run), the
self-contained HTML report (nothing fetched, no script, the user's text escaped, the curves drawn where they
belong), the side-by-side rows of a comparison, and the stored walk-forward's document (its out-of-sample
trades are each window's test run's)."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from tradewind.backtest import report, walkforwards
from tradewind.backtest import walkforward as wf

from .test_research import MIN, SIDE, T0, regime

TRADES = [
    {
        "entry_time": "2024-01-01T00:05:00Z",
        "entry_price": 100.0,
        "entry_type": "market",
        "exit_time": "2024-01-01T00:09:00Z",
        "exit_price": 101.5,
        "exit_reason": "signal",
        "qty": 0.5,
        "pnl": 0.75,
    },
    {
        "entry_time": "2024-01-01T00:12:00Z",
        "entry_price": 101.0,
        "entry_type": "limit",
        "exit_time": None,
        "exit_price": None,
        "exit_reason": None,
        "qty": 0.5,
        "pnl": -1.25,
    },
]


def run(**change: Any) -> dict[str, Any]:
    equity = [
        [T0 + i * MIN, 10_000 + 50 * i - (300 if i == 7 else 0), 2.9 if i == 7 else 0.0] for i in range(10)
    ]
    doc = {
        "ref": "backtest:4",
        "kind": "backtest",
        "id": 4,
        "status": "done",
        "strategy": "SMA <b>cross</b>",
        "version": 3,
        "code_sha256": "ab" * 32,
        "exchange": "sim",
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "range": {"from": T0, "to": T0 + 10 * MIN, "first": T0, "last": T0 + 9 * MIN, "candles": 10},
        "settings": {"cash": 10_000.0, "fee": 0.001, "lookback": 50},
        "params": {"fast": 5, "mode": "</td>"},
        "metrics": {"return_pct": 4.5, "max_drawdown_pct": 2.9, "sharpe": 1.2345, "trade_count": 2},
        "error": None,
        "created_at": "2024-01-02T10:00:00Z",
        "equity": equity,
        "trades": TRADES,
        "detail": {},
        "code": 'function decide(c) return "long" end -- <script>alert(1)</script>',
    }
    return {**doc, **change}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_every_trade_in_its_columns() -> None:
    text = report.trades_csv(run())
    assert (
        text.splitlines()[0] == "entry_time,entry_type,entry_price,exit_time,exit_reason,exit_price,qty,pnl"
    )
    got = rows(text)
    assert [r["pnl"] for r in got] == ["0.75", "-1.25"]  # a negative number stays a number
    assert got[1]["exit_time"] == "" and got[1]["entry_type"] == "limit"
    # a walk-forward's trades carry their window, first
    wf_text = report.trades_csv(run(kind="walkforward", trades=[{"window": 2, **TRADES[0]}]))
    assert wf_text.startswith("window,entry_time") and rows(wf_text)[0]["window"] == "2"
    # a quoting run's fills, and a key the columns do not know goes at the end
    fills = [
        {
            "time": "2024-01-01T00:00:01Z",
            "side": "buy",
            "price": 99.9,
            "amount": 0.1,
            "fee": 0.0,
            "kind": "quote",
            "pnl": None,
            "note": "x",
        }
    ]
    assert report.trades_csv(run(trades=fills)).splitlines() == [
        "time,kind,side,price,amount,fee,pnl,note",
        "2024-01-01T00:00:01Z,quote,buy,99.9,0.1,0.0,,x",
    ]
    assert (
        report.trades_csv(run(trades=None))
        == "entry_time,entry_type,entry_price,exit_time,exit_reason,exit_price,qty,pnl\n"
    )


def test_a_text_a_spreadsheet_would_run_is_quoted() -> None:
    evil = [{**TRADES[0], "exit_reason": '=HYPERLINK("http://x")', "entry_type": "@SUM(A1)"}]
    [row] = rows(report.trades_csv(run(trades=evil)))
    assert row["exit_reason"] == '\'=HYPERLINK("http://x")' and row["entry_type"] == "'@SUM(A1)"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


def test_the_report_fetches_nothing_runs_nothing_and_escapes_the_users_text() -> None:
    html = report.report_html(run(), generated="now")
    p = parse(html)
    names = {t for t, _ in p.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in p.tags:
        assert not {"src", "href", "srcset", "action"} & set(attrs), tag
        assert not any(k.startswith("on") for k in attrs), tag
    assert "url(" not in html and "@import" not in html
    text = "".join(p.text)
    # the strategy's name, a parameter and the code come out as the text they are
    assert (
        "Backtest #4: SMA <b>cross</b> v3" in text
        and "mode=</td>" in text
        and "<script>alert(1)</script>" in text
    )
    assert ("b", {}) not in p.tags
    assert "<script>" not in html
    csp = next(a for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (csp["content"] or "")


def test_the_report_shows_the_metrics_settings_trades_and_curves() -> None:
    html = report.report_html(run(), generated="now")
    text = " ".join(parse(html).text)
    for words in (
        "Return %",
        "4.50",
        "Max drawdown %",
        "2.90",
        "Sharpe",
        "1.234",
        "fee",
        "0.001",
        "lookback",
        "Trades (2)",
        "signal",
        "0.75",
        "-1.25",
        "sha256",
        "abab",
        "2023-11-14 22:20",
        "2023-11-14 22:29",
    ):
        assert words in text, words
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 2  # equity and drawdown
    points = [
        [tuple(map(float, p.split(","))) for p in pts.split()]
        for pts in re.findall(r'points="([^"]+)"', charts[0])
    ]
    [curve] = points
    assert len(curve) == 10
    xs, ys = [x for x, _ in curve], [y for _, y in curve]
    assert xs == sorted(xs) and xs[0] == 64 and xs[-1] == 900 - 16  # from the left edge to the right one
    assert (
        ys.index(min(ys)) == 9 and ys.index(max(ys)) == 0
    )  # the highest equity is drawn highest (svg y down)
    assert ys[7] > ys[6]  # the dip at 7
    assert 'class="base"' in charts[0]  # the starting cash, dashed


def test_a_long_trade_list_is_cut_in_the_report_but_not_in_the_csv() -> None:
    many = [dict(TRADES[0], pnl=float(i)) for i in range(report.MAX_TRADE_ROWS + 5)]
    html = report.report_html(run(trades=many), generated="now")
    trades = html[html.index("<h2>Trades") :]
    assert trades.count("<tr>") - 1 == report.MAX_TRADE_ROWS  # and the header
    assert f"The first {report.MAX_TRADE_ROWS:,} of {len(many):,}" in html
    assert len(rows(report.trades_csv(run(trades=many)))) == len(many)


def test_a_run_without_a_curve_or_trades_still_makes_a_report() -> None:
    html = report.report_html(
        run(
            status="error",
            error="decide failed at candle 3 <oops>",
            equity=None,
            trades=[],
            metrics={},
            code=None,
        ),
        generated="now",
    )
    assert "<svg" not in html and "No trades." in html and "decide failed at candle 3 &lt;oops&gt;" in html


def test_compare_marks_the_best_run_each_way() -> None:
    runs = [
        {"metrics": {"return_pct": 5.0, "max_drawdown_pct": 9.0, "sharpe": 1.0, "trade_count": 4}},
        {"metrics": {"return_pct": 7.5, "max_drawdown_pct": 3.0, "sharpe": None, "trade_count": 9}},
        {"metrics": {"return_pct": 7.5, "max_drawdown_pct": 4.0, "sharpe": float("nan"), "wfe": True}},
    ]
    got = {r["key"]: r for r in report.compare(runs)}
    assert list(got) == [
        "return_pct",
        "max_drawdown_pct",
        "sharpe",
        "trade_count",
    ]  # none has a number for wfe
    assert got["return_pct"]["values"] == [5.0, 7.5, 7.5] and got["return_pct"]["best"] == [1, 2]  # a tie
    assert got["max_drawdown_pct"]["best"] == [1]  # the lowest
    assert (
        got["sharpe"]["values"] == [1.0, None, None] and got["sharpe"]["best"] == []
    )  # one value: no contest
    assert got["trade_count"]["better"] is None and got["trade_count"]["best"] == []
    same = report.compare([{"metrics": {"sharpe": 1.0}}, {"metrics": {"sharpe": 1.0}}])
    assert same[0]["best"] == []


def analysed() -> tuple[wf.WalkForward, dict[str, Any]]:
    arrays = regime(600, turn=300)
    spec = {
        "mode": "rolling",
        "train": 200 * MIN,
        "test": 100 * MIN,
        "trials": 4,
        "study": {"objectives": ["return"], "prune": False, "seed": 1, "fee": 0.0},
    }
    doc = walkforwards.execute(SIDE, "side", arrays, spec)
    return doc, arrays


def test_a_stored_walkforward_keeps_each_windows_out_of_sample_trades() -> None:
    doc, arrays = analysed()
    assert [w["index"] for w in doc["windows"]] == [0, 1, 2, 3]
    for w in doc["windows"]:  # each window's trades are its test run's: their P&L is its return
        mine = [t for t in doc["trades"] if t["window"] == w["index"]]
        assert len(mine) == w["out_of_sample"]["trade_count"]
        assert sum(t["pnl"] for t in mine) == pytest.approx(
            w["out_of_sample"]["return_pct"] / 100 * 10_000, abs=1e-6
        )
        start, end = w["test"]["from"], w["test"]["to"]
        assert all(start <= t["entry_time"] < end for t in mine)
    m = doc["metrics"]
    assert m["return_pct"] == doc["oos_return_pct"] and m["wfe"] == doc["wfe"]
    assert m["final_equity"] == pytest.approx(doc["oos_equity"][-1][1])
    assert m["trade_count"] == len(doc["trades"]) and m["candles"] == 400
    assert m["max_drawdown_pct"] == pytest.approx(
        max(p[2] for p in doc["oos_equity"]), abs=1e-4
    )  # curve: 4 decimals
    assert doc["range"] == {"first": T0, "last": T0 + 599 * MIN, "candles": 600}


def test_the_report_draws_a_walkforward_in_and_out_of_sample_by_window() -> None:
    doc, _ = analysed()
    ins, outs = report.progress_series(doc)
    assert ins and outs
    for x, _ in ins + outs:
        assert 0 <= x <= 4
    assert {int(x) for x, _ in outs if x < 4} == {0, 1, 2, 3}
    assert outs[-1][1] == pytest.approx(doc["oos_return_pct"], abs=1e-3)
    detail = {
        k: doc[k]
        for k in (
            "mode",
            "objective",
            "cash",
            "windows",
            "is_equity",
            "oos_return_pct",
            "oos_annualised_pct",
            "is_annualised_pct",
            "wfe",
        )
    }
    html = report.report_html(
        run(
            kind="walkforward",
            detail=detail,
            equity=doc["oos_equity"],
            trades=doc["trades"],
            metrics=doc["metrics"],
            params=None,
        ),
        generated="now",
    )
    assert html.count("<svg") == 3 and "window 3" in html and "Walk-forward (rolling, by return)" in html
    assert html.startswith("<!doctype html>") and html.count("<tr>") > len(doc["windows"]) + len(
        doc["trades"]
    )


def test_a_walkforward_with_too_many_windows_is_refused() -> None:
    arrays = regime(600)
    spec = {
        "mode": "rolling",
        "train": 4 * MIN,
        "test": 2 * MIN,
        "trials": 1,
        "study": {"objectives": ["return"]},
    }
    with pytest.raises(wf.WalkForwardError, match="at most 200"):
        walkforwards.execute(SIDE, "side", arrays, spec)
    with pytest.raises(ValueError, match="params"):
        walkforwards.execute(
            "params = {x = {min = 3, max = 1}}\nfunction decide(c) return 'long' end",
            "bad",
            arrays,
            {**spec, "mode": "split", "split": 0.5, "train": None, "test": None},
        )
