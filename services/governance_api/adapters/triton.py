"""TritonControl over Triton's model repository API (explicit model control) with tritonclient.grpc.aio.

Triton loads the versions a model's ``version_policy`` names. To serve exactly the versions governance
routes to, :meth:`TritonModelControl.load` reads the model's ``config.pbtxt`` from the repository,
replaces its version policy with ``specific { versions: [...] }`` and passes the result as the
load request's config override (JSON). Triton keeps the versions that stay, loads the new ones and
unloads the others; an empty set unloads the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from services.runtime.errors import FailedPrecondition, NotFound, Unavailable
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)

_READY = "READY"


def read_model_config(repository: Path, model: str) -> model_config_pb2.ModelConfig:
    """Parse ``<repository>/<model>/config.pbtxt``.

    Raises:
        NotFound: The model has no folder or config in the repository.
        FailedPrecondition: The config does not parse.
    """
    path = repository / model / "config.pbtxt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"Triton model '{model}' in repository {repository}") from None
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise FailedPrecondition(f"{path} does not parse: {error}") from error
    if not config.name:
        config.name = model
    return config


def override_json(config: model_config_pb2.ModelConfig, versions: Iterable[int]) -> str:
    """The config override that makes Triton serve exactly ``versions`` of the model (JSON text)."""
    override = model_config_pb2.ModelConfig()
    override.CopyFrom(config)
    override.version_policy.Clear()
    override.version_policy.specific.versions.extend(sorted(set(versions)))
    return json_format.MessageToJson(override, preserving_proto_field_name=True, indent=None)


def _describe(error: InferenceServerException) -> str:
    return str(error.message() or error)


class TritonModelControl:
    """The governance service's port to Triton's repository API."""

    def __init__(
        self,
        url: str,
        repository: Path,
        *,
        load_timeout_s: float = 120.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        """Create the adapter (the channel opens on first use).

        Args:
            url: ``host:port`` of Triton's gRPC endpoint.
            repository: The model repository Triton serves (config.pbtxt files are read from it).
            load_timeout_s: Time one load (model start-up included) may take.
            request_timeout_s: Time other repository calls may take.
        """
        self._client = InferenceServerClient(url)
        self._repository = repository
        self._load_timeout_s = load_timeout_s
        self._request_timeout_s = request_timeout_s
        # One repository change per model at a time: Triton serialises them anyway, and a later
        # load must not overtake an earlier one.
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self, triton_model: str, versions: set[int]) -> None:
        """Make Triton serve exactly ``versions`` of ``triton_model`` (unload it when empty).

        Raises:
            NotFound: The model is not in the repository.
            FailedPrecondition: A version does not exist or fails to load.
            Unavailable: Triton cannot be reached.
        """
        lock = self._locks.setdefault(triton_model, asyncio.Lock())
        async with lock:
            if not versions:
                try:
                    await self._client.unload_model(triton_model, client_timeout=self._request_timeout_s)
                except InferenceServerException as error:
                    raise self._error(error, triton_model) from error
                _log.info("triton.unloaded", model=triton_model)
                return
            bad = sorted(v for v in versions if v < 1)
            if bad:
                raise FailedPrecondition(f"Triton model '{triton_model}': versions must be >= 1, got {bad}")
            missing = sorted(v for v in versions if not (self._repository / triton_model / str(v)).is_dir())
            config = read_model_config(self._repository, triton_model)
            if missing:
                raise FailedPrecondition(
                    f"Triton model '{triton_model}' has no version {', '.join(map(str, missing))} in the repository"
                )
            try:
                await self._client.load_model(
                    triton_model,
                    config=override_json(config, versions),
                    client_timeout=self._load_timeout_s,
                )
            except InferenceServerException as error:
                raise self._error(error, triton_model) from error
            loaded = await self.loaded_versions(triton_model)
            if not versions <= loaded:
                raise FailedPrecondition(
                    f"Triton model '{triton_model}': versions {sorted(versions - loaded)} are not ready after loading"
                )
            _log.info("triton.loaded", model=triton_model, versions=sorted(versions))

    async def loaded_versions(self, triton_model: str) -> set[int]:
        """Versions of ``triton_model`` that are READY now (empty when it is not loaded).

        Raises:
            Unavailable: Triton cannot be reached.
        """
        try:
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=self._request_timeout_s)
        except InferenceServerException as error:
            raise self._error(error, triton_model) from error
        ready: set[int] = set()
        for entry in index.get("models", []) if isinstance(index, dict) else []:
            if entry.get("name") == triton_model and entry.get("state") == _READY:
                version = str(entry.get("version", ""))
                if version.isdigit():
                    ready.add(int(version))
        return ready

    async def is_ready(self) -> bool:
        """Whether Triton answers and is ready (the governance readiness check)."""
        try:
            return bool(await self._client.is_server_ready(client_timeout=self._request_timeout_s))
        except InferenceServerException:
            return False

    async def close(self) -> None:
        """Close the channel."""
        await self._client.close()

    def _error(self, error: InferenceServerException, model: str) -> Exception:
        text = _describe(error)
        status = str(error.status() or "")
        if "UNAVAILABLE" in status or "DEADLINE" in status or "failed to connect" in text.lower():
            return Unavailable("triton", text)
        return FailedPrecondition(f"Triton refused to change model '{model}': {text}")
