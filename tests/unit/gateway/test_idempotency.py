"""One answer per request id: single flight while running, the journal afterwards (restarts included)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from services.gateway.domain import ModelOutputs
from services.gateway.handlers import PredictHandler
from services.gateway.idempotency import AnswerJournal
from services.gateway.routing import Route, RouteBook
from tests.unit.gateway.test_handler import FakeCatalog, FakeSink, command
from tests.unit.gateway.test_spooled_sink import prediction

SECRET = b"unit-test-secret-0123456789"


class SlowBackend:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        self.calls += 1
        await self.release.wait()
        return [ModelOutputs(0.25, (1.0,), {})]

    async def ready(self) -> bool:
        return True


def handler(answers: AnswerJournal | None = None) -> tuple[PredictHandler, FakeSink, SlowBackend]:
    book = RouteBook()
    book.apply(Route("m", "1", revision=1))
    book.mark_loaded()
    sink, backend = FakeSink(), SlowBackend()
    return PredictHandler(backend, FakeCatalog(), book, sink, answers=answers), sink, backend


@pytest.mark.asyncio
async def test_ten_concurrent_calls_with_one_request_id_share_one_inference() -> None:
    h, sink, backend = handler()
    calls = [asyncio.create_task(h.predict(command(request_id="same"))) for _ in range(10)]
    await asyncio.sleep(0.05)
    backend.release.set()
    answers = await asyncio.gather(*calls)
    assert {a.prediction_id for a in answers} == {answers[0].prediction_id}
    assert backend.calls == 1 and len(sink.recorded) == 1
    other = await h.predict(command(request_id="other"))
    assert other.prediction_id != answers[0].prediction_id and backend.calls == 2


@pytest.mark.asyncio
async def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    h, sink, backend = handler()
    first = asyncio.create_task(h.predict(command(request_id="r")))
    second = asyncio.create_task(h.predict(command(request_id="r")))
    await asyncio.sleep(0.02)
    first.cancel()
    backend.release.set()
    answer = await second
    assert backend.calls == 1 and sink.recorded == [answer]
    assert (await h.predict(command(request_id="r"))) == answer


@pytest.mark.asyncio
async def test_a_failed_inference_is_shared_and_not_remembered() -> None:
    h, sink, backend = handler()
    sink.open = False
    results = await asyncio.gather(*(h.predict(command(request_id="r")) for _ in range(3)), return_exceptions=True)
    assert all(type(r).__name__ == "ResourceExhausted" for r in results)
    sink.open = True
    backend.release.set()
    assert (await h.predict(command(request_id="r"))).prediction_id


def journal_texts(folder: Path) -> list[str]:
    return [p.read_text() for p in folder.iterdir()]


@pytest.mark.asyncio
async def test_the_answer_is_found_again_after_a_restart(tmp_path: Path) -> None:
    h, _, backend = handler(AnswerJournal(tmp_path, SECRET))
    backend.release.set()
    first = await h.predict(command(request_id="before-restart"))
    h.answers.close()

    h2, sink2, backend2 = handler(AnswerJournal(tmp_path, SECRET))
    again = await h2.predict(command(request_id="before-restart"))
    assert again.prediction_id == first.prediction_id and again.probability == first.probability
    assert again.version == first.version and again.arm is first.arm
    assert backend2.calls == 0 and sink2.recorded == []
    # The journal holds no caller id.
    assert not any("before-restart" in text for text in journal_texts(tmp_path))


def test_the_window_and_the_entry_bound_hold(tmp_path: Path) -> None:
    now = [1_000_000.0]
    journal = AnswerJournal(tmp_path, SECRET, window_s=100.0, max_entries=8, clock=lambda: now[0])
    _, pred = prediction(1)
    journal.remember("m", "a", pred)
    now[0] += 99
    assert journal.lookup("m", "a") == pred
    now[0] += 2
    assert journal.lookup("m", "a") is None  # older than the window
    for i in range(20):
        journal.remember("m", f"r{i}", pred)
        now[0] += 1
    assert len(journal) == 8 and journal.lookup("m", "r11") is None and journal.lookup("m", "r19") is not None
    journal.close()
    # Across a restart: the same bounds, and files far outside the window are deleted.
    reopened = AnswerJournal(tmp_path, SECRET, window_s=100.0, max_entries=8, clock=lambda: now[0])
    assert len(reopened) == 8 and reopened.lookup("m", "r19") is not None
    assert len(list(tmp_path.glob("answers-*.jsonl"))) <= 5
    now[0] += 1000
    later = AnswerJournal(tmp_path, SECRET, window_s=100.0, max_entries=8, clock=lambda: now[0])
    assert len(later) == 0 and list(tmp_path.glob("answers-*.jsonl")) == []


def test_keys_depend_on_the_secret_and_the_model() -> None:
    a, b = AnswerJournal(None, SECRET), AnswerJournal(None, b"another-secret-0123456789")
    assert a.key("m", "r") != b.key("m", "r") and a.key("m", "r") != a.key("n", "r")
    assert a.key("m|x", "r") != a.key("m", "x|r")


def test_a_process_finds_the_answers_its_sibling_processes_gave(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a" / "answers", tmp_path / "b" / "answers"
    a = AnswerJournal(a_dir, SECRET)
    b = AnswerJournal(b_dir, SECRET, siblings=[a_dir])
    _, first = prediction(1)
    a.remember("m", "r1", first)
    assert b.lookup("m", "r1") is None  # not followed yet
    assert b.follow_siblings() == 1 and b.follow_siblings() == 0  # whole lines, each read once
    found = b.lookup("m", "r1")
    assert found is not None and found.prediction_id == first.prediction_id
    # A process that starts later reads its siblings' journals back at once, and never answers from
    # its own journal with a sibling's line twice.
    _, second = prediction(2)
    a.remember("m", "r2", second)
    a.close()
    late = AnswerJournal(tmp_path / "c" / "answers", SECRET, siblings=[a_dir, b_dir])
    assert {late.lookup("m", r).prediction_id for r in ("r1", "r2")} == {first.prediction_id, second.prediction_id}  # type: ignore[union-attr]
