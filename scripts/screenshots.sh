#!/usr/bin/env bash
# Regenerates the dashboard screenshots in docs/images/ (used by the README's board section) from the browser
# test, which drives Debian's Chromium against the dashboard over the real stack with simulator traffic.
# Needs the stack's settings in the environment (as for any integration test); starts the stack if it is down.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest tests/e2e/test_dashboard_browser.py -q -p no:cacheprovider
mkdir -p docs/images
cp tmp/artifacts/version.png docs/images/dashboard-version.png
cp tmp/artifacts/rollout.png docs/images/dashboard-rollout.png
echo "[screenshots] docs/images/dashboard-version.png, docs/images/dashboard-rollout.png"
