"""``radguard simulate``: drive the running stack with a seeded simulated hospital.

Studies go through the gateway, each radiologist's read through the feedback service after its simulated
delay; a live display shows what was sent and acknowledged, and a summary follows (also on Ctrl-C, which
stops sending, waits for the answers in flight and delivers the pending reads at once).
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from stack.processes import StackError

if TYPE_CHECKING:
    from services.cli.traffic import DriverStats, HospitalDriver
    from sim import Hospital

_out = Console()


@dataclass(frozen=True)
class Endpoints:
    """Where the gateway and the feedback service answer, and the tokens to call them with."""

    gateway: str
    feedback: str
    gateway_token: str
    feedback_token: str


def stack_endpoints(gateway: str | None = None, feedback: str | None = None) -> Endpoints:
    """The local stack's endpoints and tokens, overridden by options and ``RADGUARD_*_TOKEN`` variables."""
    import os

    from stack.components.services import client_tokens
    from stack.settings import load_stack_settings

    settings = load_stack_settings()
    tokens = client_tokens(settings.state_dir)
    return Endpoints(
        gateway=gateway or os.environ.get("RADGUARD_GATEWAY_URL") or settings.gateway_url,
        feedback=feedback or os.environ.get("RADGUARD_FEEDBACK_URL") or f"{settings.host}:{settings.feedback_port}",
        gateway_token=os.environ.get("RADGUARD_GATEWAY_TOKEN") or tokens.get("RADGUARD_GATEWAY_TOKEN", ""),
        feedback_token=os.environ.get("RADGUARD_FEEDBACK_TOKEN") or tokens.get("RADGUARD_FEEDBACK_TOKEN", ""),
    )


def hospital(scenario: str, seed: int) -> Hospital:
    """The simulated hospital; an unknown scenario is one line naming the shipped ones."""
    from sim import Hospital, ScenarioError

    try:
        return Hospital(scenario, seed=seed)
    except ScenarioError as exc:
        raise StackError(str(exc)) from None
    except ValueError as exc:
        raise StackError(f"--seed: {exc}") from None


async def require_service(name: str, target: str, timeout_s: float = 3.0) -> None:
    """Fail with one line saying how to start the stack when nothing answers at ``target``."""
    from services.cli import channels

    async with channels.aio_channel(target) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise StackError(
                f"no {name} answering at {target}: start the stack with `radguard stack up` "
                "(or pass --gateway/--feedback)"
            ) from None


def progress_table(stats: DriverStats, title: str) -> Table:
    """Sent, answered, reads, errors by status and rate, as one table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="cyan")
    table.add_column()
    table.add_row("sent", str(stats.sent))
    table.add_row("answered", str(stats.answered))
    table.add_row("reads recorded", str(stats.reads))
    errors = ", ".join(f"{name} {count}" for name, count in sorted(stats.errors.items())) or "none"
    table.add_row("errors", errors)
    table.add_row("rate", f"{stats.rate:.1f} studies/s over {stats.elapsed_s:.1f} s")
    arms = ", ".join(f"{arm} v{version}: {n}" for (arm, version), n in sorted(stats.answered_by_arm.items()))
    table.add_row("answered by arm", arms or "-")
    sites = ", ".join(f"{site}: {n}" for site, n in sorted(stats.answered_by_site.items()))
    table.add_row("answered by site", sites or "-")
    return table


async def drive(
    driver: HospitalDriver,
    *,
    studies: int | None,
    duration_s: float | None,
    rate: float | None,
    title: str,
    console: Console = _out,
    announce: bool = False,
) -> DriverStats:
    """Run ``driver`` with a live display; SIGINT stops it cleanly (``announce``: say so on stderr first)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError):  # not the main thread (tests)
        handled = False
    if announce:
        Console(stderr=True).print(f"{title}: Ctrl-C stops and prints the summary", highlight=False)
    run = asyncio.create_task(driver.run(studies, duration_s=duration_s, rate=rate, stop=stop))
    try:
        with Live(
            Group(progress_table(driver.stats, title)), console=console, refresh_per_second=4, transient=True
        ) as live:
            while not run.done():
                await asyncio.wait({run}, timeout=0.25)
                live.update(Group(progress_table(driver.stats, title)))
        return run.result()
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)


def simulate(
    scenario: Annotated[
        str, typer.Option("--scenario", help="a shipped scenario's name or a scenario YAML file")
    ] = "baseline",
    seed: Annotated[int, typer.Option("--seed", min=0, help="simulator seed")] = 1,
    studies: Annotated[int | None, typer.Option("--studies", "-n", min=1, help="how many studies to send")] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="seconds to run (with or without --studies)")
    ] = None,
    rate: Annotated[
        float, typer.Option("--rate", min=0.0, help="studies per second; 0 sends as fast as possible")
    ] = 0.0,
    start_index: Annotated[int, typer.Option("--start-index", min=0, help="index of the first study")] = 0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="predictions in flight")] = 4,
    read_delay_scale: Annotated[
        float,
        typer.Option("--read-delay-scale", min=0.0, help="wall seconds per simulated minute of a read's delay"),
    ] = 0.01,
    dicom: Annotated[
        bool, typer.Option("--dicom", help="send each study as a DICOM file (default: pixels plus metadata)")
    ] = False,
    reads: Annotated[bool, typer.Option("--reads/--no-reads", help="send the radiologists' reads")] = True,
    model: Annotated[str, typer.Option("--model", help="model name")] = "chest_nodule",
    gateway: Annotated[str | None, typer.Option("--gateway", help="gateway host:port (default: the stack's)")] = None,
    feedback: Annotated[
        str | None, typer.Option("--feedback", help="feedback service host:port (default: the stack's)")
    ] = None,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="also write the summary (with every id) to this file")
    ] = None,
) -> None:
    """Drive the stack with a seeded simulated hospital: studies and radiologists' reads."""
    if studies is None and duration is None:
        raise StackError("give --studies N, --duration SECONDS or both")
    from services.cli.traffic import FeedbackReads, HospitalDriver

    place = hospital(scenario, seed)
    endpoints = stack_endpoints(gateway, feedback)

    async def main() -> DriverStats:
        await require_service("gateway", endpoints.gateway)
        if reads:
            await require_service("feedback service", endpoints.feedback)
        driver = HospitalDriver(
            place,
            endpoints.gateway,
            FeedbackReads(endpoints.feedback, endpoints.feedback_token) if reads else None,
            gateway_token=endpoints.gateway_token,
            model=model,
            concurrency=concurrency,
            read_delay_scale=read_delay_scale,
            next_index=start_index,
            dicom=dicom,
        )
        title = f"simulating {place.scenario.name} (seed {seed})"
        try:
            return await drive(
                driver, studies=studies, duration_s=duration, rate=rate or None, title=title, announce=True
            )
        finally:
            if driver.reads is not None:
                await driver.reads.close()

    stats = asyncio.run(main())
    heading = "interrupted: summary" if stats.interrupted else "summary"
    _out.print(progress_table(stats, f"{heading} of {place.scenario.name} (seed {seed})"))
    if summary_json is not None:
        summary_json.write_text(json.dumps(stats.as_json(), indent=1), encoding="utf-8")
    if stats.errors.get("predict NOT_FOUND"):
        _out.print(f"hint: the gateway serves no route for {model}: `radguard routes set {model} --stable 1`")
    if stats.errors:
        raise typer.Exit(1)
