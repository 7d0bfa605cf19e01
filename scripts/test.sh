#!/usr/bin/env bash
# The project's test command: lint, type-check, then the whole pytest suite — unit, contract,
# architecture and the integration tests against the real Kafka, PostgreSQL and Triton that the
# suite brings up itself (see tests/integration/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "[test] ruff"
ruff check .
ruff format --check . >/dev/null || { echo "[test] ruff format would change files: run 'ruff format .'"; ruff format --check .; }
echo "[test] mypy"
packages=()
for dir in kernel services governance stack sim modeling bench; do [ -d "$dir" ] && packages+=("$dir"); done
mypy "${packages[@]}"
echo "[test] pytest"
pytest "$@"
