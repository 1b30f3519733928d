"""Run history through the API, as the web app uses it: a backtest, an optimisation and a walk-forward run on a
BacktestWorker over a real NATS and SQLite store, each kept with its strategy version, data range, settings,
metrics, equity and trades; listed together, compared side by side, exported as CSV, JSON and HTML; and
another user finds none of it (404), whatever id they try."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from tradewind.backtest.engine import iso
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.web.routes.submit import NO_WORKER

from .test_optimize import BEST, CYCLE, T0, cycle_rows
from .test_quotes_api import backtest, platform, strategy

MIN = 60_000
COSTS = {"timeframe": "1m", "fee": 0, "lookback": 5}


async def done(c: httpx.AsyncClient, path: str) -> dict[str, Any]:
    for _ in range(1200):
        doc = (await c.get(path)).json()
        if doc["status"] in ("done", "error"):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not finish: {doc['status']}")


async def three_runs(
    c: httpx.AsyncClient, market: int
) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]:
    sid = await strategy(c, "cycle", CYCLE)
    base = {**COSTS, "strategy_id": sid, "market_id": market}
    b = await backtest(c, {**base, "params": BEST})
    assert b["status"] == "done", b["error"]
    r = await c.post("/api/studies", json={**base, "objectives": ["return"], "trials": 12, "seed": 3})
    assert r.status_code == 202, r.text
    s = await done(c, f"/api/studies/{r.json()['id']}")
    assert s["status"] == "done", s["error"]
    r = await c.post(
        "/api/walkforwards",
        json={
            **base,
            "mode": "rolling",
            "train": "2h",
            "test": "1h",
            "trials": 8,
            "objective": "return",
            "seed": 1,
            "prune": False,
        },
    )
    assert r.status_code == 202, r.text
    w = await done(c, f"/api/walkforwards/{r.json()['id']}")
    assert w["status"] == "done", w["error"]
    return sid, b, s, w


@pytest.mark.timeout(120)
async def test_runs_are_kept_listed_compared_and_exported_and_only_their_owner_sees_them(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path, {"CYC/USD": (cycle_rows(300), [])}) as (c, ids):
        sid, b, s, w = await three_runs(c, ids["CYC/USD"])

        # the study's best trial, run again in full: the trial's own metrics, with its trades and curve
        best = next(t for t in s["trial_results"] if t["number"] == s["best"][0])
        run = s["best_run"]
        assert run["trial"] == best["number"] and run["params"] == best["params"]
        assert run["metrics"]["return_pct"] == pytest.approx(best["metrics"]["return_pct"])
        assert run["trades"] and len(run["equity"]) == 300 and run["range"]["candles"] == 300

        # the walk-forward: three rolling windows (2 h train, 1 h test over 5 h), stitched out of sample
        res = w["result"]
        assert [x["index"] for x in res["windows"]] == [0, 1, 2] and res["mode"] == "rolling"
        assert [x["test"]["from"] for x in res["windows"]] == [iso(T0 + h * 60 * MIN) for h in (2, 3, 4)]
        assert res["oos_equity"][0][0] == T0 + 120 * MIN and res["oos_equity"][-1][0] == T0 + 299 * MIN
        assert {x[0] for x in res["is_equity"]} == {0, 1, 2}
        assert w["metrics"]["return_pct"] == res["oos_return_pct"] and w["metrics"]["wfe"] == res["wfe"]
        assert w["metrics"]["candles"] == 180 and res["range"] == {
            "first": T0,
            "last": T0 + 299 * MIN,
            "candles": 300,
        }
        oos_trades = sum(x["out_of_sample"]["trade_count"] for x in res["windows"])
        assert len(res["trades"]) == oos_trades == w["metrics"]["trade_count"] > 0
        assert {t["window"] for t in res["trades"]} == {0, 1, 2}
        # the regime repeats every ten minutes: what was learnt in sample carries over
        assert res["oos_return_pct"] > 0 and res["wfe"] is not None and res["wfe"] > 0.5

        # one list of every kind, newest first, with the version, range and headline metrics
        listed = (await c.get("/api/runs")).json()
        refs = [x["ref"] for x in listed["items"]]
        assert refs == [f"walkforward:{w['id']}", f"study:{s['id']}", f"backtest:{b['id']}"]
        assert listed["next_before"] is None
        for x in listed["items"]:
            assert (x["strategy"], x["version"], x["symbol"], x["timeframe"]) == ("cycle", 1, "CYC/USD", "1m")
            assert x["equity"] is None and x["trades"] is None and x["status"] == "done"
            assert x["metrics"]["return_pct"] is not None and x["range"]["first"] == T0
        by_ref = {x["ref"]: x for x in listed["items"]}
        assert by_ref[f"backtest:{b['id']}"]["metrics"]["return_pct"] == b["metrics"]["return_pct"]
        assert by_ref[f"study:{s['id']}"]["params"] == best["params"]
        assert by_ref[f"walkforward:{w['id']}"]["settings"]["train"] == "2h"
        # pages of one
        seen, cursor = [], None
        while True:
            page = (
                await c.get("/api/runs", params={"limit": 1, **({"before": cursor} if cursor else {})})
            ).json()
            seen += [x["ref"] for x in page["items"]]
            cursor = page["next_before"]
            if cursor is None:
                break
        assert seen == refs
        assert [x["ref"] for x in (await c.get("/api/runs?kind=study")).json()["items"]] == [
            f"study:{s['id']}"
        ]
        assert len((await c.get(f"/api/runs?strategy_id={sid}")).json()["items"]) == 3

        # one run in full: its trades and curve, the code's hash
        one = (await c.get(f"/api/runs/backtest/{b['id']}")).json()
        assert one["trades"] == b["trades"] and one["equity"] == b["equity"]
        saved = (await c.get(f"/api/strategies/{sid}")).json()["code"]
        assert one["code_sha256"] == hashlib.sha256(saved.encode()).hexdigest() and not one["draft"]
        assert one["params"] == BEST and one["settings"]["fee"] == 0 and one["range"]["candles"] == 300
        wf_doc = (await c.get(f"/api/runs/walkforward/{w['id']}")).json()
        assert wf_doc["equity"] == res["oos_equity"] and wf_doc["detail"]["windows"] == res["windows"]

        # side by side
        r = await c.get(
            "/api/runs/compare", params={"runs": f"backtest:{b['id']},study:{s['id']},walkforward:{w['id']}"}
        )
        assert r.status_code == 200, r.text
        cmp = r.json()
        assert [x["ref"] for x in cmp["runs"]] == [refs[2], refs[1], refs[0]]
        assert all(x["equity"] for x in cmp["runs"])
        rows = {row["key"]: row for row in cmp["metrics"]}
        returns = [x["metrics"]["return_pct"] for x in cmp["runs"]]
        assert rows["return_pct"]["values"] == returns and rows["return_pct"]["better"] == "higher"
        assert rows["return_pct"]["best"] == [i for i, v in enumerate(returns) if v == max(returns)]
        drawdowns = rows["max_drawdown_pct"]["values"]
        assert rows["max_drawdown_pct"]["best"] == [i for i, v in enumerate(drawdowns) if v == min(drawdowns)]
        assert rows["wfe"]["values"][:2] == [None, None]

        # exports
        r = await c.get(f"/api/runs/backtest/{b['id']}/trades.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert f'filename="tradewind-backtest-{b["id"]}.csv"' in r.headers["content-disposition"]
        rows_csv = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows_csv) == len(b["trades"])
        assert [float(x["pnl"]) for x in rows_csv] == pytest.approx([t["pnl"] for t in b["trades"]])
        wf_csv = list(
            csv.DictReader(io.StringIO((await c.get(f"/api/runs/walkforward/{w['id']}/trades.csv")).text))
        )
        assert len(wf_csv) == oos_trades and {x["window"] for x in wf_csv} == {"0", "1", "2"}

        r = await c.get(f"/api/runs/study/{s['id']}/export.json")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        everything = r.json()
        assert everything["code"] == saved and everything["kind"] == "study"
        assert len([t for t in everything["trials"] if not t["requeued"]]) == 12
        assert everything["trades"] == run["trades"] and everything["equity"] == run["equity"]
        assert set(everything["importances"]["return"]) == {"phase", "hold"}

        r = await c.get(f"/api/runs/walkforward/{w['id']}/report.html")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        html = r.text
        assert html.count("<svg") == 3  # equity, drawdown, in and out of sample by window
        assert "<script" not in html and "src=" not in html and "href=" not in html and "url(" not in html
        assert f"Walk-forward #{w['id']}: cycle v1" in html and "Walk-forward efficiency" in html

        # another user: nothing of it exists
        creds = {"email": "someone@example.com", "password": "tangerine zeppelin waltz"}
        assert (await c.post("/api/auth/register", json=creds)).status_code == 201
        token = (await c.post("/api/auth/login", json=creds)).json()["token"]
        other = {"Authorization": f"Bearer {token}"}
        assert (await c.get("/api/runs", headers=other)).json() == {"items": [], "next_before": None}
        assert (await c.get("/api/walkforwards", headers=other)).json()["items"] == []
        for path in (
            f"/api/runs/backtest/{b['id']}",
            f"/api/runs/study/{s['id']}",
            f"/api/runs/walkforward/{w['id']}",
            f"/api/runs/backtest/{b['id']}/trades.csv",
            f"/api/runs/study/{s['id']}/export.json",
            f"/api/runs/walkforward/{w['id']}/report.html",
            f"/api/walkforwards/{w['id']}",
            f"/api/runs/compare?runs=backtest:{b['id']},study:{s['id']}",
            f"/api/runs?before=backtest:{b['id']}",
        ):
            r = await c.get(path, headers=other)
            assert r.status_code == 404, (path, r.status_code)
            assert "cycle" not in r.text and "CYC" not in r.text
        r = await c.post(
            "/api/walkforwards",
            headers=other,
            json={**COSTS, "strategy_id": sid, "market_id": ids["CYC/USD"], "mode": "split", "split": 0.5},
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "strategy_id"


@pytest.mark.timeout(60)
async def test_bad_runs_and_walkforwards_are_refused_with_the_field_at_fault(tmp_path: Path) -> None:
    async with platform(tmp_path, {"CYC/USD": (cycle_rows(100), [])}) as (c, ids):
        sid = await strategy(c, "cycle", CYCLE)
        body = {**COSTS, "strategy_id": sid, "market_id": ids["CYC/USD"], "trials": 4}
        for change, field in (
            ({"mode": "split"}, "split"),
            ({}, "train"),
            ({"train": "2h"}, "test"),
            ({"train": "2x", "test": "1h"}, "train"),
            ({"train": "0h", "test": "1h"}, "train"),
            ({"train": "99999999999w", "test": "1h"}, "train"),
            ({"mode": "split", "split": 0.5, "test": "1h"}, "test"),
            ({"split": 0.5, "train": "1h", "test": "1h"}, "split"),
            ({"mode": "split", "split": 1.5}, "split"),
            ({"mode": "sideways"}, "mode"),
            ({"mode": "split", "split": 0.5, "trials": 0}, "trials"),
            ({"mode": "split", "split": 0.5, "objective": "luck"}, "objective"),
            ({"mode": "split", "split": 0.5, "market_id": 999}, "market_id"),
            ({"mode": "split", "split": 0.5, "from": 2_000_000_000_000, "to": 1_000_000_000_000}, "to"),
            ({"mode": "split", "split": 0.5, "params": {"bad name": 1}}, "params"),
        ):
            r = await c.post("/api/walkforwards", json={**body, **change})
            assert r.status_code == 422, (change, r.text)
            assert r.json()["errors"][0]["field"] == field, (change, r.json())
        for query, field in (
            ("runs=backtest:1", "runs"),
            ("runs=backtest:1,backtest:1", "runs"),
            ("runs=backtest:1,trade:2", "runs"),
            ("runs=backtest:0,study:1", "runs"),
            ("runs=" + ",".join(f"study:{i}" for i in range(1, 12)), "runs"),
            ("", "runs"),
        ):
            r = await c.get(f"/api/runs/compare?{query}")
            assert r.status_code == 422, (query, r.text)
            assert r.json()["errors"][0]["field"] == field, (query, r.json())
        for path in (
            "/api/runs/trade/1",
            "/api/runs/backtest/0",
            "/api/runs/backtest/x",
            "/api/runs?kind=trade",
            "/api/runs?before=nonsense",
            "/api/runs?limit=0",
            "/api/runs/study/1/report.pdf",
        ):
            r = await c.get(path)
            assert 400 <= r.status_code < 500, (path, r.status_code)
        assert (await c.get("/api/runs/walkforward/999")).status_code == 404
        assert (await c.get("/api/runs/compare?runs=backtest:998,study:999")).status_code == 404

        # what can only be known once it runs ends the run in an error that says so
        r = await c.post("/api/walkforwards", json={**body, "train": "10d", "test": "1d"})
        doc = await done(c, f"/api/walkforwards/{r.json()['id']}")
        assert doc["status"] == "error" and "shorter than one train window" in doc["error"]
        plain = await strategy(c, "plain", 'function decide(c, params) return "long" end')
        r = await c.post(
            "/api/walkforwards", json={**body, "strategy_id": plain, "mode": "split", "split": 0.6}
        )
        doc = await done(c, f"/api/walkforwards/{r.json()['id']}")
        assert doc["status"] == "error" and "declares no parameter" in doc["error"]
        failed = (await c.get(f"/api/runs/walkforward/{doc['id']}")).json()
        assert failed["status"] == "error" and failed["equity"] is None and failed["metrics"] == {}
        assert (await c.get(f"/api/runs/walkforward/{doc['id']}/trades.csv")).text.startswith(
            "window,entry_time"
        )


@pytest.mark.timeout(60)
async def test_a_walkforward_without_a_worker_says_so(tmp_path: Path) -> None:
    async with platform(tmp_path, {"CYC/USD": (cycle_rows(100), [])}, worker=False) as (c, ids):
        sid = await strategy(c, "cycle", CYCLE)
        r = await c.post(
            "/api/walkforwards",
            json={**COSTS, "strategy_id": sid, "market_id": ids["CYC/USD"], "mode": "split", "split": 0.5},
        )
        assert r.status_code == 202 and r.json()["status"] == "error"
        doc = (await c.get(f"/api/walkforwards/{r.json()['id']}")).json()
        assert doc["error"] == NO_WORKER
        assert (await c.get("/api/runs")).json()["items"][0]["error"] == NO_WORKER


@pytest.mark.timeout(120)
async def test_a_studys_best_run_is_over_the_candles_its_trials_saw(tmp_path: Path) -> None:
    """An open-ended study's range grows while it runs: its best trial is run again over the candles the trials
    ran over (those there when it started), so the kept run is the trial's, not one over later candles."""
    rows = cycle_rows(400)
    async with platform(tmp_path, {"CYC/USD": (rows[:300], [])}) as (c, ids):
        sid = await strategy(c, "cycle", CYCLE)
        r = await c.post(
            "/api/studies",
            json={
                **COSTS,
                "strategy_id": sid,
                "market_id": ids["CYC/USD"],
                "objectives": ["return"],
                "trials": 40,
                "seed": 5,
                "prune": False,
            },
        )
        study = f"/api/studies/{r.json()['id']}"
        for _ in range(400):  # the driver has loaded the candles once it has read the space
            doc = (await c.get(study)).json()
            if doc["space"] is not None or doc["status"] != "queued" and doc["status"] != "running":
                break
            await asyncio.sleep(0.01)
        assert doc["status"] == "running" and doc["space"] is not None, doc["status"]
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}")
        async with make_session_factory(engine)() as s:  # a hundred more candles arrive meanwhile
            await store.insert_candles(s, ids["CYC/USD"], "1m", rows[300:])
            await s.commit()
        await engine.dispose()
        doc = await done(c, study)
        assert doc["status"] == "done", doc["error"]
        best = next(t for t in doc["trial_results"] if t["number"] == doc["best"][0])
        run = doc["best_run"]
        assert best["metrics"]["candles"] == run["metrics"]["candles"] == run["range"]["candles"] == 300
        assert run["metrics"]["return_pct"] == pytest.approx(best["metrics"]["return_pct"], abs=1e-9)
        assert run["range"]["last"] == T0 + 299 * MIN
