"""The durable spool: order, restart, torn tails, limits, segment clean-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.spool import Spool, SpooledRecord, SpoolFull


def rec(i: int) -> SpooledRecord:
    return SpooledRecord("t", f"k{i}".encode(), f"value-{i}".encode() * (1 + i % 5), (("traceparent", b"00-x"),))


def drain(spool: Spool, batch: int = 7) -> list[SpooledRecord]:
    out = []
    while entries := spool.read(batch):
        out += [r for _, r in entries]
        pos, last = entries[-1]
        spool.commit(spool.next_position(pos, last))
    return out


@given(
    st.lists(
        st.tuples(
            st.text(max_size=20),
            st.one_of(st.none(), st.binary(max_size=30)),
            st.binary(max_size=200),
            st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3),
        )
    )
)
def test_record_encoding_round_trips(items: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    for topic, key, value, headers in items:
        r = SpooledRecord(topic, key, value, tuple(headers))
        assert SpooledRecord.decode(r.encode()) == r


def test_order_survives_restart_and_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=300, fsync=False)
    spool.append([rec(i) for i in range(10)])
    for i in range(10, 40):
        spool.append([rec(i)])
    assert len(list(tmp_path.glob("seg-*.log"))) > 3
    first = spool.read(12)
    spool.commit(spool.next_position(*first[-1]))
    spool.close()

    again = Spool(tmp_path, segment_bytes=300, fsync=False)
    rest = drain(again)
    assert [r.key for r in rest] == [f"k{i}".encode() for i in range(12, 40)]
    assert again.pending_bytes == 0
    assert len(list(tmp_path.glob("seg-*.log"))) <= 2
    again.append([rec(99)])
    assert drain(again) == [rec(99)]


def test_torn_tail_is_cut_not_published(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    spool.append([rec(1), rec(2)])
    spool.close()
    seg = next(tmp_path.glob("seg-*.log"))
    with open(seg, "ab") as fh:
        fh.write(b"\x00\x00\x01\x00garbage")  # a frame header promising 256 bytes, then a crash
    again = Spool(tmp_path, fsync=False)
    again.append([rec(3)])
    assert drain(again) == [rec(1), rec(2), rec(3)]


def test_full_spool_refuses_and_recovers(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=400, fsync=False)
    spool.append([rec(0), rec(1)])
    with pytest.raises(SpoolFull, match="limit 400"):
        spool.append([rec(i) for i in range(2, 20)])
    assert drain(spool) == [rec(0), rec(1)]
    assert not spool.full
    spool.append([rec(5)])
    assert drain(spool) == [rec(5)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=15), st.integers(1, 10))
def test_any_batching_preserves_order(sizes: list[int], read_batch: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d), segment_bytes=256, fsync=False)
        n = 0
        for size in sizes:
            spool.append([rec(n + j) for j in range(size)])
            n += size
        assert drain(spool, read_batch) == [rec(i) for i in range(n)]


def test_unsynced_records_are_not_published_until_synced(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=True)
    spool.append([rec(0), rec(1)])
    spool.append([rec(2)], sync=False)
    assert spool.unsynced and spool.pending_bytes > 0
    assert [r for _, r in spool.read(10)] == [rec(0), rec(1)]  # only what an fsync made durable
    spool.sync()
    assert not spool.unsynced
    assert [r for _, r in spool.read(10)] == [rec(0), rec(1), rec(2)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.booleans()), min_size=1, max_size=15), st.integers(1, 10))
def test_unsynced_appends_and_segment_rolls_keep_order(batches: list[tuple[int, bool]], read_batch: int) -> None:
    """Appends without fsync, syncs now and then, and small segments (many rolls): every record, in order."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d), segment_bytes=200, fsync=True)
        n = 0
        published: list[SpooledRecord] = []
        for size, sync_now in batches:
            spool.append([rec(n + j) for j in range(size)], sync=False)
            n += size
            if sync_now:
                spool.sync()
                published += drain(spool, read_batch)
        spool.sync()
        published += drain(spool, read_batch)
        assert published == [rec(i) for i in range(n)]
        assert spool.pending_bytes == 0
        segments = sorted(p.name for p in Path(d).glob("seg-*.log"))
        assert len(segments) == 1  # published segments were deleted


def test_records_written_without_fsync_survive_a_killed_process(tmp_path: Path) -> None:
    """The page cache outlives a SIGKILLed process: what append(sync=False) returned from is kept."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from services.gateway.spool import Spool
        from tests.unit.gateway.test_spool import rec
        spool = Spool(Path({str(tmp_path)!r}), fsync=True)
        for i in range(50):
            spool.append([rec(i)], sync=False)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert drain(Spool(tmp_path)) == [rec(i) for i in range(50)]
