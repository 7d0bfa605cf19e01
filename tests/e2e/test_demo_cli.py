"""``radguard demo --fast`` and ``radguard simulate`` as processes against the real stack (issue #13 acceptance).

The demo runs twice on the same stack: each run registers a model of its own (``chest_nodule-demo-<run>``,
served by Triton's chest_nodule), so the second run tells its story too and its books hold only its own
traffic. The simulate tests use a route for chest_nodule itself (published when missing).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli.traffic import DriverStats, wait_for_ledger
from stack.settings import REPO_ROOT, load_stack_settings
from tests.integration.conftest import StackEndpoints

pytestmark = [pytest.mark.integration]


def radguard(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def ledger_of(ids: list[str], read_ids: list[str]) -> tuple[set[str], set[str]]:
    stats = DriverStats(prediction_ids=list(ids), read_prediction_ids=list(read_ids))
    return asyncio.run(wait_for_ledger(load_stack_settings().postgres_dsn, stats, timeout_s=60))


def run_demo(out: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    started = time.monotonic()
    done = radguard("demo", "--fast", *flags, "--result-json", str(out), timeout_s=400)
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"demo --fast {' '.join(flags)} wall {time.monotonic() - started:.0f} s")
    return done, json.loads(out.read_text(encoding="utf-8"))


def assert_books_are_its_own(result: dict[str, Any]) -> None:
    """The run's ledger counts are its own: every acknowledged prediction and read, by id, under its model."""
    assert result["errors"] == {}
    assert result["answered"] == result["sent"] == result["ledger_predictions"]
    assert result["reads"] == result["answered"] == result["ledger_reads"]
    assert result["missing_predictions"] == 0 and result["missing_reads"] == 0
    assert result["audit_ok"] and result["audit_entries"] > 0
    # Answers recorded under the run's model name are exactly the run's answers (shadow copies aside).
    assert asyncio.run(answers_under(result["model_name"])) == result["answered"], result["model_name"]


