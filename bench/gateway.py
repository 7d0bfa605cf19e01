"""bench/gateway: what the gateway costs over calling Triton directly.

The same client (tritonclient.grpc.aio, or the radguard stub for the radguard API) and the same model
are measured against four targets, at concurrency 1 and 16, over repeated runs:

- direct: Triton itself (the baseline);
- proxy: a bare grpc.aio pass-through proxy (raw bytes, no routing, no events) — the second baseline;
- gateway-oip: the gateway's Open Inference Protocol endpoint (routing, calibration, event capture);
- gateway-api: the gateway's radguard.inference.v1 Predict.

Printed: median over runs of p50/p99 latency and throughput per target, then the gateway's added
latency (ms) and throughput ratio against direct and against the bare proxy.

Run: ``.venv/bin/python -m bench.gateway [--model chest_nodule] [--runs 5] [--seconds 4]``
(brings the local stack up if it is not running; the gateway and proxy run as their own processes).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunResult:
    p50_ms: float
    p99_ms: float
    rps: float


Call = Callable[[int], Awaitable[None]]


async def run_load(call: Call, concurrency: int, seconds: float) -> RunResult:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            counter += 1
            t0 = time.perf_counter()
            await call(counter)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    arr = np.array(latencies) * 1000
    return RunResult(float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), len(latencies) / elapsed)


def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def wait_serving(url: str, model: str, timeout_s: float = 60) -> None:
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model name (default: chest_nodule if present)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    model = args.model or ("chest_nodule" if (REPO / "model_repo" / "chest_nodule").exists() else "placeholder")

    settings = load_stack_settings()
    stack = Stack(settings)
    print("bringing the stack up…", flush=True)
    await asyncio.to_thread(stack.up)
    current = (await read_routes(settings.kafka_bootstrap)).get(model)
    if current is None or current.stable_version != args.version or current.canary_version or current.shadow_versions:
        await publish_route(
            settings.kafka_bootstrap,
            Route(model, args.version, revision=(current.revision if current else 0) + 1, reason="bench/gateway"),
            producer="bench",
        )

    gw_port, proxy_port = free_port(), free_port()
    spool = tempfile.mkdtemp(prefix="bench-spool-")
    env = dict(
        os.environ,
        RADGUARD_GRPC_HOST="127.0.0.1",
        RADGUARD_GRPC_PORT=str(gw_port),
        RADGUARD_METRICS_PORT="0",
        RADGUARD_TRITON_GRPC_URL=settings.triton_grpc_url,
        RADGUARD_LOG_LEVEL="warning",
        RADGUARD_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap,
        RADGUARD_SPOOL_DIR=spool,
        RADGUARD_PSEUDONYM_KEY="bench-key-0123456789abcdef",
        RADGUARD_AUTH_MODE="insecure-dev",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bench.passthrough_proxy", str(proxy_port), settings.triton_grpc_url], cwd=REPO
        ),
    ]
    try:
        wait_port(gw_port)
        wait_port(proxy_port)
        await wait_serving(f"127.0.0.1:{gw_port}", model)
        await asyncio.sleep(1.5)  # let the gateway read the routes topic
        await bench(model, args, settings.triton_grpc_url, f"127.0.0.1:{proxy_port}", f"127.0.0.1:{gw_port}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)


async def bench(model: str, args: argparse.Namespace, direct_url: str, proxy_url: str, gw_url: str) -> None:
    img = np.random.default_rng(0).normal(0.3, 0.2, (1, 1, 128, 128)).astype(np.float32)
    tensor = InferInput("IMAGE", list(img.shape), "FP32")
    tensor.set_data_from_numpy(img)
    clients = {
        name: triton_aio.InferenceServerClient(url)
        for name, url in (("direct", direct_url), ("proxy", proxy_url), ("gateway-oip", gw_url))
    }
    channel = grpc.aio.insecure_channel(gw_url)
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
        params = {"study_instance_uid": "2.25.1", "patient_id": "BENCH-1"} if name == "gateway-oip" else None
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

    targets: dict[str, Call] = {name: triton_call(name) for name in clients}
    targets["gateway-api"] = api_call
    results: dict[tuple[str, int], list[RunResult]] = {}
    for conc in args.concurrency:
        for call in targets.values():
            await run_load(call, conc, 1.0)  # warm-up
        for run in range(args.runs):
            # Interleave targets within each run so machine noise hits them alike.
            for name, call in targets.items():
                results.setdefault((name, conc), []).append(await run_load(call, conc, args.seconds))
            print(f"  concurrency {conc}: run {run + 1}/{args.runs} done", flush=True)
    for client in clients.values():
        await client.close()
    await channel.close(None)
    report(model, args, results)


def report(model: str, args: argparse.Namespace, results: dict[tuple[str, int], list[RunResult]]) -> None:
    def med(name: str, conc: int) -> RunResult:
        runs = results[(name, conc)]
        return RunResult(
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            statistics.median(r.rps for r in runs),
        )

    print(f"\nbench/gateway — model {model}, {args.runs} runs × {args.seconds:.0f}s per target, medians over runs")
    print(f"{'target':<13}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for conc in args.concurrency:
        for name in ("direct", "proxy", "gateway-oip", "gateway-api"):
            r = med(name, conc)
            print(f"{name:<13}{conc:>5}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.rps:>9.0f}")
    print("\nratios (target: gateway adds ≤ 1 ms p50, ≤ 3 ms p99, keeps ≥ 80% of direct throughput)")
    for conc in args.concurrency:
        base, proxy = med("direct", conc), med("proxy", conc)
        for name in ("proxy", "gateway-oip", "gateway-api"):
            r = med(name, conc)
            print(
                f"  c={conc:<3}{name:<12} +{r.p50_ms - base.p50_ms:5.2f} ms p50  "
                f"+{r.p99_ms - base.p99_ms:5.2f} ms p99  "
                f"{r.rps / base.rps:6.1%} of direct throughput  {r.rps / proxy.rps:6.1%} of bare proxy"
            )


if __name__ == "__main__":
    asyncio.run(main())
