#!/usr/bin/env bash
# Prepare this clone on a fresh Debian 12 machine: system packages (only if absent), the Python
# environment from the lock file, and the Kafka broker's jars. Safe to run again: each step
# notices when there is nothing to do. Caches live outside the clone (uv's cache, ~/.cache/radguard).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
log() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "[setup] error: need root to run: $*" >&2; exit 1; fi
}

# --- system packages (Debian), installed only when missing ------------------------------------
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql-15)
command -v promtool >/dev/null || missing+=(prometheus)  # promtool checks the Helm chart's alert rules
# The dashboard's browser tests drive Debian's Chromium through Playwright (its own download does not work here).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

# --- Python environment from uv.lock ---------------------------------------------------------
PY=python3.11
command -v "$PY" >/dev/null || PY=python3
if [ "$("$PY" -m uv --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
  log "installing uv $UV_VERSION"
  "$PY" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
log "creating .venv from uv.lock (uv cache: ${UV_CACHE_DIR:-~/.cache/uv}), compiling its bytecode"
# Compiled once here: with PYTHONDONTWRITEBYTECODE set (as on many CI machines and in the image), every
# process would otherwise compile every module it imports, each time (a CLI call: ~0.5 s of its ~1 s).
UV_PROJECT_ENVIRONMENT="$PWD/.venv" "$PY" -m uv sync --frozen --python "$PY" --quiet --compile-bytecode

# --- Helm (for tests/helm), built once from the Go module proxy into ~/.cache/radguard/bin -------------
HELM_VERSION=v3.21.4
HELM="$HOME/.cache/radguard/bin/helm"
GO=$(command -v go || echo /usr/local/go/bin/go)
helm_current() {  # the cached binary is this version (go install stamps its module version into it)
  [ -x "$HELM" ] && { [ ! -x "$GO" ] || "$GO" version -m "$HELM" | grep -Eq "helm.sh/helm/v3[[:space:]]+${HELM_VERSION}"; }
}
if ! helm_current; then
  [ -x "$GO" ] || { echo "[setup] error: Go is needed to install helm ${HELM_VERSION} (go install)" >&2; exit 1; }
  log "installing helm ${HELM_VERSION} into $(dirname "$HELM") (go install, a few minutes once)"
  mkdir -p "$(dirname "$HELM")"
  (cd /tmp && GOBIN="$(dirname "$HELM")" "$GO" install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
fi

# --- Kafka jars (cached by the pom's hash) ------------------------------------------------------
log "resolving Kafka jars"
.venv/bin/python - <<'PY'
from stack.components.kafka import Kafka
from stack.components.base import Layout
from stack.settings import load_stack_settings

settings = load_stack_settings()
print(f"[setup] Kafka jars in {Kafka(settings, Layout(settings.state_dir)).resolve_libs()}")
PY
log "done: .venv is ready; next: .venv/bin/radguard stack up"
