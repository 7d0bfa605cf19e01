"""``radguard monitor run``: settings from options and RADGUARD_* variables reach the process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import monitor_commands
from services.cli.main import app as cli
from services.monitors.core.findings import MonitorKind
from services.monitors.runner.settings import MonitorRunnerSettings


def test_monitor_run_once_passes_options_and_environment_to_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[MonitorRunnerSettings, bool]] = []

    async def fake_process(settings: MonitorRunnerSettings, *, once: bool) -> int:
        seen.append((settings, once))
        return 3

    monkeypatch.setattr(monitor_commands, "run_monitor_process", fake_process)
    env = {
        "RADGUARD_MONITOR_VERSIONS": '["3", "4"]',
        "RADGUARD_MONITOR_KINDS": '["drift"]',
        "RADGUARD_MONITOR_REPORTS_DIR": "/tmp/reports",
    }
    result = CliRunner(env=env).invoke(
        cli, ["monitor", "run", "--once", "--dsn", "postgresql://u@h:1/db", "--bootstrap", "k:9"]
    )
    assert result.exit_code == 0, result.output
    assert "3 findings issued" in result.output
    ((settings, once),) = seen
    assert once is True
    assert settings.postgres_dsn.get_secret_value() == "postgresql://u@h:1/db"
    assert settings.kafka_bootstrap_servers == "k:9"
    assert settings.monitor_versions == ("3", "4")
    assert settings.monitor_kinds == (MonitorKind.DRIFT,)
    assert settings.monitor_reports_dir == Path("/tmp/reports")


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(settings: MonitorRunnerSettings, *, once: bool) -> int:
        raise AssertionError("must not start")

    monkeypatch.setattr(monitor_commands, "run_monitor_process", never)
    result = CliRunner(env={"RADGUARD_MONITOR_BLOCK_SIZE": "1"}).invoke(
        cli, ["monitor", "run", "--once", "--dsn", "postgresql://u@h:1/db", "--bootstrap", "k:9"]
    )
    assert result.exit_code != 0
    assert "MONITOR_BLOCK_SIZE" in str(result.exception).upper()
