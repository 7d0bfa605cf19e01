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
from services.cli.main import app as cli
from services.monitors.core.reference import load_reference_profile
from stack.processes import StackError
from tests.integration.conftest import StackEndpoints
from tests.integration.ledger.conftest import Topics, produce, start_writer, wait_for_rows, writer_env
from tests.integration.ledger.simulated import MODEL, simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

PREDICTIONS, READS = 4_000, 3_200


async def test_reference_from_a_ledger_period(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, tmp_path: Path
) -> None:
    traffic = simulate(PREDICTIONS, READS, seed=23)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
        await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
        assert await wait_for_rows(ledger_dsn, PREDICTIONS, READS, timeout_s=120) == (PREDICTIONS, READS)
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
