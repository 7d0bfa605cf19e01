"""Regenerates the Python modules of radguard's protobuf contracts, or checks that they are up to date.

Usage::

    python proto/generate.py            # rewrite *_pb2.py, *_pb2.pyi, *_pb2_grpc.py beside each .proto
    python proto/generate.py --out DIR  # write the same tree under DIR instead
    python proto/generate.py --check    # regenerate into a temp dir; exit 1 naming every stale file

Sources are found under ``proto/radguard`` and compiled with ``-I proto``, so generated imports read
``from radguard.common.v1 import common_pb2``. Only files with the generated suffixes are ever written or
deleted; the hand-written ``__init__.py`` files are left alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
"""Include root of the contracts: the directory holding the ``radguard`` package."""

PACKAGE = "radguard"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


class GenerationError(RuntimeError):
    """protoc rejected the sources, or there were none to compile."""


def proto_sources(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Lists the contract sources.

    Args:
        proto_root: Include root holding the ``radguard`` package.

    Returns:
        Paths of every ``.proto`` under ``proto_root/radguard``, relative to ``proto_root``, sorted.
    """
    return sorted(path.relative_to(proto_root) for path in (proto_root / PACKAGE).rglob("*.proto"))


def is_generated(path: Path) -> bool:
    """Tells whether a file name is one protoc's Python plugins produce."""
    return path.name.endswith(GENERATED_SUFFIXES)


def generated_files(root: Path) -> list[Path]:
    """Lists the generated modules present in a tree.

    Args:
        root: Directory holding a ``radguard`` package (the proto root or a ``--out`` directory).

    Returns:
        Paths relative to ``root``, sorted; empty if ``root/radguard`` does not exist.
    """
    package = root / PACKAGE
    if not package.is_dir():
        return []
    found = (path for path in package.rglob("*") if path.is_file() and is_generated(path))
    return sorted(path.relative_to(root) for path in found)


def generate(out_root: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Compiles every contract into ``out_root``.

    Generated files already under ``out_root/radguard`` are deleted first, so a removed or renamed
    ``.proto`` leaves no orphan module behind. Output depends only on the sources and the installed
    grpcio-tools, so two runs produce identical bytes.

    Args:
        out_root: Directory to write the ``radguard/...`` tree into; created if missing. May equal
            ``proto_root`` (the normal in-place regeneration).
        proto_root: Include root holding the ``radguard`` package with the ``.proto`` sources.

    Returns:
        The generated files, relative to ``out_root``, sorted.

    Raises:
        GenerationError: There are no sources, or protoc reported an error (printed on stderr).
    """
    sources = proto_sources(proto_root)
    if not sources:
        raise GenerationError(f"no .proto files under {proto_root / PACKAGE}")
    out_root.mkdir(parents=True, exist_ok=True)
    for stale in generated_files(out_root):
        (out_root / stale).unlink()
    # The well-known types (google/protobuf/*.proto) ship inside grpcio-tools; using that copy keeps the
    # build independent of any system protobuf installation.
    with resources.as_file(resources.files("grpc_tools") / "_proto") as well_known:
        args = [
            "grpc_tools.protoc",
            f"--proto_path={proto_root}",
            f"--proto_path={well_known}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            # Absolute paths: protoc maps them onto the include root, so the import paths baked into the
            # output never depend on the caller's working directory.
            *(str(proto_root / source) for source in sources),
        ]
        status = protoc.main(args)
    if status != 0:
        raise GenerationError(f"protoc exited with status {status}")
    return generated_files(out_root)


def diff_trees(expected: Path, actual: Path) -> list[str]:
    """Compares the generated modules of two trees.

    Args:
        expected: Tree freshly generated from the sources.
        actual: Tree under test (normally the committed proto root).

    Returns:
        One line per problem, sorted by path: ``differs: <path>``, ``missing: <path>`` (generated from the
        sources but absent from ``actual``) or ``extra: <path>`` (in ``actual`` but no source produces
        it). Empty when the trees agree.
    """
    wanted = set(generated_files(expected))
    present = set(generated_files(actual))
    problems: list[str] = []
    for path in sorted(wanted | present):
        if path not in present:
            problems.append(f"missing: {path.as_posix()}")
        elif path not in wanted:
            problems.append(f"extra: {path.as_posix()}")
        elif (expected / path).read_bytes() != (actual / path).read_bytes():
            problems.append(f"differs: {path.as_posix()}")
    return problems


def check(proto_root: Path = PROTO_ROOT) -> list[str]:
    """Regenerates into a temporary directory and compares with the modules beside the sources.

    Args:
        proto_root: Include root holding the sources and the committed generated modules.

    Returns:
        The problems :func:`diff_trees` reports; empty when the committed modules are current.
    """
    with tempfile.TemporaryDirectory(prefix="radguard-proto-") as scratch:
        fresh = Path(scratch)
        generate(fresh, proto_root)
        return diff_trees(fresh, proto_root)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        Process exit status: 0 on success, 1 when ``--check`` finds stale files, 2 when protoc fails.
    """
    parser = argparse.ArgumentParser(description="Generate (or check) radguard's protobuf Python modules.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--out", type=Path, help="write the generated tree here instead of beside the sources")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed modules are stale")
    options = parser.parse_args(argv)
    try:
        if options.check:
            problems = check()
            for problem in problems:
                print(problem)
            if problems:
                print("generated contracts are stale: run `python proto/generate.py`", file=sys.stderr)
                return 1
            return 0
        out_root = options.out.resolve() if options.out else PROTO_ROOT
        written = generate(out_root)
    except GenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {out_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
