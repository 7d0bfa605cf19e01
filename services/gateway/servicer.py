"""radguard.inference.v1.InferenceGateway: protobuf ↔ domain translation over the PredictHandler."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway import validation
from services.gateway.adapters.routes import table_from_route
from services.gateway.dicom import read_dicom
from services.gateway.domain import Acquisition, PredictCommand, Prediction, Sex, Study
from services.gateway.handlers import PredictHandler
from services.gateway.ports import ModelCatalog
from services.gateway.pseudonym import Pseudonymiser
from services.gateway.routing import Arm, RouteBook
from services.gateway.streams import answer_each
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    Unavailable,
    internal_error_message,
    status_for,
)
from services.runtime.server import RadguardServer

_SEX = {
    common_pb2.SEX_UNSPECIFIED: Sex.UNSPECIFIED,
    common_pb2.SEX_FEMALE: Sex.FEMALE,
    common_pb2.SEX_MALE: Sex.MALE,
    common_pb2.SEX_OTHER: Sex.OTHER,
}
_log = logging.getLogger(__name__)
_DICOM_SEX = {"F": Sex.FEMALE, "M": Sex.MALE, "O": Sex.OTHER}
_ARM = {Arm.STABLE: common_pb2.ARM_STABLE, Arm.CANARY: common_pb2.ARM_CANARY, Arm.SHADOW: common_pb2.ARM_SHADOW}


@dataclass(frozen=True)
class RequestLimits:
    """Size limits on what callers send."""

    max_image_bytes: int = 16 * 1024 * 1024
    stream_concurrency: int = 8


class RequestTranslator:
    """Turns a PredictRequest into a validated PredictCommand (pseudonymising the patient)."""

    def __init__(self, catalog: ModelCatalog, pseudonymiser: Pseudonymiser, limits: RequestLimits) -> None:
        self.catalog = catalog
        self.pseudonymiser = pseudonymiser
        self.limits = limits

    def command(self, req: inference_pb2.PredictRequest) -> PredictCommand:
        """Validate ``req``; raises InvalidArgument (naming the field) or NotFound (unknown model)."""
        model_name = validation.context_text("model_name", req.model_name, "model_name")
        expected = self.catalog.input_shape(model_name)
        request_id = validation.context_text("request_id", req.request_id, "request_id")
        which = req.WhichOneof("image")
        acq = req.acquisition
        study_uid, series_uid, accession = (
            req.study.study_instance_uid,
            req.study.series_instance_uid,
            req.study.accession_number,
        )
        patient_id, issuer = req.patient.patient_id, req.patient.issuer
        sex_value = req.patient_context.sex
        if sex_value not in _SEX:
            raise InvalidArgument("patient_context.sex", f"unknown enum value {sex_value}")
        sex = _SEX[sex_value]
        has_age = req.patient_context.HasField("age_years")
        age = validation.age(req.patient_context.age_years, has_age)
        strings = {
            "site_id": acq.site_id,
            "modality": acq.modality,
            "body_part": acq.body_part,
            "manufacturer": acq.manufacturer,
            "manufacturer_model": acq.manufacturer_model,
            "protocol_name": acq.protocol_name,
        }
        spacing = (acq.pixel_spacing_mm.row_mm, acq.pixel_spacing_mm.col_mm)
        if which == "tensor":
            dtype_name = (
                common_pb2.DataType.Name(req.tensor.dtype).removeprefix("DATA_TYPE_")
                if req.tensor.dtype in common_pb2.DataType.values()
                else f"enum value {req.tensor.dtype}"
            )
            image = validation.tensor_image(
                req.tensor.data, tuple(req.tensor.shape), dtype_name, expected, self.limits.max_image_bytes, "tensor"
            )
        elif which == "dicom":
            if len(req.dicom.data) > self.limits.max_image_bytes:
                raise InvalidArgument(
                    "dicom.data", f"is {len(req.dicom.data)} bytes; the limit is {self.limits.max_image_bytes}"
                )
            dcm = read_dicom(req.dicom.data, "dicom.data")
            if tuple(dcm.image.shape) != expected:
                raise InvalidArgument(
                    "dicom.data", f"has pixels of shape {list(dcm.image.shape)}; the model expects {list(expected)}"
                )
            image = validation.check_finite(dcm.image, "dicom.data")
            study_uid, series_uid, accession = (
                study_uid or dcm.study_uid,
                series_uid or dcm.series_uid,
                accession or dcm.accession,
            )
            patient_id, issuer = patient_id or dcm.patient_id, issuer or dcm.issuer
            if sex is Sex.UNSPECIFIED:
                sex = _DICOM_SEX.get(dcm.sex, Sex.UNSPECIFIED)
            if age is None:
                age = dcm.age_years
            from_tags = {
                "site_id": dcm.institution,
                "modality": dcm.modality,
                "body_part": dcm.body_part,
                "manufacturer": dcm.manufacturer,
                "manufacturer_model": dcm.manufacturer_model,
                "protocol_name": dcm.protocol_name,
            }
            strings = {k: v or from_tags[k] for k, v in strings.items()}
            if spacing == (0.0, 0.0):
                spacing = dcm.pixel_spacing
        else:
            raise InvalidArgument("image", "is required: set tensor or dicom")
        for name, value, path in (
            ("study_instance_uid", study_uid, "study.study_instance_uid"),
            ("series_instance_uid", series_uid, "study.series_instance_uid"),
            ("accession_number", accession, "study.accession_number"),
            ("patient_id", patient_id, "patient.patient_id"),
            ("issuer", issuer, "patient.issuer"),
        ):
            validation.context_text(name, value, path)
        for key, value in strings.items():
            validation.context_text(key, value, f"acquisition.{key}")
        row_mm, col_mm = validation.pixel_spacing(*spacing, field="acquisition.pixel_spacing_mm")
        return PredictCommand(
            model_name=model_name,
            request_id=request_id,
            study=Study(study_uid, series_uid, accession),
            patient_pseudonym=self.pseudonymiser.pseudonym(patient_id, issuer),
            sex=sex,
            age_years=age,
            acquisition=Acquisition(**strings, pixel_spacing_row_mm=row_mm, pixel_spacing_col_mm=col_mm),
            image=image,
        )


def _item_error(
    req: inference_pb2.PredictRequest, code: grpc.StatusCode, message: str
) -> inference_pb2.PredictResponse:
    """A stream item's answer when it failed: its own ids (checked, else left out) and the error."""
    request_id = req.request_id if _fits("request_id", req.request_id) else ""
    study = (
        req.study
        if all(
            _fits(name, getattr(req.study, name))
            for name in ("study_instance_uid", "series_instance_uid", "accession_number")
        )
        else common_pb2.StudyRef()
    )
    return inference_pb2.PredictResponse(
        request_id=request_id, study=study, error=inference_pb2.ItemError(code=code.value[0], message=message)
    )


