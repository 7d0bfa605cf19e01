"""The stack's own gateway and feedback processes: who may call them, and what they keep about patients.

Authentication: an unauthenticated or wrong-role call to Predict, ModelInfer and RecordRead is refused
(UNAUTHENTICATED / PERMISSION_DENIED) and counted; a read's reader is the authenticated caller.

Privacy: identifiers planted through every entry point (radiology Predict with a tensor, Predict with a DICOM
instance whose tags make pydicom warn, PredictStream, the Open Inference Protocol's ModelInfer, RecordRead)
appear nowhere downstream — not in any file under the state folder (spool, logs, Kafka's log segments,
PostgreSQL's tables and WAL), not on any Kafka topic, not in any table, not on any metrics endpoint — while
predictions, reads and studies still join through their pseudonyms.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import grpc.aio
import numpy as np
import pydicom
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from radguard.common.v1 import common_pb2
from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.adapters.routes import publish_route, read_routes
from services.gateway.routing import Route
from services.runtime.auth import CLINICIAN, add_token
from services.runtime.pseudonyms import READER, STUDY_UID, Pseudonymiser
from stack.components.services import client_tokens, pseudonym_key
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import stack_gateway_revision

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

MODEL = "placeholder"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def tensor_request(planted: dict[str, str], image_seed: int) -> inference_pb2.PredictRequest:
    img = np.random.default_rng(image_seed).normal(0.3, 0.2, (1, 128, 128)).astype(np.float32)
    return inference_pb2.PredictRequest(
        model_name=MODEL,
        request_id=planted["request"],
        study=common_pb2.StudyRef(
            study_instance_uid=planted["study"],
            series_instance_uid=planted["series"],
            accession_number=planted["accession"],
        ),
        patient=common_pb2.PatientRef(patient_id=planted["patient"], issuer="HOSP"),
        patient_context=common_pb2.PatientContext(sex=common_pb2.SEX_FEMALE, age_years=64),
        tensor=common_pb2.Tensor(data=img.tobytes(), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32),
    )


def planted_values(entry: str) -> dict[str, str]:
    """Unique strings for one entry point; none is hexadecimal, so no pseudonym can contain one by chance."""
    tag = uuid.uuid4().hex[:12]
    return {
        "patient": f"PLpat{entry}{tag}",
        "name": f"PLname{entry}{tag}",
        "accession": f"PLacc{tag}",
        "study": f"2.25.PLstudy{entry}{tag}",
        "series": f"2.25.PLseries{entry}{tag}",
        "instance": f"2.25.PLsop{entry}{tag}",
        "request": f"PLreq-{entry}-{tag}",
    }


def dicom_with(planted: dict[str, str]) -> bytes:
    """A simulated instance carrying the planted tags (the UIDs are malformed on purpose: pydicom warns)."""
    from sim import Hospital, to_dicom

    study = Hospital("baseline", seed=5).studies(1, start_index=2).studies[0]
    ds = pydicom.dcmread(io.BytesIO(to_dicom(study)))
    out = io.BytesIO()
    with pytest.warns(UserWarning):  # pydicom complains about the malformed values as we set them
        ds.PatientID = planted["patient"]
        ds.PatientName = planted["name"]
        ds.AccessionNumber = planted["accession"]
        ds.StudyInstanceUID = planted["study"]
        ds.SeriesInstanceUID = planted["series"]
        ds.SOPInstanceUID = planted["instance"]
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def read_request(prediction_id: str, key: str, reader: str = "") -> feedback_pb2.RecordReadRequest:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return feedback_pb2.RecordReadRequest(
        idempotency_key=key,
        prediction_id=prediction_id,
        reader_pseudonym=reader,
        outcome=common_pb2.OUTCOME_AGREE,
        ground_truth=common_pb2.LABEL_NEGATIVE,
        read_time=stamp,
    )


@pytest.fixture(scope="module")
def tokens(real_stack: Stack) -> Iterator[dict[str, str]]:
    """The stack's client tokens, plus a clinician's added to its tokens file for this module (then removed)."""
    path = real_stack.settings.state_dir / "auth" / "tokens.json"
    before = path.read_bytes()
    found = client_tokens(real_stack.settings.state_dir)
    found["clinician"] = add_token(path, "dr-planted-reader", CLINICIAN)
    time.sleep(1.5)  # the services look at the file at most once a second (RADGUARD_AUTH_FILES_RECHECK_S)
    yield found
    path.write_bytes(before)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack_route(real_stack: Stack, stack: StackEndpoints) -> AsyncIterator[None]:
    current = (await read_routes(stack.kafka_bootstrap)).get(MODEL)
    revision = (current.revision if current else 0) + 1
    await publish_route(stack.kafka_bootstrap, Route(MODEL, "1", revision=revision, reason="security test"), "tests")
    assert await stack_gateway_revision(real_stack, MODEL, at_least=revision, within_s=30.0) is not None
    yield


def metric_total(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_callers_are_authenticated_and_reads_attributed_to_them(
    real_stack: Stack, tokens: dict[str, str], stack_route: None
) -> None:
    s = real_stack.settings
    before_gw, before_fb = scrape(s.gateway_metrics_port), scrape(s.feedback_metrics_port)
    async with (
        grpc.aio.insecure_channel(s.gateway_url) as gw,
        grpc.aio.insecure_channel(f"{s.host}:{s.feedback_port}") as fb,
    ):
        radiology = inference_pb2_grpc.InferenceGatewayStub(gw)
        oip = service_pb2_grpc.GRPCInferenceServiceStub(gw)
        feedback = feedback_pb2_grpc.FeedbackStub(fb)
        hospital, reading = bearer(tokens["RADGUARD_GATEWAY_TOKEN"]), bearer(tokens["RADGUARD_FEEDBACK_TOKEN"])
        predict = tensor_request(planted_values("auth"), 1)
        infer = service_pb2.ModelInferRequest(model_name=MODEL, id="auth-oip")
        some_read = read_request(str(uuid.uuid4()), "auth-key")

        for metadata, expected in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            (bearer("rgd_not-a-token"), grpc.StatusCode.UNAUTHENTICATED),
            (reading, grpc.StatusCode.PERMISSION_DENIED),
        ):
            assert await code_of(radiology.Predict(predict, metadata=metadata, timeout=10)) == expected
            assert await code_of(oip.ModelInfer(infer, metadata=metadata, timeout=10)) == expected
        for metadata, expected in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            (hospital, grpc.StatusCode.PERMISSION_DENIED),
        ):
            assert await code_of(feedback.RecordRead(some_read, metadata=metadata, timeout=10)) == expected

        # Health stays open to probes.
        for channel in (gw, fb):
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        # The read's reader is the authenticated caller, whatever the body says.
        answer = await radiology.Predict(predict, metadata=hospital, timeout=10)
        key = Pseudonymiser(pseudonym_key(s.state_dir).encode())
        clinician = bearer(tokens["clinician"])
        own = await feedback.RecordRead(read_request(answer.prediction_id, f"k-{uuid.uuid4().hex}"), metadata=clinician)
        assert own.read.reader_pseudonym == key.identifier(READER, "0:|dr-planted-reader")
        impostor = read_request(answer.prediction_id, f"k-{uuid.uuid4().hex}", reader="dr-someone-else")
        assert await code_of(feedback.RecordRead(impostor, metadata=clinician)) == grpc.StatusCode.PERMISSION_DENIED
        vouched = await feedback.RecordRead(
            read_request(answer.prediction_id, f"k-{uuid.uuid4().hex}", reader="rdr-7"), metadata=reading
        )
        assert vouched.read.reader_pseudonym == key.identifier(READER, "20:stack-reading-system|rdr-7")
        nobody = read_request(answer.prediction_id, f"k-{uuid.uuid4().hex}")
        assert await code_of(feedback.RecordRead(nobody, metadata=reading)) == grpc.StatusCode.INVALID_ARGUMENT

    after_gw, after_fb = scrape(s.gateway_metrics_port), scrape(s.feedback_metrics_port)

    def counted(before: str, after: str, **labels: str) -> float:
        name = "radguard_auth_denials_total"
        return metric_total(after, name, **labels) - metric_total(before, name, **labels)

    # Each refusal above is counted once, by reason.
    for reason in ("no_credentials", "unknown_token", "role_not_allowed"):
        assert counted(before_gw, after_gw, reason=reason) == 2
    assert counted(before_fb, after_fb, method="RecordRead", reason="no_credentials") == 1
    assert counted(before_fb, after_fb, method="RecordRead", reason="role_not_allowed") == 1
    assert counted(before_fb, after_fb, method="RecordRead", reason="reader_not_caller") == 1


def state_files(root: Path) -> Iterator[Path]:
    for folder, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            path = Path(folder) / name
            if path.is_file():
                yield path


async def all_kafka_bytes(bootstrap: str) -> bytes:
    from kafka import KafkaConsumer, TopicPartition

    def read() -> bytes:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
        try:
            parts = [TopicPartition(t, p) for t in consumer.topics() for p in consumer.partitions_for_topic(t) or ()]
            consumer.assign(parts)
            consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            chunks: list[bytes] = []
            deadline = time.monotonic() + 120
            while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                    for r in records:
                        chunks += [r.key or b"", r.value or b"", *(v or b"" for _, v in r.headers)]
            assert all(consumer.position(tp) >= end for tp, end in ends.items()), "Kafka not read to its end"
            return b"\n".join(chunks)
        finally:
            consumer.close()

    return await asyncio.to_thread(read)


async def all_table_text(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'"
        )
        texts = []
        for row in tables:
            name = f'"{row["table_schema"]}"."{row["table_name"]}"'
            texts += [str(r[0]) for r in await conn.fetch(f"select t::text from {name} t")]
        assert len(tables) >= 5
        return "\n".join(texts)
    finally:
        await conn.close()


async def test_planted_identifiers_appear_nowhere_downstream(
    real_stack: Stack, stack: StackEndpoints, tokens: dict[str, str], stack_route: None
) -> None:
    s = real_stack.settings
    planted = {entry: planted_values(entry) for entry in ("tensor", "dicom", "stream", "oip", "read")}
    hospital, reading = bearer(tokens["RADGUARD_GATEWAY_TOKEN"]), bearer(tokens["RADGUARD_FEEDBACK_TOKEN"])
    async with (
        grpc.aio.insecure_channel(s.gateway_url) as gw,
        grpc.aio.insecure_channel(f"{s.host}:{s.feedback_port}") as fb,
    ):
        radiology = inference_pb2_grpc.InferenceGatewayStub(gw)
        tensor = await radiology.Predict(tensor_request(planted["tensor"], 2), metadata=hospital, timeout=10)
        # The caller gets its own values back.
        assert tensor.request_id == planted["tensor"]["request"]
        assert tensor.study.accession_number == planted["tensor"]["accession"]

        p = planted["dicom"]
        dicom = await radiology.Predict(
            inference_pb2.PredictRequest(
                model_name=MODEL, request_id=p["request"], dicom=inference_pb2.DicomInstance(data=dicom_with(p))
            ),
            metadata=hospital,
            timeout=10,
        )
        assert dicom.study.study_instance_uid == p["study"]

        async def stream() -> AsyncIterator[inference_pb2.PredictRequest]:
            yield tensor_request(planted["stream"], 3)

        streamed = [r async for r in radiology.PredictStream(stream(), metadata=hospital, timeout=10)]
        assert [r.request_id for r in streamed] == [planted["stream"]["request"]] and not streamed[0].error.message

        p = planted["oip"]
        params = {
            "study_instance_uid": p["study"],
            "series_instance_uid": p["series"],
            "accession_number": p["accession"],
            "patient_id": p["patient"],
            "sex": "F",
        }
        infer = service_pb2.ModelInferRequest(model_name=MODEL, id=p["request"])
        for name, value in params.items():
            infer.parameters[name].string_param = value
        tensor_in = infer.inputs.add(name="IMAGE", datatype="FP32", shape=[1, 1, 128, 128])
        assert tensor_in.name == "IMAGE"
        infer.raw_input_contents.append(np.full((1, 1, 128, 128), 0.25, np.float32).tobytes())
        inferred = await service_pb2_grpc.GRPCInferenceServiceStub(gw).ModelInfer(infer, metadata=hospital, timeout=10)
        assert inferred.id == p["request"]
        oip_id = inferred.parameters["prediction_id"].string_param

        read = await feedback_pb2_grpc.FeedbackStub(fb).RecordRead(
            read_request(tensor.prediction_id, planted["read"]["request"], reader=planted["read"]["patient"]),
            metadata=reading,
        )
        assert read.read.idempotency_key == planted["read"]["request"]

    predictions = {tensor.prediction_id, dicom.prediction_id, streamed[0].prediction_id, oip_id}
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        deadline = time.monotonic() + 120
        while True:
            stored = await conn.fetchval(
                "select count(*) from ledger_predictions where prediction_id = any($1::uuid[])", list(predictions)
            )
            joined = await conn.fetchval(
                "select p.study_uid from ledger_reads r join ledger_predictions p using (prediction_id) "
                "where r.read_id = $1::uuid",
                read.read.read_id,
            )
            if stored == len(predictions) and joined is not None:
                break
            assert time.monotonic() < deadline, f"ledger has {stored} of 4 predictions, read joined: {joined}"
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    # Predictions, reads and studies still join: the read finds its prediction, whose study is the pseudonym
    # the hospital can recompute with its key.
    key = Pseudonymiser(pseudonym_key(s.state_dir).encode())
    assert joined == key.identifier(STUDY_UID, planted["tensor"]["study"])

    needles = {value.encode() for values in planted.values() for value in values.values()}

    def found_in(blob: bytes) -> set[bytes]:
        return {n for n in needles if n in blob}

    hits: dict[str, set[bytes]] = {}
    scanned_wal, files_with_pseudonym = 0, set()
    for path in state_files(s.state_dir):
        try:
            blob = path.read_bytes()
        except OSError:
            continue  # a file that went away while we walked (Kafka rolls segments, PostgreSQL recycles WAL)
        scanned_wal += "pg_wal" in path.parts
        if joined.encode() in blob:
            files_with_pseudonym.add(path.parts[len(s.state_dir.parts)])
        if found := found_in(blob):
            hits[str(path)] = found
    kafka, tables = await all_kafka_bytes(stack.kafka_bootstrap), await all_table_text(stack.postgres_dsn)
    # The scans saw the events: their pseudonyms are there, the planted values are not.
    assert joined.encode() in kafka and joined in tables
    hits["kafka"] = found_in(kafka)
    hits["tables"] = found_in(tables.encode())
    for name in ("gateway", "feedback", "ledger", "monitor", "governance"):
        hits[f"{name} metrics"] = found_in(scrape(int(getattr(s, f"{name}_metrics_port"))).encode())
    assert scanned_wal > 0, "PostgreSQL's WAL was not among the files scanned"
    assert {"gateway", "kafka", "postgres"} <= files_with_pseudonym  # spool, log segments, tables or WAL
    assert any("gateway.dicom_validation_warnings" in line for line in real_stack.logs("gateway", 2000))
    assert {where: sorted(found) for where, found in hits.items() if found} == {}
