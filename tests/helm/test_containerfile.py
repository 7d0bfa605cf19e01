"""The Containerfile, checked statically (no image registry is reachable here to build it, see the README).

It must build one image for every radguard process, run as a non-root user, keep compilers out of the final
stage and install the lock file as it is.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helm.chart import RADGUARD_MODULES, REPO

CONTAINERFILE = REPO / "Containerfile"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make", "cmake", "gfortran", "cargo", "rustc")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_two_stages_a_build_stage_and_a_runtime_stage() -> None:
    stages = _stages()
    assert [stage[0][1] for stage in stages] == ["${BASE} AS build", "${BASE} AS runtime"]


def test_the_final_stage_has_no_compilers_and_no_package_installs() -> None:
    final = _stages()[-1]
    for keyword, args in final:
        if keyword == "RUN":
            words = set(shlex.split(args.replace("&&", " ")))
            assert not words & set(COMPILERS), f"compiler in the final stage: {args}"
            assert "apt-get" not in words and "pip" not in words, f"package install in the final stage: {args}"
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert copies == ["--from=build --chown=0:0 /app /app"]  # only the built tree, nothing from the context


def test_the_compilers_stay_in_the_build_stage() -> None:
    build = _stages()[0]
    assert any("build-essential" in args for keyword, args in build if keyword == "RUN")


def test_the_lock_file_is_installed_as_it_is_without_dev_dependencies() -> None:
    build = _stages()[0]
    assert ("COPY", "pyproject.toml uv.lock README.md ./") in build
    syncs = [args for keyword, args in build if keyword == "RUN" and "uv sync" in args]
    assert syncs, "no uv sync in the build stage"
    for args in syncs:
        assert "--frozen" in args.split() and "--no-dev" in args.split(), args
    assert "uv lock" not in CONTAINERFILE.read_text()


def test_it_runs_as_a_non_root_user_matching_the_chart() -> None:
    final = _stages()[-1]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users == ["10001:10001"]
    # USER comes after every RUN: nothing runs as root once it is set.
    last_user = max(i for i, (keyword, _) in enumerate(final) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final[last_user:])
    values = (REPO / "helm" / "radguard" / "values.yaml").read_text()
    assert "runAsUser: 10001" in values


@pytest.mark.parametrize("module", RADGUARD_MODULES)
def test_every_process_the_chart_runs_is_in_the_image(module: str) -> None:
    copied = {args.split()[0] for keyword, args in _stages()[0] if keyword == "COPY"}
    top = module.split(".", maxsplit=1)[0]
    assert top in copied, f"{module}: its package {top}/ is not copied into the image"


def test_the_model_repository_the_init_container_copies_is_in_the_image() -> None:
    assert ("COPY", "model_repo ./model_repo") in _stages()[0]
    assert "path: /app/model_repo" in (REPO / "helm" / "radguard" / "values.yaml").read_text()


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".containerignore").read_text().split()
    for path in (".git", ".venv", ".radguard", "tests"):
        assert path in ignored
