"""The peer: a KServe transformer in front of Triton, as KServe users deploy pre/post-processing.

A ``kserve.Model`` per model, served by ``kserve.ModelServer`` (gRPC, Open Inference Protocol); its
``preprocess``/``postprocess`` are where a deployment's own work would go (here they pass the payload
through) and its ``predict`` is KServe's own: it forwards to the predictor (Triton) over gRPC v2.

This file runs in the benchmark's own environment (``bench.gateway`` creates it with kserve from PyPI), not
in radguard's: ``<peer-venv>/bin/python bench/kserve_peer.py <grpc_port> <http_port> <triton host:port> <model>...``
"""

from __future__ import annotations

import sys
from typing import Any

import kserve  # type: ignore[import-not-found]
from kserve.predictor_config import PredictorConfig  # type: ignore[import-not-found]


class Transformer(kserve.Model):  # type: ignore[misc]
    """A transformer whose work is done elsewhere: the forwarding itself is what is measured."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def preprocess(self, payload: Any, headers: Any = None) -> Any:
        return payload

    async def postprocess(self, result: Any, headers: Any = None, response_headers: Any = None) -> Any:
        return result


def main(argv: list[str]) -> None:
    grpc_port, http_port, triton, *models = argv
    server = kserve.ModelServer(
        grpc_port=int(grpc_port),
        http_port=int(http_port),
        enable_latency_logging=False,
        predictor_config=PredictorConfig(triton, predictor_protocol="grpc-v2"),
    )
    server.start([Transformer(name) for name in models])


if __name__ == "__main__":
    main(sys.argv[1:])
