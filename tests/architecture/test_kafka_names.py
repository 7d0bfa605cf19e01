"""One fact, one place: every Kafka topic name and the ledger's consumer group are written once, in
``kernel/topics.py``; any other source file that spells one as a string literal would drift from it."""

from __future__ import annotations

import ast
from pathlib import Path

from kernel import topics

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOTS = ("services", "governance", "stack", "sim", "modeling", "bench", "kernel", "model_repo")
NAMES = {
    value
    for name, value in vars(topics).items()
    if name.isupper() and isinstance(value, str) and value.startswith("radguard")
}


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value in NAMES
    ]


def test_the_names_are_the_ones_the_stack_creates() -> None:
    assert {
        "radguard.predictions.v1",
        "radguard.reviews.v1",
        "radguard.findings.v1",
        "radguard.routes.v1",
        "radguard.audit.v1",
        "radguard-ledger",
    } == NAMES
    from stack.topics import TOPICS

    assert {spec.name for spec in TOPICS} == NAMES - {topics.LEDGER_GROUP}


def test_no_source_file_but_kernel_topics_spells_a_kafka_name() -> None:
    found = []
    for root in ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            if path.name.endswith("_pb2.py") or path == REPO_ROOT / "kernel" / "topics.py":
                continue
            found.extend(f"{path.relative_to(REPO_ROOT)}:{line}: {value}" for line, value in _literals(path))
    assert found == [], "import the name from kernel.topics instead"
