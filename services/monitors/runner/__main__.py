"""Run the monitors: ``python -m services.monitors.runner [--once]`` (settings from ``RADGUARD_*`` variables)."""

from __future__ import annotations

import asyncio
import sys

from services.monitors.runner.app import run_monitor_process
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import ConfigError, load_settings
from services.runtime.errors import Unavailable
from services.runtime.telemetry import setup_telemetry


def main(argv: list[str] | None = None) -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    once = "--once" in (sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(MonitorRunnerSettings)
        setup_telemetry(settings)
        asyncio.run(run_monitor_process(settings, once=once))
    except ConfigError as exc:
        print(f"monitor-runner: {exc}", file=sys.stderr)
        sys.exit(2)
    except Unavailable as exc:
        print(f"monitor-runner: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
