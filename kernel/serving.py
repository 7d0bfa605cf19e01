"""What serves one version of a route and what judges it: the entry every process reads from a route table.

Governance writes it from the registry (``RouteTable.served``); the gateway resolves a registry name and label
to the Triton model version it names; the monitor runner loads the reference profile it names. One type for
all three, so a field added here reaches every reader.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServedVersion:
    """One version of a route table: the Triton model version answering for it and its reference profile.

    Attributes:
        version: Registry version label (one of the table's stable, canary or shadow versions).
        triton_model: Triton model that serves it (its folder in the model repository).
        triton_version: Triton's numeric version of ``triton_model`` (>= 1).
        reference_uri: The version's reference profile in force, a ``file://`` URI or a path; empty: the model
            repository's ``<triton_model>/<triton_version>/reference_profile.npz``.
        reference_sha256: Lowercase hex SHA-256 of that profile; empty: not recorded (then not checked).
    """

    version: str
    triton_model: str
    triton_version: int
    reference_uri: str = ""
    reference_sha256: str = ""

    @property
    def complete(self) -> bool:
        """Whether it names a version, a Triton model and a Triton version >= 1."""
        return bool(self.version) and bool(self.triton_model) and self.triton_version >= 1
