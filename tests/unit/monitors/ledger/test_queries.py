"""Window specs, the SQL they become, maturity arithmetic and partition lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitors.ledger.adapters.postgres_queries import window_query
from services.monitors.ledger.domain import Arm, Sex
from services.monitors.ledger.queries import LabelledPrediction, LedgerWindow, Maturity, WindowSpec
from services.monitors.ledger.stats import PartitionLag, partition_lags
from services.runtime.errors import InvalidArgument
from services.runtime.kafka import TopicPartition

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def test_a_time_window_filters_by_the_given_fields_only() -> None:
    spec = WindowSpec("chest_nodule", "3", Arm.CANARY, start=T0, end=T0 + timedelta(days=1), sex=Sex.FEMALE)
    sql, values = window_query(spec, "prediction_id")
    assert sql == (
        "select prediction_id from ledger_labelled_predictions where model_name = $1 and model_version = $2 "
        "and arm = $3 and sex = $4 and event_time >= $5 and event_time < $6 order by event_time, prediction_id"
    )
    assert values == ["chest_nodule", "3", "canary", "female", T0, T0 + timedelta(days=1)]


def test_a_count_window_takes_the_latest_rows_and_returns_them_oldest_first() -> None:
    sql, values = window_query(WindowSpec("m", last=500, site_id="site-B"), "prediction_id")
    assert sql == (
        "select * from (select prediction_id from ledger_labelled_predictions where model_name = $1 "
        "and site_id = $2 order by event_time desc, prediction_id desc limit $3) w order by event_time, prediction_id"
    )
    assert values == ["m", "site-B", 500]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_name": ""}, "model_name: is required"),
        ({"model_name": "m", "start": datetime(2025, 1, 1)}, "start: must be timezone-aware"),
        ({"model_name": "m", "start": T0, "end": T0}, "end: must be after start"),
        ({"model_name": "m", "last": 0}, "last: must be at least 1, got 0"),
    ],
)
def test_impossible_windows_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        WindowSpec(**kwargs)  # type: ignore[arg-type]
    assert caught.value.message == message


def _row(label: int | None) -> LabelledPrediction:
    return LabelledPrediction(
        prediction_id="p",
        event_time=T0,
        model_name="m",
        model_version="1",
        arm=Arm.STABLE,
        study_uid="s",
        site_id="",
        modality="",
        manufacturer="",
        manufacturer_model="",
        protocol_name="",
        sex=Sex.MALE,
        age_years=None,
        age_band="",
        raw_score=0.0,
        probability=0.5,
        decision=1,
        threshold=0.5,
        descriptors=None,
        embedding=None,
        read_id=None if label is None else "r",
        label=label,
        outcome=None,
        read_time=None,
        read_count=0 if label is None else 1,
    )


def test_window_maturity_counts_labelled_rows() -> None:
    window = LedgerWindow(WindowSpec("m"), (_row(1), _row(None), _row(0), _row(None)))
    assert window.maturity == Maturity(4, 2)
    assert window.maturity.fraction == 0.5
    assert window.maturity.partial is True
    assert [row.label for row in window.labelled()] == [1, 0]
    assert Maturity(0, 0).fraction == 0.0
    assert Maturity(3, 3).partial is False


def test_lag_is_end_minus_stored_offset_counting_from_the_log_start() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    lags = partition_lags({a0: 90, b0: 5}, {a1: (0, 40), a0: (0, 100), b0: (20, 30)})
    assert lags == [
        PartitionLag("a", 0, 100, 90, 10),
        PartitionLag("a", 1, 40, None, 40),  # nothing stored: all of it is lag
        PartitionLag("b", 0, 30, 5, 10),  # records below the log start can no longer be written
    ]
