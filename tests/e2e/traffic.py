"""Simulator traffic through a gateway: studies scored by the real Triton, radiologists' reads as ReadEvents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from services.cli.traffic import MODEL, HospitalDriver, KafkaReads, predict_request
from sim import Hospital

__all__ = ["MODEL", "Traffic", "ledger_counts", "per_scanner", "predict_request", "wait_ledger"]


@dataclass
class Traffic:
    """Sends the seeded hospital's studies, in order, through one gateway; each read follows its answer.

    A thin wrapper of the CLI's :class:`services.cli.traffic.HospitalDriver` (what ``radguard simulate``
    runs), with the reads published straight onto the test's reads topic (the tests have no feedback service).
    """

    hospital: Hospital
    gateway_target: str
    bootstrap: str
    reads_topic: str
    concurrency: int = 4
    driver: HospitalDriver = field(init=False)

    def __post_init__(self) -> None:
        self.driver = HospitalDriver(
            self.hospital,
            self.gateway_target,
            KafkaReads(self.bootstrap, self.reads_topic),
            concurrency=self.concurrency,
        )

    @property
    def next_index(self) -> int:
        return self.driver.next_index

    @property
    def answered(self) -> dict[tuple[str, str], int]:
        """(arm, version) → studies answered."""
        return self.driver.stats.answered_by_arm

    async def send(self, n: int) -> None:
        """Score the next ``n`` studies and publish the simulated radiologist's read of each."""
        stats = await self.driver.run(n)
        assert not stats.errors, f"studies or reads not acknowledged: {dict(stats.errors)}"


async def ledger_counts(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(arm, version) → (predictions, predictions with a read) in the ledger at ``dsn``."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select p.arm, p.model_version, count(*) as n,
                      count(*) filter (where exists (select 1 from ledger_reads r
                                                     where r.prediction_id = p.prediction_id)) as read
               from ledger_predictions p where p.model_name = $1 group by 1, 2""",
            MODEL,
        )
        return {(r["arm"], r["model_version"]): (r["n"], r["read"]) for r in rows}
    finally:
        await connection.close()


async def wait_ledger(dsn: str, arm: str, version: str, predictions: int, timeout_s: float = 30.0) -> int:
    """Wait until the ledger holds ``predictions`` of (arm, version); returns how many it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = (await ledger_counts(dsn)).get((arm, version), (0, 0))[0]
        if got >= predictions:
            return got
        assert loop.time() < deadline, f"ledger holds {got} of {predictions} {arm} predictions of v{version}"
        await asyncio.sleep(0.2)


async def per_scanner(dsn: str, arm: str, version: str) -> dict[str, dict[str, float]]:
    """Scanner → reads, mean calibrated probability, rate of positive reads and sensitivity, for one arm."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select p.manufacturer_model as scanner, count(*) as reads,
                      avg(p.probability) as mean_probability, avg(r.label) as positive_rate,
                      count(*) filter (where r.label = 1) as positives,
                      count(*) filter (where r.label = 1 and p.decision = 1) as detected
               from ledger_predictions p join ledger_reads r on r.prediction_id = p.prediction_id
               where p.model_name = $1 and p.arm = $2 and p.model_version = $3 and r.label is not null
               group by 1""",
            MODEL,
            arm,
            version,
        )
    finally:
        await connection.close()
    return {
        r["scanner"]: {
            "reads": float(r["reads"]),
            "mean_probability": float(r["mean_probability"]),
            "positive_rate": float(r["positive_rate"]),
            "calibration_gap": abs(float(r["mean_probability"]) - float(r["positive_rate"])),
            "sensitivity": r["detected"] / r["positives"] if r["positives"] else float("nan"),
        }
        for r in rows
    }
