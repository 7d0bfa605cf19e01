"""``RouteTable.served`` entries to and from :class:`kernel.serving.ServedVersion`: written by governance, read
by the gateway and the monitor runner, translated here once."""

from __future__ import annotations

from collections.abc import Iterable

from kernel.serving import ServedVersion
from radguard.common.v1 import common_pb2


def served_from_proto(entries: Iterable[common_pb2.ServedVersion]) -> tuple[ServedVersion, ...]:
    """The domain entries of a table's ``served`` list, in order (not validated: callers decide)."""
    return tuple(
        ServedVersion(
            version=entry.version,
            triton_model=entry.triton_model,
            triton_version=entry.triton_version,
            reference_uri=entry.reference_uri,
            reference_sha256=entry.reference_sha256,
        )
        for entry in entries
    )


def served_to_proto(served: Iterable[ServedVersion]) -> list[common_pb2.ServedVersion]:
    """The protobuf entries of domain ``served`` entries, in order."""
    return [
        common_pb2.ServedVersion(
            version=entry.version,
            triton_model=entry.triton_model,
            triton_version=entry.triton_version,
            reference_uri=entry.reference_uri,
            reference_sha256=entry.reference_sha256,
        )
        for entry in served
    ]
