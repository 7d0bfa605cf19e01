"""``radguard reference build`` on a real ledger filled by simulated traffic (Kafka → ledger writer → PostgreSQL).

The simulated hospital's predictions and reads go through the real writer; the builder then reads version
3's period back (read-only) and must write a profile the monitors load, holding exactly the version's read
predictions, labelled by those reads, at the ledger's operating threshold, with the reads' delays and a
power statement per subgroup; a period with too few reads is refused in one line.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kernel.power import minimal_detectable_drop
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.cli.main import app as cli
from services.monitors.core.reference import load_reference_profile
from services.runtime.ids import uuid7
from stack.processes import StackError
from tests.integration.conftest import StackEndpoints
from tests.integration.ledger.conftest import Topics, produce, start_writer, wait_for_rows, writer_env
from tests.integration.ledger.simulated import MODEL, Traffic, simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

PREDICTIONS, READS = 4_000, 3_200
SHADOWED = 1_500


def shadow_twins(traffic: Traffic, n: int) -> tuple[list[tuple[bytes, bytes]], dict[str, str]]:
    """Version 5 shadowing the first ``n`` stable predictions: (events, shadow id -> served id)."""
    events, pairs = [], {}
    for key, value in traffic.predictions[: n * 2]:
        served = events_pb2.PredictionEvent.FromString(value)
        if served.model.model_version != "3" or len(pairs) == n:
            continue
        shadow = events_pb2.PredictionEvent()
        shadow.CopyFrom(served)
        shadow_id = uuid7()
        shadow.prediction_id = shadow.meta.event_id = shadow_id
        shadow.model.model_version = "5"
        shadow.arm = common_pb2.ARM_SHADOW
        shadow.served_prediction_id = served.prediction_id
        events.append((key, shadow.SerializeToString()))
        pairs[shadow_id] = served.prediction_id
    return events, pairs


async def test_reference_from_a_ledger_period(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, tmp_path: Path
) -> None:
    traffic = simulate(PREDICTIONS, READS, seed=23)
    shadows, pairs = shadow_twins(traffic, SHADOWED)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions + shadows)
        await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
        total = PREDICTIONS + len(shadows)
        assert await wait_for_rows(ledger_dsn, total, READS, timeout_s=120) == (total, READS)
    finally:
        await writer.stop()

    stable = [t for t in traffic.truth.values() if t.version == "3"]
    read = [t for t in stable if t.read is not None]
    since = min(t.study.acquired_at for t in stable)
    until = max(t.study.acquired_at for t in stable) + timedelta(seconds=1)
    out = tmp_path / "reference_profile.npz"
    runner = CliRunner()
    args = ["reference", "build", "--model", MODEL, "--version", "3", "--since", since.isoformat()]
    args += ["--until", until.isoformat(), "--out", str(out), "--dsn", ledger_dsn]
    done = await asyncio.to_thread(runner.invoke, cli, [*args, "--min-reads", "1000"])
    assert done.exit_code == 0, (done.output, done.exception)

    # The monitors load it; it holds version 3's read predictions, labelled by their reads.
    window = load_reference_profile(out, model_name=MODEL, model_version="3")
    assert len(window) == len(read)
    with np.load(out, allow_pickle=False) as archive:
        labels = archive["labels"]
        delays = archive["read_delay_minutes"]
        threshold = float(archive["threshold"][0])
        meta = json.loads(str(archive["metadata"].reshape(-1)[0]))
        sexes = archive["sex"]
        assert archive["embeddings"].shape == (len(read), 2)
        assert list(archive["image_stat_names"]) == ["mean", "p95"]
    assert threshold == 0.5
    assert int(labels.sum()) == sum(t.read.label for t in read if t.read is not None)
    expected_delays = sorted((t.read.read_at - t.study.acquired_at).total_seconds() / 60 for t in read if t.read)
    assert np.allclose(sorted(delays), expected_delays, atol=1e-3)
    assert (meta["labels"], meta["studies"], meta["reads"]) == ("reads", len(stable), len(read))
    assert meta["read_positives"] == int(labels.sum())
    assert meta["period"]["model_version"] == "3" and meta["period"]["arms"] == ["stable"]

    # One power line per subgroup, with the kernel's minimal detectable drop of its read-positives.
    positives = Counter("female" if t.study.sex == "F" else "male" for t in read if t.read and t.read.label)
    assert Counter(str(s) for s, y in zip(sexes, labels, strict=True) if y) == positives
    female = minimal_detectable_drop(positives["female"])
    assert meta["power"]["subgroups"]["sex=female"] == round(female, 4)
    assert f"{positives['female']:,}" in done.output and f"{female:.3f}" in done.output

    # Too few reads for the threshold: one line, nothing written.
    refused_out = tmp_path / "refused.npz"
    refused = await asyncio.to_thread(
        runner.invoke, cli, [*args[:-4], "--out", str(refused_out), "--dsn", ledger_dsn, "--min-reads", "100000"]
    )
    assert isinstance(refused.exception, StackError)
    message = str(refused.exception)
    assert f"holds {len(read)} reads" in message and "needs at least 100000 (--min-reads)" in message
    assert "\n" not in message and not refused_out.exists()

    # A shadow period: version 5's predictions are labelled by the reads of the served predictions they shadowed.
    twin_read = [traffic.truth[served] for served in pairs.values() if traffic.truth[served].read is not None]
    shadow_out = tmp_path / "shadow.npz"
    shadow_args = ["reference", "build", "--model", MODEL, "--version", "5", "--since", since.isoformat()]
    shadow_args += ["--until", until.isoformat(), "--out", str(shadow_out), "--dsn", ledger_dsn, "--min-reads", "500"]
    done = await asyncio.to_thread(runner.invoke, cli, shadow_args)
    assert done.exit_code == 0, (done.output, done.exception)
    with np.load(shadow_out, allow_pickle=False) as archive:
        shadow_meta = json.loads(str(archive["metadata"].reshape(-1)[0]))
        shadow_labels = archive["labels"]
    assert (shadow_meta["studies"], shadow_meta["reads"]) == (len(pairs), len(twin_read))
    assert shadow_meta["shadow_reads_from_served_twin"] == len(twin_read)
    assert shadow_meta["period"]["arms"] == ["shadow"]
    assert int(shadow_labels.sum()) == sum(t.read.label for t in twin_read if t.read is not None)
