"""Default ports stay out of the kernel's ephemeral range, and ``stack up`` warns about one set inside it.

A server port inside that range can be taken, while its server is down, by the local end of any outgoing
connection on the machine; the server's restart then fails to bind. (A CI run lost 78 tests to exactly
that: the feedback service's old default, 50062, was taken during a restart of the stack.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services.feedback.settings import FeedbackSettings
from services.gateway.settings import GatewaySettings
from services.governance_api.settings import GovernanceSettings
from services.monitors.ledger.settings import LedgerSettings
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import ServiceSettings
from stack import manager
from stack.manager import Stack
from stack.processes import ephemeral_port_range
from stack.settings import StackSettings

#: Linux's default ephemeral range; the defaults must stay below it whatever this machine says.
LINUX_DEFAULT_LOW = 32768


def default_stack_ports() -> dict[str, int]:
    fields = StackSettings.model_fields
    return {name: f.default for name, f in fields.items() if name.endswith("_port")}


def test_every_default_stack_port_is_below_the_ephemeral_range() -> None:
    ports = default_stack_ports()
    assert len(ports) == 19
    assert {name: port for name, port in ports.items() if port >= LINUX_DEFAULT_LOW} == {}
    here = ephemeral_port_range()
    if here is not None:
        assert {name: p for name, p in ports.items() if here[0] <= p <= here[1]} == {}


@pytest.mark.parametrize(
    "settings",
    [ServiceSettings, GatewaySettings, FeedbackSettings, GovernanceSettings, LedgerSettings, MonitorRunnerSettings],
)
def test_every_service_default_port_is_below_the_ephemeral_range(settings: type[ServiceSettings]) -> None:
    for name in ("grpc_port", "metrics_port"):
        port = settings.model_fields[name].default
        assert 0 < port < LINUX_DEFAULT_LOW, f"{settings.__name__}.{name} = {port}"


def test_the_stack_and_service_defaults_agree() -> None:
    ports = default_stack_ports()
    assert GatewaySettings.model_fields["grpc_port"].default == ports["gateway_port"]
    assert FeedbackSettings.model_fields["grpc_port"].default == ports["feedback_port"]
    assert GovernanceSettings.model_fields["grpc_port"].default == ports["governance_port"]
    assert LedgerSettings.model_fields["grpc_port"].default == ports["ledger_port"]
    assert MonitorRunnerSettings.model_fields["grpc_port"].default == ports["monitor_port"]


def test_the_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    good = tmp_path / "range"
    good.write_text("32768\t60999\n")
    assert ephemeral_port_range(good) == (32768, 60999)
    garbage = tmp_path / "garbage"
    garbage.write_text("not ports\n")
    assert ephemeral_port_range(garbage) is None
    assert ephemeral_port_range(tmp_path / "missing") is None


@dataclass
class PortOnly:
    """A component reduced to what the preflight reads: its name, prerequisites and ports."""

    name: str
    port_map: dict[str, int]

    def check_prerequisites(self) -> None:
        return None

    def ports(self) -> dict[str, int]:
        return self.port_map


def test_up_warns_about_a_configured_port_inside_the_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "ephemeral_port_range", lambda: (40000, 40100))
    monkeypatch.setattr(manager, "port_in_use", lambda host, port: False)
    stack = Stack(StackSettings(state_dir=tmp_path))
    said: list[tuple[str, str]] = []
    inside = PortOnly("gateway", {"RADGUARD_STACK_GATEWAY_PORT": 40050, "RADGUARD_STACK_GATEWAY_METRICS_PORT": 19461})
    below = PortOnly("feedback", {"RADGUARD_STACK_FEEDBACK_PORT": 19062})
    stack._preflight([inside, below], lambda comp, msg: said.append((comp, msg)))  # type: ignore[list-item]
    assert said == [
        (
            "gateway",
            "warning: RADGUARD_STACK_GATEWAY_PORT=40050 lies in the kernel's ephemeral port range (40000-40100); "
            "an outgoing connection may take it while gateway is down: prefer a port below 40000",
        )
    ]
