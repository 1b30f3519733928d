"""Exports of a kept run (a backtest, an optimisation's best trial, a walk-forward): its trades as CSV, and a
self-contained HTML report — inline CSS and inline SVG charts, no script and nothing fetched, so it opens
offline and from a mail attachment as it does from the server.

Both read the run document of ``GET /api/runs/{kind}/{id}`` (a dict; see ``tradewind.web.routes.runs``):
``kind, id, status, strategy, version, code_sha256, exchange, symbol, timeframe, range, settings, params,
metrics, error, created_at, equity [[time ms, equity, drawdown %]], trades, detail`` and, for the report,
``code``. ``compare`` lines up the headline metrics of several runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Sequence
from html import escape
from typing import Any

# key, label, which way is better (None: neither), digits
HEADLINE: tuple[tuple[str, str, str | None, int], ...] = (
    ("return_pct", "Return %", "higher", 2),
    ("max_drawdown_pct", "Max drawdown %", "lower", 2),
    ("sharpe", "Sharpe", "higher", 3),
    ("sortino", "Sortino", "higher", 3),
    ("profit_factor", "Profit factor", "higher", 3),
    ("win_rate", "Win rate %", "higher", 1),
    ("trade_count", "Trades", None, 0),
    ("final_equity", "Final equity", None, 2),
    ("candles", "Candles", None, 0),
    ("wfe", "Walk-forward efficiency", "higher", 3),
)
KIND_LABEL = {"backtest": "Backtest", "study": "Optimisation", "walkforward": "Walk-forward"}
COLOURS = ("#2c5bd6", "#c2553a", "#2f9e6e", "#8a4fd6", "#d69a2c", "#2ca6b8", "#b8437a", "#5b6b2c")
TRADE_COLUMNS = (
    "window",
    "entry_time",
    "entry_type",
    "entry_price",
    "exit_time",
    "exit_reason",
    "exit_price",
    "qty",
    "pnl",
)
FILL_COLUMNS = ("time", "kind", "side", "price", "amount", "fee", "pnl")
MAX_TRADE_ROWS = 1000  # in the HTML report; the CSV has every trade


# -- comparing ------------------------------------------------------------------------------------------------
def compare(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per headline metric that at least one run has: ``{key, label, better, values, best}`` (``best``: the
    indices of the runs with the best value, [] when there is no better or fewer than two values)."""
    rows = []
    for key, label, better, _ in HEADLINE:
        values = [_number((r.get("metrics") or {}).get(key)) for r in runs]
        if all(v is None for v in values):
            continue
        known = [v for v in values if v is not None]
        best: list[int] = []
        if better is not None and len(known) >= 2 and len(set(known)) > 1:
            top = max(known) if better == "higher" else min(known)
            best = [i for i, v in enumerate(values) if v == top]
        rows.append({"key": key, "label": label, "better": better, "values": values, "best": best})
    return rows


