"""``radguard predict``: score one study through the gateway — a DICOM file or a simulated study."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.table import Table

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.cli import channels
from stack.processes import StackError

_out = Console()


def _simulated(scenario: str, seed: int, index: int) -> tuple[bytes, dict[str, str]]:
    from sim import Hospital, to_dicom

    study = Hospital(scenario, seed=seed).studies(1, start_index=index).studies[0]
    truth = {
        "ground truth": "lesion" if study.label else "no lesion",
        "site": study.site_id,
        "scanner": f"{study.manufacturer} {study.model}",
        "patient": f"{study.sex}, {study.age} y",
    }
    return to_dicom(study), truth


async def _predict(
    target: str, request: inference_pb2.PredictRequest, timeout_s: float, token: str = ""
) -> inference_pb2.PredictResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with channels.aio_channel(target) as channel:
        answer: inference_pb2.PredictResponse = await inference_pb2_grpc.InferenceGatewayStub(channel).Predict(
            request, timeout=timeout_s, metadata=metadata
        )
        return answer


def predict(
    dicom: Annotated[
        Path | None,
        typer.Option("--dicom", exists=True, dir_okay=False, readable=True, help="a DICOM Part-10 file to score"),
    ] = None,
    scenario: Annotated[str, typer.Option("--scenario", help="simulate a study from this scenario")] = "baseline",
    seed: Annotated[int, typer.Option("--seed", help="simulator seed")] = 1,
    index: Annotated[int, typer.Option("--index", min=0, help="which simulated study")] = 0,
    model: Annotated[str, typer.Option("--model", help="model name")] = "chest_nodule",
    gateway: Annotated[
        str, typer.Option("--gateway", envvar="RADGUARD_GATEWAY_URL", help="gateway host:port")
    ] = "127.0.0.1:19061",
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="RADGUARD_GATEWAY_TOKEN",
            show_default=False,
            help="bearer token of a hospital_system caller (radguard stack env exports the stack's)",
        ),
    ] = "",
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait")] = 10.0,
) -> None:
    """Score one study and print the gateway's answer (simulated unless --dicom is given)."""
    truth: dict[str, str] = {}
    if dicom is not None:
        data = dicom.read_bytes()
    else:
        data, truth = _simulated(scenario, seed, index)
    request = inference_pb2.PredictRequest(
        model_name=model, request_id=uuid.uuid4().hex, dicom=inference_pb2.DicomInstance(data=data)
    )
    try:
        answer = asyncio.run(_predict(gateway, request, timeout_s, token))
    except grpc.aio.AioRpcError as exc:
        raise StackError(f"gateway at {gateway} answered {exc.code().name}: {exc.details()}") from None
    table = Table(title=f"prediction {answer.prediction_id}", show_header=False)
    rows = {
        "study": answer.study.study_instance_uid,
        "model": f"{answer.model.model_name} v{answer.model.model_version} ({common_pb2.Arm.Name(answer.arm)})",
        "probability": f"{answer.probability:.3f} (threshold {answer.threshold:.3f}, logit {answer.raw_score:.3f})",
        "decision": common_pb2.Decision.Name(answer.decision).removeprefix("DECISION_").lower(),
        "latency": f"{answer.latency_ms:.1f} ms",
        **truth,
    }
    for key, value in rows.items():
        table.add_row(key, value)
    _out.print(table)
