"""The committed contract modules are exactly what proto/generate.py makes from the committed sources."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
INFERENCE_PROTO = Path("radguard/inference/v1/inference.proto")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """proto/generate.py, loaded from its path (proto/ is a source folder, not a package)."""
    spec = importlib.util.spec_from_file_location("radguard_proto_generate", PROTO_ROOT / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh_tree(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contracts regenerated from the committed sources into a temporary root."""
    out = tmp_path_factory.mktemp("fresh")
    generator.generate(out)
    return out


def _copy_sources(destination: Path) -> Path:
    """Copies proto/ without generated modules or caches, as a developer's edited checkout would be."""
    shutil.copytree(
        PROTO_ROOT,
        destination,
        ignore=shutil.ignore_patterns("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "__pycache__"),
    )
    return destination


def test_committed_modules_match_a_fresh_generation(generator: ModuleType, fresh_tree: Path) -> None:
    problems = generator.diff_trees(fresh_tree, PROTO_ROOT)
    assert problems == [], "stale generated contracts, run `python proto/generate.py`:\n" + "\n".join(problems)


def test_every_source_yields_its_three_modules(generator: ModuleType, fresh_tree: Path) -> None:
    expected = sorted(
        source.with_name(source.stem + suffix)
        for source in generator.proto_sources(PROTO_ROOT)
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
    )
    assert len(expected) == 18  # six areas
    assert generator.generated_files(fresh_tree) == expected


def test_generation_is_deterministic_and_independent_of_the_source_location(
    generator: ModuleType, fresh_tree: Path, tmp_path: Path
) -> None:
    moved_sources = _copy_sources(tmp_path / "elsewhere")
    again = tmp_path / "again"
    generator.generate(again, moved_sources)
    assert generator.diff_trees(fresh_tree, again) == []


def test_a_changed_field_is_reported_by_file(generator: ModuleType, tmp_path: Path) -> None:
    sources = _copy_sources(tmp_path / "src")
    proto = sources / INFERENCE_PROTO
    text = proto.read_text()
    field = "  string model_name = 1;\n}\n"  # GetRouteRequest's only field, the last message in the file
    assert text.endswith(field)
    proto.write_text(text.replace(field, "  string model = 1;\n}\n"))
    out = tmp_path / "out"
    generator.generate(out, sources)

    problems = generator.diff_trees(out, PROTO_ROOT)

    # Renaming a field changes the embedded descriptor and the stub, not the gRPC module.
    assert problems == [
        "differs: radguard/inference/v1/inference_pb2.py",
        "differs: radguard/inference/v1/inference_pb2.pyi",
    ]


def test_missing_and_extra_modules_are_reported(generator: ModuleType, fresh_tree: Path, tmp_path: Path) -> None:
    committed = tmp_path / "committed"
    shutil.copytree(fresh_tree, committed)
    (committed / "radguard/feedback/v1/feedback_pb2_grpc.py").unlink()
    (committed / "radguard/common/v1/legacy_pb2.py").write_text("# left behind by a deleted legacy.proto\n")
    (committed / "radguard/common/v1/notes.py").write_text("# hand-written, not the generator's business\n")

    assert generator.diff_trees(fresh_tree, committed) == [
        "extra: radguard/common/v1/legacy_pb2.py",
        "missing: radguard/feedback/v1/feedback_pb2_grpc.py",
    ]


def test_check_flags_an_edited_source_against_its_committed_modules(generator: ModuleType, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(PROTO_ROOT, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    assert generator.check(checkout) == []

    proto = checkout / "radguard/common/v1/common.proto"
    proto.write_text(proto.read_text().replace("string view_position = 8;", "string view = 8;"))

    assert generator.check(checkout) == [
        "differs: radguard/common/v1/common_pb2.py",
        "differs: radguard/common/v1/common_pb2.pyi",
    ]


def test_in_place_generation_removes_orphans_and_keeps_hand_written_files(
    generator: ModuleType, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(PROTO_ROOT, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    orphan = checkout / "radguard/events/v1/retired_pb2.py"
    orphan.write_text("# generated from a .proto that no longer exists\n")
    marker = checkout / "radguard/events/v1/__init__.py"
    marker_before = marker.read_bytes()

    written = generator.generate(checkout, checkout)

    assert not orphan.exists()
    assert marker.read_bytes() == marker_before
    assert len(written) == 18
    assert generator.diff_trees(checkout, PROTO_ROOT) == []


def test_command_line_writes_to_out_and_rejects_both_modes(generator: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert generator.main(["--out", str(out)]) == 0
    assert (out / "radguard/governance/v1/governance_pb2_grpc.py").is_file()
    with pytest.raises(SystemExit) as exit_info:
        generator.main(["--check", "--out", str(out)])
    assert exit_info.value.code == 2
