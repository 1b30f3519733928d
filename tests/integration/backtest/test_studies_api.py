"""Optimisation studies through the API, as the web app runs them: POST /api/studies, a BacktestWorker on a real
NATS drives the study over a real SQLite store and runs its trials, GET /api/studies/{id} gives the trials, the
best and the importances; another user sees none of it; bad input is a 422; a finished study resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_optimize import CYCLE, cycle_rows
from .test_quotes_api import platform, strategy

BODY = {"timeframe": "1m", "objectives": ["return"], "trials": 12, "fee": 0, "lookback": 5, "seed": 3}


async def finished(c: httpx.AsyncClient, study_id: int) -> dict[str, Any]:
    for _ in range(600):
        doc = (await c.get(f"/api/studies/{study_id}")).json()
        if doc["status"] in ("done", "error"):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"study {study_id} did not finish: {doc['status']}")


@pytest.mark.timeout(60)
async def test_a_study_runs_on_the_workers_and_only_its_owner_sees_it(tmp_path: Path) -> None:
    async with platform(tmp_path, {"CYC/USD": (cycle_rows(300), [])}) as (c, ids):
        sid = await strategy(c, "cycle", CYCLE)
        body = {**BODY, "strategy_id": sid, "market_id": ids["CYC/USD"]}
        r = await c.post("/api/studies", json=body)
        assert r.status_code == 202, r.text
        doc = await finished(c, r.json()["id"])
        assert doc["status"] == "done", doc["error"]
        assert doc["objectives"] == ["return"] and doc["sampler"] == "tpe"
        assert set(doc["space"]) == {"phase", "hold", "spin"} and doc["space"]["phase"]["max"] == 9
        counted = [t for t in doc["trial_results"] if not t["requeued"]]
        assert len(counted) == 12 and all(t["worker"] == "worker-1" for t in counted)
        best = next(t for t in doc["trial_results"] if t["number"] == doc["best"][0])
        assert best["state"] == "complete" and best["values"][0] == max(
            t["values"][0] for t in doc["trial_results"] if t["state"] == "complete"
        )
        assert (
            set(best["params"]) == {"phase", "hold", "spin"}
            and best["metrics"]["return_pct"] == best["values"][0]
        )
        assert set(doc["importances"]["return"]) == {"phase", "hold"}
        assert doc["summary"]["best"]["number"] == best["number"]
        listed = (await c.get("/api/studies")).json()["items"]
        assert [s["id"] for s in listed] == [doc["id"]] and listed[0]["trial_results"] is None

        # the study goes on to 16 trials in all
        r = await c.post(f"/api/studies/{doc['id']}/resume", json={"trials": 16})
        assert r.status_code == 202, r.text
        again = await finished(c, doc["id"])
        assert (
            again["status"] == "done" and len([t for t in again["trial_results"] if not t["requeued"]]) == 16
        )

        # another user: not found, everywhere
        creds = {"email": "someone@example.com", "password": "tangerine zeppelin waltz"}
        assert (await c.post("/api/auth/register", json=creds)).status_code == 201
        token = (await c.post("/api/auth/login", json=creds)).json()["token"]
        other = {"Authorization": f"Bearer {token}"}
        assert (await c.get(f"/api/studies/{doc['id']}", headers=other)).status_code == 404
        assert (await c.post(f"/api/studies/{doc['id']}/resume", headers=other)).status_code == 404
        assert (await c.get("/api/studies", headers=other)).json()["items"] == []
        r = await c.post("/api/studies", json=body, headers=other)  # not their strategy
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "strategy_id"


@pytest.mark.timeout(60)
async def test_bad_studies_are_refused_with_the_field_at_fault(tmp_path: Path) -> None:
    async with platform(tmp_path, {"CYC/USD": (cycle_rows(100), [])}) as (c, ids):
        sid = await strategy(c, "cycle", CYCLE)
        body = {**BODY, "strategy_id": sid, "market_id": ids["CYC/USD"]}
        for change, field in (
            ({"objectives": ["nope"]}, "objectives.0"),
            ({"objectives": []}, "objectives"),
            ({"objectives": ["sharpe", "sharpe"]}, "objectives"),
            ({"trials": 0}, "trials"),
            ({"trials": 10**6}, "trials"),
            ({"sampler": "grid"}, "sampler"),
            ({"market_id": 999}, "market_id"),
            ({"timeframe": "7m"}, "timeframe"),
            ({"from": 2_000_000_000_000, "to": 1_000_000_000_000}, "to"),
            ({"params": {"bad name": 1}}, "params"),
            ({"extra": 1}, "extra"),
        ):
            r = await c.post("/api/studies", json={**body, **change})
            assert r.status_code == 422, (change, r.text)
            assert r.json()["errors"][0]["field"] == field, (change, r.json())
        assert (await c.get("/api/studies/999")).status_code == 404
        # a strategy that declares nothing to search: the study ends in an error saying what to declare
        plain = await strategy(c, "plain", 'function decide(c, params) return "long" end')
        r = await c.post("/api/studies", json={**body, "strategy_id": plain})
        doc = await finished(c, r.json()["id"])
        assert doc["status"] == "error" and "declares no parameter" in doc["error"]
        # a declaration with a mistake cannot even be saved
        r = await c.post(
            "/api/strategies",
            json={
                "name": "bad",
                "code": 'params = {fast = {min = 9, max = 2}}\nfunction decide(c, params) return "long" end',
            },
        )
        assert r.status_code == 422 and "max (2) is below min (9)" in r.text
