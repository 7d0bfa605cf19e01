"""bench/gateway: what the gateway costs over calling Triton directly, next to what else one would deploy.

The same client (tritonclient.grpc.aio; the radguard stub for the radguard API), the same model and the
same concurrency are measured against these targets, interleaved within each run so machine noise hits
them alike:

- direct: Triton itself (the baseline);
- proxy: a bare grpc.aio pass-through proxy (raw bytes, no routing, no events): the least a Python hop costs;
- kserve: the peer, a KServe transformer (``kserve.Model`` served by ``kserve.ModelServer``, gRPC Open
  Inference Protocol) whose predict forwards to the same Triton (:mod:`bench.kserve_peer`), installed by
  this benchmark into its own environment (``.radguard/bench-peer-venv``, kserve from PyPI);
- gateway-oip: the gateway's Open Inference Protocol endpoint (routing, calibration, event capture);
- gateway-api: the gateway's radguard.inference.v1 Predict;
- gateway-oip-2p (with ``--processes 2``): a second gateway running two processes on one port (SO_REUSEPORT).

For both models (chest_nodule and placeholder) at concurrency 1 and 16 it prints the median over runs of
p50/p99 latency, throughput and the server process's CPU time per request (utime + stime from
``/proc/<pid>/stat``, children included), then the ratios the targets are stated in.

Run: ``.venv/bin/python -m bench.gateway [--models chest_nodule placeholder] [--runs 3] [--seconds 3]``
(brings the local stack up if it is not running; every server under test runs as its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.adapters.routes import publish_route, read_routes
from services.gateway.routing import Route
from stack.manager import Stack
from stack.settings import load_stack_settings

REPO = Path(__file__).resolve().parents[1]
#: The peer's own environment (never radguard's lock): kserve from PyPI.
PEER_VENV = REPO / ".radguard" / "bench-peer-venv"
PEER_PACKAGES = ("kserve==0.21.0", "tritonclient[grpc]>=2.51")
TARGETS = ("direct", "proxy", "kserve", "gateway-oip", "gateway-api")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunResult:
    p50_ms: float
    p99_ms: float
    rps: float
    #: CPU seconds the target's server process(es) spent per request (NaN for Triton itself).
    cpu_ms: float


Call = Callable[[int], Awaitable[None]]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its child processes (a multi-process gateway's workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14 and 15)
    return total


async def run_load(call: Call, concurrency: int, seconds: float, pid: int | None) -> RunResult:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    counter = itertools.count()

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call(next(counter))
            latencies.append(time.perf_counter() - t0)

    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu0) / len(latencies) * 1000 if pid else float("nan")
    arr = np.array(latencies) * 1000
    return RunResult(float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), len(latencies) / elapsed, cpu)


def wait_port(port: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def wait_serving(url: str, model: str, timeout_s: float = 90) -> None:
    client = triton_aio.InferenceServerClient(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                if await client.is_server_ready() and await client.is_model_ready(model):
                    return
            except Exception:
                pass
            await asyncio.sleep(0.2)
    finally:
        await client.close()
    raise RuntimeError(f"{url} not serving {model}")


def peer_python() -> Path:
    """The peer environment's interpreter, creating the environment (kserve from PyPI) the first time."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"installing the KServe peer into {PEER_VENV} (once)…", flush=True)
    uv = shutil.which("uv")
    base = [uv] if uv else [sys.executable, "-m", "uv"]
    try:
        subprocess.run([*base, "venv", "--python", "3.11", str(PEER_VENV)], check=True)
        subprocess.run([*base, "pip", "install", "--python", str(python), *PEER_PACKAGES], check=True)
    except (OSError, subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def gateway_env(settings_grpc: str, bootstrap: str, port: int, processes: int) -> dict[str, str]:
    return dict(
        os.environ,
        RADGUARD_GRPC_HOST="127.0.0.1",
        RADGUARD_GRPC_PORT=str(port),
        RADGUARD_METRICS_PORT="0",
        RADGUARD_TRITON_GRPC_URL=settings_grpc,
        RADGUARD_LOG_LEVEL="warning",
        RADGUARD_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        RADGUARD_SPOOL_DIR=tempfile.mkdtemp(prefix="bench-spool-"),
        RADGUARD_PSEUDONYM_KEY="bench-key-0123456789abcdef",
        RADGUARD_AUTH_MODE="insecure-dev",
        RADGUARD_PROCESSES=str(processes),
        RADGUARD_INSTANCE_ID=f"gw-bench-{processes}p",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["chest_nodule", "placeholder"])
    parser.add_argument("--version", default="1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--processes", type=int, default=1, help="also measure a gateway with this many processes")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help="a subset of the targets")
    parser.add_argument(
        "--baseline-repo",
        type=Path,
        default=None,
        help="also measure the gateway of another checkout (e.g. main) as gateway-oip-base: before/after in one run",
    )
    args = parser.parse_args()
    models = [m for m in args.models if (REPO / "model_repo" / m).exists()]

    settings = load_stack_settings()
    stack = Stack(settings)
    print("bringing the stack up…", flush=True)
    await asyncio.to_thread(stack.up)
    routes = await read_routes(settings.kafka_bootstrap)
    for model in models:
        current = routes.get(model)
        if (
            current is None
            or current.stable_version != args.version
            or current.canary_version
            or current.shadow_versions
        ):
            revision = (current.revision if current else 0) + 1
            route = Route(model, args.version, revision=revision, reason="bench/gateway")
            await publish_route(settings.kafka_bootstrap, route, producer="bench")

    names = ("gateway-oip", "proxy", "kserve", "kserve-http", "gateway-oip-2p", "gateway-oip-base")
    ports = {name: free_port() for name in names}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    gateway = [sys.executable, "-m", "services.gateway"]
    procs["gateway-oip"] = subprocess.Popen(
        gateway,
        env=gateway_env(settings.triton_grpc_url, settings.kafka_bootstrap, ports["gateway-oip"], 1),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if args.processes > 1:
        procs["gateway-oip-2p"] = subprocess.Popen(
            gateway,
            env=gateway_env(
                settings.triton_grpc_url, settings.kafka_bootstrap, ports["gateway-oip-2p"], args.processes
            ),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    if args.baseline_repo is not None:
        procs["gateway-oip-base"] = subprocess.Popen(
            gateway,
            env=gateway_env(settings.triton_grpc_url, settings.kafka_bootstrap, ports["gateway-oip-base"], 1),
            cwd=args.baseline_repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    procs["proxy"] = subprocess.Popen(
        [sys.executable, "-m", "bench.passthrough_proxy", str(ports["proxy"]), settings.triton_grpc_url], cwd=REPO
    )
    if "kserve" in args.targets:
        procs["kserve"] = subprocess.Popen(
            [
                str(peer_python()),
                str(REPO / "bench" / "kserve_peer.py"),
                str(ports["kserve"]),
                str(ports["kserve-http"]),
                settings.triton_grpc_url,
                *models,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        for name, proc in procs.items():
            wait_port(ports[name])
            for model in models:
                await wait_serving(f"127.0.0.1:{ports[name]}", model)
            print(f"  {name} serving (pid {proc.pid})", flush=True)
        await asyncio.sleep(1.5)  # let the gateways read the routes topic
        urls = {name: f"127.0.0.1:{port}" for name, port in ports.items() if name in procs}
        urls["direct"] = settings.triton_grpc_url
        urls["gateway-api"] = urls["gateway-oip"]
        pids = {name: proc.pid for name, proc in procs.items()}
        pids["gateway-api"] = pids["gateway-oip"]
        extra = [t for t in ("gateway-oip-2p", "gateway-oip-base") if t in procs]
        targets = [t for t in args.targets if t in urls] + extra
        results: dict[tuple[str, str, int], list[RunResult]] = {}
        for model in models:
            results.update(await bench(model, args, targets, urls, pids))
        report(models, args, targets, results)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(30)


async def bench(
    model: str, args: argparse.Namespace, targets: list[str], urls: dict[str, str], pids: dict[str, int]
) -> dict[tuple[str, str, int], list[RunResult]]:
    img = np.random.default_rng(0).normal(0.3, 0.2, (1, 1, 128, 128)).astype(np.float32)
    tensor = InferInput("IMAGE", list(img.shape), "FP32")
    tensor.set_data_from_numpy(img)
    clients = {name: triton_aio.InferenceServerClient(urls[name]) for name in targets if name != "gateway-api"}
    channel = grpc.aio.insecure_channel(urls["gateway-oip"])
    stub = inference_pb2_grpc.InferenceGatewayStub(channel)
    api_req = inference_pb2.PredictRequest(
        model_name=model,
        study=common_pb2.StudyRef(study_instance_uid="2.25.1"),
        patient=common_pb2.PatientRef(patient_id="BENCH-1"),
        patient_context=common_pb2.PatientContext(sex=common_pb2.SEX_FEMALE, age_years=60),
        tensor=common_pb2.Tensor(data=img.tobytes(), shape=list(img.shape), dtype=common_pb2.DATA_TYPE_FLOAT32),
    )
    run_id = uuid.uuid4().hex[:8]
    ids = itertools.count()

    def triton_call(name: str) -> Call:
        client = clients[name]
        radiology = name.startswith("gateway")
        params = {"study_instance_uid": "2.25.1", "patient_id": "BENCH-1"} if radiology else None
        version = args.version  # the same version on every target (the gateway's route serves it)

        async def call(i: int) -> None:
            await client.infer(
                model, [tensor], model_version=version, request_id=f"{run_id}-{next(ids)}", parameters=params
            )

        return call

    async def api_call(i: int) -> None:
        req = inference_pb2.PredictRequest()
        req.CopyFrom(api_req)
        req.request_id = f"{run_id}-api-{next(ids)}"
        await stub.Predict(req)

    calls: dict[str, Call] = {name: triton_call(name) for name in clients}
    calls["gateway-api"] = api_call
    order = [t for t in targets if t in calls]
    results: dict[tuple[str, str, int], list[RunResult]] = {}
    for conc in args.concurrency:
        for name in order:
            await run_load(calls[name], conc, 1.0, None)  # warm-up
        for run in range(args.runs):
            for name in order:
                pid = pids.get(name)
                results.setdefault((model, name, conc), []).append(await run_load(calls[name], conc, args.seconds, pid))
            print(f"  {model} concurrency {conc}: run {run + 1}/{args.runs} done", flush=True)
    for client in clients.values():
        await client.close()
    await channel.close(None)
    return results


def report(
    models: list[str],
    args: argparse.Namespace,
    targets: list[str],
    results: dict[tuple[str, str, int], list[RunResult]],
) -> None:
    def med(model: str, name: str, conc: int) -> RunResult:
        runs = results[(model, name, conc)]
        return RunResult(
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            statistics.median(r.rps for r in runs),
            statistics.median(r.cpu_ms for r in runs),
        )

    print(f"\nbench/gateway — {args.runs} runs × {args.seconds:.0f}s per target, medians over runs")
    for model in models:
        print(f"\nmodel {model}")
        print(f"{'target':<16}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'CPU ms/req':>12}")
        for conc in args.concurrency:
            for name in targets:
                if (model, name, conc) in results:
                    r = med(model, name, conc)
                    cpu = "—" if r.cpu_ms != r.cpu_ms else f"{r.cpu_ms:.3f}"
                    print(f"{name:<16}{conc:>5}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.rps:>9.0f}{cpu:>12}")
        print("ratios (added p50 over direct; throughput as a share of direct)")
        for conc in args.concurrency:
            base = med(model, "direct", conc)
            for name in targets:
                if name == "direct" or (model, name, conc) not in results:
                    continue
                r = med(model, name, conc)
                print(
                    f"  c={conc:<3}{name:<16} +{r.p50_ms - base.p50_ms:5.2f} ms p50  "
                    f"+{r.p99_ms - base.p99_ms:6.2f} ms p99  {r.rps / base.rps:6.1%} of direct"
                )
        print("targets")
        for gw in ("gateway-oip", "gateway-api"):
            if (model, gw, 1) not in results:
                continue
            base1 = med(model, "direct", 1)
            added = med(model, gw, 1).p50_ms - base1.p50_ms
            if (model, "kserve", 1) in results:
                kserve_added = med(model, "kserve", 1).p50_ms - base1.p50_ms
                verdict = "met" if added <= kserve_added / 2 else "missed"
                print(f"  {gw}: c=1 added p50 {added:.2f} ms vs KServe's {kserve_added:.2f} ms (≤ half): {verdict}")
            if (model, "proxy", 1) in results:
                proxy_added = med(model, "proxy", 1).p50_ms - base1.p50_ms
                verdict = "met" if added - proxy_added <= 1.0 else "missed"
                print(f"  {gw}: c=1 added p50 {added - proxy_added:+.2f} ms over the bare proxy's (≤ 1 ms): {verdict}")
            if (model, gw, 16) in results and (model, "kserve", 16) in results:
                ratio = med(model, gw, 16).rps / med(model, "kserve", 16).rps
                print(f"  {gw}: c=16 throughput {ratio:.2f}× KServe's (≥ 1): {'met' if ratio >= 1 else 'missed'}")
        if (model, "gateway-oip-base", 1) in results:
            for conc in args.concurrency:
                now, base = med(model, "gateway-oip", conc), med(model, "gateway-oip-base", conc)
                print(
                    f"  c={conc}: gateway-oip CPU {now.cpu_ms:.3f} ms/req, before (baseline checkout) "
                    f"{base.cpu_ms:.3f}; throughput {now.rps / base.rps:.2f}× the baseline's"
                )
        if (model, "gateway-oip-2p", 16) in results:
            ratio = med(model, "gateway-oip-2p", 16).rps / med(model, "gateway-oip", 16).rps
            print(f"  {args.processes} gateway processes vs 1 at c=16: {ratio:.2f}× the throughput")


if __name__ == "__main__":
    asyncio.run(main())
