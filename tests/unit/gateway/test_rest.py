"""The REST form of the inference protocol: JSON and binary tensors to the gRPC request and back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from services.gateway.rest import HEADER_LENGTH, infer_request, infer_response
from services.runtime.errors import InvalidArgument

IMAGE = {"name": "IMAGE", "datatype": "FP32", "shape": [1, 2, 2]}


def test_json_data_becomes_raw_little_endian_bytes() -> None:
    header = {"id": "r-1", "inputs": [{**IMAGE, "data": [[[0.5, 1.0], [2.0, -1.0]]]}], "parameters": {"age_years": 61}}
    request, binary, default = infer_request("m", "1", header, b"")
    assert request.model_name == "m" and request.model_version == "1" and request.id == "r-1"
    assert np.frombuffer(request.raw_input_contents[0], "<f4").tolist() == [0.5, 1.0, 2.0, -1.0]
    assert list(request.inputs[0].shape) == [1, 2, 2]
    assert request.parameters["age_years"].int64_param == 61
    assert binary == {} and default is False


def test_binary_inputs_are_sliced_from_the_body_and_outputs_follow_the_switches() -> None:
    raw = np.arange(4, dtype="<f4").tobytes()
    header = {
        "inputs": [{**IMAGE, "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "LOGIT", "parameters": {"binary_data": False}}, {"name": "STATS"}],
        "parameters": {"binary_data_output": True, "study_instance_uid": "2.25.1"},
    }
    request, binary, default = infer_request("m", "", header, raw)
    assert request.raw_input_contents[0] == raw
    assert "binary_data_output" not in request.parameters  # the HTTP switch does not travel to Triton
    assert binary == {"LOGIT": False, "STATS": True} and default is True


@pytest.mark.parametrize(
    ("header", "blobs", "field"),
    [
        ([], b"", "body"),
        ({"inputs": []}, b"", "inputs"),
        ({"inputs": [{**IMAGE, "parameters": {"binary_data_size": 99}}]}, b"1234", "inputs[0].parameters"),
        ({"inputs": [{**IMAGE, "data": [1.0] * 4}]}, b"extra", "body"),
        ({"inputs": [{**IMAGE, "data": "text"}]}, b"", "inputs[0].data"),
        ({"inputs": [{**IMAGE, "shape": "1x2"}]}, b"", "inputs[0].shape"),
        ({"inputs": [{**IMAGE, "data": [1.0]}], "parameters": {"x": [1]}}, b"", "parameters.x"),
        ({"inputs": [{**IMAGE, "data": [1.0]}], "id": 5}, b"", "id"),
    ],
)
def test_malformed_bodies_name_the_field(header: object, blobs: bytes, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        infer_request("m", "", header, blobs)
    assert caught.value.field.startswith(field)


def test_the_answer_is_json_or_the_binary_extension_as_asked() -> None:
    response = service_pb2.ModelInferResponse(model_name="m", model_version="1", id="r-1")
    response.outputs.add(name="LOGIT", datatype="FP32", shape=[1, 1])
    response.outputs.add(name="STATS", datatype="FP32", shape=[1, 2])
    response.raw_output_contents.extend([np.array([0.25], "<f4").tobytes(), np.array([1, 2], "<f4").tobytes()])
    response.parameters["probability"].double_param = 0.4
    answer = infer_response(response, {"LOGIT": False}, True)
    length = int(answer.headers[HEADER_LENGTH])
    body = answer.body
    assert isinstance(body, bytes)
    head = json.loads(body[:length])
    assert head["outputs"][0]["data"] == [0.25] and head["parameters"] == {"probability": 0.4}
    assert head["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(body[length:], "<f4").tolist() == [1.0, 2.0]
    plain = infer_response(response, {}, False)
    assert HEADER_LENGTH not in plain.headers and plain.content_type == "application/json"