def _fits(name: str, value: str) -> bool:
    """Whether a caller's value may be echoed back (within its limit, printable)."""
    return len(value) <= validation.CONTEXT_LIMITS[name] and value.isprintable()


def _unreadable(error: Exception, index: int) -> DomainError:
    """The status a stream ends with when message ``index`` cannot be read."""
    if isinstance(error, DomainError):
        return error
    _log.warning("prediction stream message could not be read: %s", type(error).__name__)
    return InvalidArgument(f"requests[{index}]", "could not be decoded as a PredictRequest")


def response(command: PredictCommand, prediction: Prediction) -> inference_pb2.PredictResponse:
    """The protobuf answer for a served prediction."""
    return inference_pb2.PredictResponse(
        prediction_id=prediction.prediction_id,
        raw_score=prediction.raw_score,
        probability=prediction.probability,
        decision=common_pb2.DECISION_POSITIVE if prediction.positive else common_pb2.DECISION_NEGATIVE,
        threshold=prediction.threshold,
        model=common_pb2.ModelRef(model_name=prediction.model_name, model_version=prediction.version),
        arm=_ARM[prediction.arm],
        latency_ms=prediction.latency_ms,
        study=common_pb2.StudyRef(
            study_instance_uid=command.study.study_uid,
            series_instance_uid=command.study.series_uid,
            accession_number=command.study.accession,
        ),
        request_id=command.request_id,
        route_revision=prediction.route_revision,
    )


class InferenceGatewayServicer(inference_pb2_grpc.InferenceGatewayServicer):
    """Thin: translate, await the use case, translate back."""

    def __init__(self, translator: RequestTranslator, handler: PredictHandler, routes: RouteBook) -> None:
        self.translator = translator
        self.handler = handler
        self.routes = routes

    async def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> inference_pb2.PredictResponse:
        received = time.perf_counter()
        command = self.translator.command(request)
        prediction = await self.handler.predict(command, received)
        return response(command, prediction)

    async def _answer_item(self, req: inference_pb2.PredictRequest) -> inference_pb2.PredictResponse:
        """One stream item's answer: the prediction, or the item's error (never an exception)."""
        try:
            received = time.perf_counter()
            command = self.translator.command(req)
            prediction = await self.handler.predict(command, received)
            return response(command, prediction)
        except DomainError as exc:
            return _item_error(req, status_for(exc), exc.message)
        except Exception:
            # A bug, not the caller's fault: the item still gets an answer (INTERNAL, nothing leaked).
            _log.exception("prediction stream item failed unexpectedly")
            return _item_error(req, grpc.StatusCode.INTERNAL, internal_error_message(None))

    async def PredictStream(
        self,
        request_iterator: AsyncIterator[inference_pb2.PredictRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[inference_pb2.PredictResponse]:
        async for item in answer_each(
            request_iterator, self._answer_item, self.translator.limits.stream_concurrency, _unreadable
        ):
            yield item

    async def GetRoute(
        self, request: inference_pb2.GetRouteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> common_pb2.RouteTable:
        route = self.routes.get(validation.context_text("model_name", request.model_name, "model_name"))
        if route is None:
            if not self.routes.loaded:
                raise Unavailable("routes", "the route table is not loaded yet; retry shortly")
            raise NotFound(f"route for model '{request.model_name}'")
        return table_from_route(route)


def register(server: RadguardServer, servicer: InferenceGatewayServicer) -> None:
    """Add the InferenceGateway service to ``server`` (health and reflection included)."""
    server.add_service(
        inference_pb2.DESCRIPTOR.services_by_name["InferenceGateway"],
        lambda s: inference_pb2_grpc.add_InferenceGatewayServicer_to_server(servicer, s),
    )