def _number(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v if math.isfinite(v) else None


# -- CSV ------------------------------------------------------------------------------------------------------
def trades_csv(run: dict[str, Any]) -> str:
    """The run's trades (a quoting backtest's fills) as CSV, one row each, with a header; a walk-forward's are
    its out-of-sample trades with their window."""
    trades = run.get("trades") or []
    fills = bool(trades) and "entry_time" not in trades[0] and "time" in trades[0]
    preferred: tuple[str, ...] = FILL_COLUMNS if fills else TRADE_COLUMNS
    if run.get("kind") != "walkforward":
        preferred = tuple(c for c in preferred if c != "window")
    extra = sorted({k for t in trades for k in t} - set(preferred))
    columns = [*preferred, *extra]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for t in trades:
        writer.writerow([_cell(t.get(c)) for c in columns])
    return out.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    # a text a spreadsheet would run as a formula (=, +, -, @ first) is quoted as text
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


# -- numbers and times ----------------------------------------------------------------------------------------
def number(v: Any, digits: int = 2) -> str:
    n = _number(v)
    if n is None:
        return "—"
    return f"{n:,.{digits}f}" if digits else f"{n:,.0f}"


def when(ms: Any) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- SVG charts -----------------------------------------------------------------------------------------------
def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round values spanning [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(
    series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]],
    *,
    title: str,
    x_axis: str = "time",
    y_unit: str = "",
    baseline: float | None = None,
    width: int = 900,
    height: int = 280,
) -> str:
    """An inline SVG line chart: ``series`` of (label, colour, [(x, y)]); ``x_axis`` "time" (epoch ms, dates
    under the axis) or "window" (window numbers); a dashed line at ``baseline``."""
    pts = [p for _, _, s in series for p in s]
    if not pts:
        return f'<p class="muted">{escape(title)}: no data.</p>'
    left, right, top, bottom = 64, 16, 28, 34
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if baseline is not None:
        ys.append(baseline)
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="chart" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for t in _ticks(y0, y1):
        y = sy(t)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_short(t))}{escape(y_unit)}</text>'
        )
    if x_axis == "time":
        for i, anchor in enumerate(("start", "middle", "middle", "middle", "end")):
            x = x0 + (x1 - x0) * i / 4
            out.append(f'<text x="{sx(x):.1f}" y="{height - 12}" text-anchor="{anchor}">{when(x)}</text>')
    else:
        for w in range(int(math.floor(x0)), int(math.ceil(x1))):
            out.append(
                f'<line x1="{sx(w):.1f}" x2="{sx(w):.1f}" y1="{top}" y2="{height - bottom}" class="grid"/>'
                f'<text x="{sx(w + 0.5):.1f}" y="{height - 12}" text-anchor="middle">window {w}</text>'
            )
    if baseline is not None:
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(baseline):.1f}" y2="{sy(baseline):.1f}" class="base"/>'
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" class="frame"/>'
    )
    for i, (label, colour, s) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{escape(colour)}" stroke-width="1.6" '
            f'data-series="{escape(label)}"/>'
        )
        out.append(
            f'<rect x="{left + 8 + 180 * i}" y="8" width="10" height="10" fill="{escape(colour)}"/>'
            f'<text x="{left + 22 + 180 * i}" y="17">{escape(label[:28])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.4g}k"
    return f"{v:.4g}"


def progress_series(detail: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """A walk-forward's chained in-sample and out-of-sample curves as return % against window progress: x is
    the window's number plus how far into its train (in sample) or test (out of sample) window the point is.
    Rolling train windows overlap in time, so the two are drawn side by side per window, not on a time axis."""
    cash = float(detail.get("cash") or 0) or 1.0
    spans = {}
    for w in detail.get("windows") or []:
        spans[w["index"]] = (
            (_ms(w["train"]["from"]), _ms(w["train"]["to"])),
            (_ms(w["test"]["from"]), _ms(w["test"]["to"])),
        )
    ins = []
    for win, t, eq, _ in detail.get("is_equity") or []:
        (a, b), _ = spans.get(int(win), ((t, t + 1), None))
        ins.append((int(win) + (t - a) / ((b - a) or 1), (eq / cash - 1) * 100))
    outs = []
    order = sorted(spans.items())
    for t, eq, _ in detail.get("oos_equity") or []:
        for win, (_, (a, b)) in order:
            if a <= t < b or (win == order[-1][0] and t >= a):
                outs.append((win + (t - a) / ((b - a) or 1), (eq / cash - 1) * 100))
                break
    return ins, outs


# -- the HTML report --------------------------------------------------------------------------------------------
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2433;margin:0;background:#f6f7fa}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:#6b7489}.card{background:#fff;border:1px solid #e4e7ee;border-radius:8px;padding:16px;margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eef0f4;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td{white-space:nowrap}
.up{color:#2f9e6e}.down{color:#c2553a}.error{color:#c2553a;font-weight:600}
pre{background:#f3f4f8;padding:12px;border-radius:6px;overflow:auto;font-size:12px}
svg.chart{width:100%;height:auto;font-size:11px;fill:#4a5468}
svg .grid{stroke:#eef0f4}svg .frame{fill:none;stroke:#d5d9e2}svg .base{stroke:#9aa3b8;stroke-dasharray:4 4}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.stat span{display:block;color:#6b7489;font-size:12px}.stat b{font-size:18px}
"""


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(head)
    h = "".join(
        f"<th{' class=num' if n else ''}>{escape(c)}</th>" for c, n in zip(head, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if n else ''}>{escape(str(c))}</td>" for c, n in zip(r, numeric, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return number(v, 6).rstrip("0").rstrip(".")
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) or "—"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) or "—"
    return str(v)


def title_of(run: dict[str, Any]) -> str:
    return f"{KIND_LABEL.get(run.get('kind', ''), 'Run')} #{run.get('id')}: {run.get('strategy') or 'strategy'} v{run.get('version')}"


def report_html(run: dict[str, Any], *, generated: str | None = None) -> str:
    """The self-contained HTML report of one run (see the module)."""
    from tradewind import __version__

    m = run.get("metrics") or {}
    rng = run.get("range") or {}
    detail = run.get("detail") or {}
    kind = run.get("kind")
    parts = [
        f"<h1>{escape(title_of(run))}</h1>",
        f'<p class="muted">{escape(str(run.get("exchange")))} · {escape(str(run.get("symbol")))} · '
        f"{escape(str(run.get('timeframe')))} · candles from {when(rng.get('first'))} to {when(rng.get('last'))}"
        f" ({number(rng.get('candles'), 0)}) · status {escape(str(run.get('status')))} · run "
        f"{escape(str(run.get('created_at', ''))[:19].replace('T', ' '))} UTC</p>",
    ]
    if run.get("error"):
        parts.append(f'<p class="error">{escape(str(run["error"]))}</p>')
    stats = []
    for key, label, _, digits in HEADLINE:
        if m.get(key) is not None:
            tone = (
                " up"
                if key == "return_pct" and m[key] > 0
                else " down"
                if key == "return_pct" and m[key] < 0
                else ""
            )
            stats.append(
                f'<div class="stat"><span>{escape(label)}</span><b class="{tone.strip()}">{number(m[key], digits)}</b></div>'
            )
    parts.append(
        f'<section class="card"><h2>Metrics</h2><div class="grid2" id="metrics">{"".join(stats)}</div></section>'
    )

    equity = run.get("equity") or []
    if equity:
        cash = _start(run)
        label = "out of sample, stitched" if kind == "walkforward" else "equity"
        parts.append(
            '<section class="card"><h2>Equity</h2>'
            + line_chart([(label, COLOURS[0], [(p[0], p[1]) for p in equity])], title="Equity", baseline=cash)
            + line_chart(
                [("drawdown", COLOURS[1], [(p[0], -p[2]) for p in equity])],
                title="Drawdown",
                y_unit="%",
                baseline=0.0,
                height=160,
            )
            + "</section>"
        )
    if kind == "walkforward" and detail:
        parts.append(_walkforward(detail))
    if kind == "study" and detail:
        parts.append(_study(detail))
    params = run.get("params")
    if params:
        parts.append(
            f'<section class="card"><h2>Parameters</h2><p><code>{escape(_value(params))}</code></p></section>'
        )
    settings = run.get("settings") or {}
    rows = [(k, _value(v)) for k, v in settings.items()]
    rows += [("from", when(rng.get("from"))), ("to", when(rng.get("to")))]
    parts.append(f'<section class="card"><h2>Settings</h2>{_table(rows, ["setting", "value"])}</section>')
    parts.append(_trades(run))
    if run.get("code") is not None:
        parts.append(
            f'<section class="card"><h2>Strategy code</h2><p class="muted">version {escape(str(run.get("version")))}'
            f" · sha256 <code>{escape(str(run.get('code_sha256')))}</code></p><pre>{escape(run['code'])}</pre></section>"
        )
    stamp = generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f'<p class="muted">Generated by tradewind {escape(__version__)} on {escape(stamp)}.</p>')
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f'<meta name=viewport content="width=device-width,initial-scale=1"><title>{escape(title_of(run))}</title>'
        f"<style>{STYLE}</style></head><body><main>{''.join(parts)}</main></body></html>"
    )


def _start(run: dict[str, Any]) -> float | None:
    settings = run.get("settings") or {}
    cash = settings.get("cash")
    return float(cash) if isinstance(cash, int | float) and not isinstance(cash, bool) else None


def _walkforward(d: dict[str, Any]) -> str:
    ins, outs = progress_series(d)
    wfe = d.get("wfe")
    stats = (
        f'<div class="grid2"><div class="stat"><span>In sample, annualised</span><b>{number(d.get("is_annualised_pct"))} %</b></div>'
        f'<div class="stat"><span>Out of sample, annualised</span><b>{number(d.get("oos_annualised_pct"))} %</b></div>'
        f'<div class="stat"><span>Walk-forward efficiency</span><b id="wfe">{number(wfe, 3) if wfe is not None else "n/a"}</b></div></div>'
    )
    chart = line_chart(
        [("in sample", COLOURS[2], ins), ("out of sample", COLOURS[0], outs)],
        title="In sample and out of sample by window",
        x_axis="window",
        y_unit="%",
        baseline=0.0,
    )
    rows = []
    for w in d.get("windows") or []:
        i, o = w.get("in_sample") or {}, w.get("out_of_sample") or {}
        rows.append(
            (
                w["index"],
                f"{w['train']['from'][:16]} +{w['train']['candles']}",
                f"{w['test']['from'][:16]} +{w['test']['candles']}",
                _value(w.get("params")),
                number(i.get("objective"), 3),
                number(o.get("objective"), 3),
                number(i.get("return_pct")),
                number(o.get("return_pct")),
                number(o.get("trade_count"), 0),
                number(w.get("wfe"), 3),
            )
        )
    obj = str(d.get("objective", ""))
    table = _table(
        rows,
        [
            "#",
            "train",
            "test",
            "parameters",
            f"IS {obj}",
            f"OOS {obj}",
            "IS return %",
            "OOS return %",
            "OOS trades",
            "WFE",
        ],
        [True, False, False, False, True, True, True, True, True, True],
    )
    return (
        f'<section class="card"><h2>Walk-forward ({escape(str(d.get("mode")))}, by {escape(obj)})</h2>{stats}{chart}'
        f"{table}</section>"
    )


def _study(d: dict[str, Any]) -> str:
    best = d.get("best_trial") or {}
    objectives = d.get("objectives") or []
    values = best.get("values") or []
    found = ", ".join(f"{o} {number(v, 4)}" for o, v in zip(objectives, values, strict=False))
    counts = _value(d.get("counts") or {})
    return (
        f'<section class="card"><h2>Optimisation</h2><p>Objectives: {escape(", ".join(objectives))} · sampler '
        f"{escape(str(d.get('sampler')))} · trials {escape(counts)}</p><p>Best trial #{escape(str(best.get('number')))}: "
        f"{escape(found)}; the metrics, curve and trades above are its parameters run again in full.</p></section>"
    )


def _trade_cell(column: str, v: Any) -> str:
    """A trade's value as the report's table shows it: prices to their size, P&L in cents, times without T."""
    if isinstance(v, str):
        return v.replace("T", " ").removesuffix("Z") if column.endswith("time") else v
    n = _number(v)
    if n is None or isinstance(v, int):
        return "—" if v is None else str(v)
    if column in ("pnl", "fee"):
        return f"{n:,.2f}"
    if column in ("qty", "amount"):
        return f"{n:.8g}"
    return f"{n:,.{2 if abs(n) >= 1000 else 4 if abs(n) >= 1 else 6}f}"


def _trades(run: dict[str, Any]) -> str:
    trades = run.get("trades") or []
    if not trades:
        return '<section class="card"><h2>Trades</h2><p class="muted">No trades.</p></section>'
    head = next(csv.reader(io.StringIO(trades_csv({**run, "trades": trades[:1]}))))
    body = [[_trade_cell(c, t.get(c)) for c in head] for t in trades[:MAX_TRADE_ROWS]]
    numeric = [
        c in ("window", "entry_price", "exit_price", "qty", "pnl", "price", "amount", "fee") for c in head
    ]
    more = (
        f'<p class="muted">The first {MAX_TRADE_ROWS:,} of {len(trades):,}; the CSV export has them all.</p>'
        if len(trades) > MAX_TRADE_ROWS
        else ""
    )
    return f'<section class="card"><h2>Trades ({len(trades):,})</h2>{more}{_table(body, head, numeric)}</section>'
