"""The common shape of monitor specs: frozen, validated config that round-trips through dicts and YAML.

Governance stores and versions specs; a spec's ``name@revision`` is stamped on every finding it produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field


class MonitorSpec(BaseModel):
    """Base of every monitor's spec.

    Unknown keys are rejected, so a misspelt threshold fails loudly instead of silently taking its default.

    Attributes:
        name: Spec name, e.g. ``chest-nodule-drift``.
        revision: Revision number, bumped by governance on every change.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    revision: int = Field(default=1, ge=1)

    @property
    def ref(self) -> str:
        """``name@revision``, as findings cite it."""
        return f"{self.name}@{self.revision}"

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate plain data as this spec.

        Raises:
            pydantic.ValidationError: (a ``ValueError``) naming each offending field.
        """
        return cls.model_validate(dict(data))

    def to_yaml(self) -> str:
        """The spec as a YAML document."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        """Parse and validate a YAML document.

        Raises:
            ValueError: If the document is not a mapping or fails validation.
        """
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"a {cls.__name__} document must be a mapping, got {type(data).__name__}")
        return cls.from_dict(data)