async def answers_under(model: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(load_stack_settings().postgres_dsn)
    try:
        return int(
            await connection.fetchval(
                "select count(*) from ledger_predictions where model_name = $1 and arm <> 'shadow'", model
            )
        )
    finally:
        await connection.close()


@pytest.mark.timeout(840)
def test_demo_fast_tells_both_stories_on_one_stack(stack: StackEndpoints, tmp_path: Path) -> None:
    """CR-90 protocol change: findings, automatic rollback, gateway on stable, ledger complete, audit verifies.
    Then, on the same stack, the healthy variant: v2 passes every step and becomes production.

    The second run has a model of its own, its own story and its own books.
    """
    first = tell_the_rollback_story(tmp_path / "demo.json")
    again = tell_the_healthy_story(tmp_path / "again.json")
    assert again["model_name"] != first["model_name"]
    assert again["audit_entries"] > first["audit_entries"]  # one chain, appended to, never reset


def tell_the_healthy_story(out: Path) -> dict[str, Any]:
    """Run ``radguard demo --fast --healthy``: the canary passes each step's gates and v2 is promoted."""
    done, result = run_demo(out, "--healthy")
    assert result["rollout_status"] == "completed", result["rollout_reasons"]
    assert any("completed by rollout-controller" in reason for reason in result["rollout_reasons"])
    assert sum("promoted by rollout-controller" in reason for reason in result["rollout_reasons"]) == 2
    assert result["v2_state"] == "production"
    assert result["routes"]["stable"] == "2" and result["routes"]["canary"] == ""
    assert result["after_answers"] == {"stable v2": 12}
    assert result["findings"] == []
    assert result["model_name"].startswith("chest_nodule-demo-")
    assert_books_are_its_own(result)
    assert "healthy v2 promoted" in done.stdout
    return result


def tell_the_rollback_story(out: Path) -> dict[str, Any]:
    """Run ``radguard demo --fast`` and check its story and books; returns its result."""
    done, result = run_demo(out)
    # The story: the canary was stopped and v2 rolled back by the controller, every study now on v1.
    assert result["rollout_status"] == "aborted"
    assert any("aborted by rollout-controller" in reason for reason in result["rollout_reasons"])
    assert result["v2_state"] == "rolled_back"
    assert result["routes"]["stable"] == "1" and result["routes"]["canary"] == ""
    assert result["after_answers"] == {"stable v1": 12}
    # What stopped it: the monitors' breach, its largest shift at the changed site, or a failed evidence gate
    # (whichever the controller saw first); either way the canary's trouble is at the changed site's scanner.
    breaches = [f for f in result["findings"] if f["severity"] == "breach"]
    aborted_on = " ".join(result["rollout_reasons"])
    if "breach finding" in aborted_on:
        assert any("site-C" in f["subgroup"] or "CR-90" in f["subgroup"] for f in breaches), breaches
    else:
        assert "failed at step" in aborted_on, aborted_on
    canary = {k: v for k, v in result["by_site"].items() if k.startswith("canary ") and v["reads"] >= 20}
    worst = max(canary, key=lambda key: canary[key]["calibration_gap"])
    assert worst == "canary v2 site-C CR-90", canary
    # Nothing lost: the ledger holds every acknowledged prediction and read, by id.
    assert result["model_name"].startswith("chest_nodule-demo-")
    assert_books_are_its_own(result)
    # Where the board looks next: the dashboard and v2's review pack (one self-contained HTML file).
    assert result["dashboard_url"].startswith("http://127.0.0.1:")
    pack = Path(result["review_pack"]).read_text(encoding="utf-8")
    assert pack.startswith("<!DOCTYPE html>") or pack.lstrip().lower().startswith("<!doctype html>")
    assert "chest_nodule" in pack and '<script src="http' not in pack
    assert "radguard demo: summary" in done.stdout
    return result


def ensure_route() -> None:
    """A route for chest_nodule (the demo leaves stable v1; alone, publish one)."""
    from services.gateway.adapters.routes import read_routes

    if asyncio.run(read_routes(load_stack_settings().kafka_bootstrap)).get("chest_nodule") is None:
        assert radguard("routes", "set", "chest_nodule", "--stable", "1").returncode == 0


@pytest.mark.timeout(300)
def test_simulate_n_studies_puts_exactly_n_predictions_and_reads_in_the_ledger(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    ensure_route()
    out = tmp_path / "summary.json"
    done = radguard("simulate", "--studies", "16", "--seed", "7", "--start-index", "5000",
                    "--read-delay-scale", "0", "--summary-json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["sent"] == summary["answered"] == summary["reads"] == 16
    assert summary["errors"] == {} and not summary["interrupted"]
    ids = summary["prediction_ids"]
    assert len(set(ids)) == 16 and sorted(summary["read_prediction_ids"]) == sorted(ids)
    predicted, read = ledger_of(ids, summary["read_prediction_ids"])
    assert predicted == set(ids) and read == set(ids)
    assert "summary of baseline (seed 7)" in done.stdout and "answered" in done.stdout


@pytest.mark.timeout(300)
def test_an_interrupted_simulation_summary_matches_the_ledger(stack: StackEndpoints, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT): the run stops cleanly, and its summary counts exactly what the ledger holds."""
    ensure_route()
    out = tmp_path / "summary.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "simulate", "--duration", "120", "--seed", "8",
         "--start-index", "9000", "--read-delay-scale", "0.05", "--summary-json", str(out)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    assert process.stderr is not None
    started = process.stderr.readline()  # printed once Ctrl-C is handled
    assert "Ctrl-C stops" in started, started
    time.sleep(5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert process.returncode == 0, stdout + stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["interrupted"] and summary["errors"] == {}
    assert 0 < summary["answered"] == len(summary["prediction_ids"])
    assert summary["reads"] == len(summary["read_prediction_ids"])
    predicted, read = ledger_of(summary["prediction_ids"], summary["read_prediction_ids"])
    assert predicted == set(summary["prediction_ids"]) and read == set(summary["read_prediction_ids"])
    assert "interrupted: summary" in stdout


def test_a_bad_prediction_id_names_the_feedback_services_error(stack: StackEndpoints) -> None:
    done = radguard("read", "not-a-prediction", "--label", "positive", "--reader", "R-test")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "feedback service at" in lines[0] and "INVALID_ARGUMENT" in lines[0] and "prediction_id" in lines[0]


def test_a_read_by_hand_of_a_dicom_study_is_recorded_once(stack: StackEndpoints, tmp_path: Path) -> None:
    ensure_route()
    out = tmp_path / "summary.json"
    sent = radguard("simulate", "--studies", "1", "--seed", "9", "--dicom", "--no-reads", "--summary-json", str(out))
    assert sent.returncode == 0, sent.stderr
    (prediction_id,) = json.loads(out.read_text(encoding="utf-8"))["prediction_ids"]
    args = (
        "read",
        prediction_id,
        "--label",
        "negative",
        "--reader",
        "R-test",
        "--key",
        f"t-{prediction_id}",
        "--read-time",
        (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    first, again = radguard(*args), radguard(*args)
    assert first.returncode == 0 and "stored" in first.stdout and "now" in first.stdout, first.stderr
    assert again.returncode == 0 and "earlier" in again.stdout
    _, read = ledger_of([prediction_id], [prediction_id])
    assert read == {prediction_id}
