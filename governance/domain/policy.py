"""Change-control policy as code: the YAML files in ``governance/policies/`` and their loader.

A policy file is validated first against ``policy.schema.json`` (JSON Schema, via ``jsonschema``), then
built into the pydantic :class:`Policy` and checked for what a schema cannot say (steps increasing, the last
step at 100%, the name matching the file). Every failure is a :class:`PolicyError` naming the file and the
field, e.g. ``governance/policies/x.yaml: steps[2].weight_bp: must be <= 10000``.

The schema file is :func:`policy_json_schema` written out (``python -m governance.domain.policy``); a test
checks the two agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jsonschema  # type: ignore[import-untyped]
import jsonschema.exceptions  # type: ignore[import-untyped]
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from governance.domain.model import Role, RolloutStep
from services.runtime.errors import FailedPrecondition, NotFound

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"
SCHEMA_PATH = POLICY_DIR / "policy.schema.json"
SCHEMA_ID = "https://radguard.example/governance/policy.schema.json"
_REPO_ROOT = Path(__file__).resolve().parents[2]

TRANSITION_NAME_PATTERN = (
    r"^((registered|validated|shadow|canary|production|retired)->"
    r"(validated|shadow|canary|production|retired|rejected|rolled_back))$"
)


class FindingKind(StrEnum):
    """Monitor finding kinds a policy can name."""

    DRIFT = "drift"
    CALIBRATION = "calibration"
    BIAS = "bias"
    PERFORMANCE = "performance"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShadowPolicy(_Strict):
    """Shadow phase: how many silent predictions a version needs before a canary."""

    min_predictions: int = Field(ge=0, description="Shadow predictions required before canary.")


class StepPolicy(_Strict):
    """One canary step."""

    weight_bp: int = Field(ge=1, le=10000, description="Canary share in basis points.")
    min_reads: int = Field(ge=0, description="Reads per arm required before the step's gates can pass.")


class GatePolicy(_Strict):
    """Acceptance criteria comparing canary with stable on the same window."""

    auroc_non_inferiority_margin: float = Field(
        ge=0, le=1, description="Lower CI bound of AUROC(canary) - AUROC(stable) must be > -margin."
    )
    max_ece: float = Field(ge=0, le=1, description="Largest acceptable expected calibration error of the canary.")
    max_subgroup_sensitivity_gap: float = Field(
        ge=0, le=1, description="Largest acceptable drop of canary sensitivity below stable in any subgroup."
    )
    min_subgroup_positives: int = Field(ge=1, description="Positives per arm a subgroup needs to be compared.")
    max_override_rate_increase: float = Field(
        ge=0, le=1, description="Largest acceptable rise of the radiologist override rate, canary minus stable."
    )
    block_on_drift_breach: bool = Field(default=True, description="An open drift breach fails the gates.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Two-sided confidence level of the CIs.")


class ApprovalRule(_Strict):
    """Signatures a transition needs."""

    count: int = Field(ge=0, le=10, description="Signatures required.")
    roles: tuple[Role, ...] = Field(min_length=1, description="Roles allowed to sign.")
    distinct_signers: bool = Field(default=True, description="Each signature from a different principal.")


class SeparationOfDuties(_Strict):
    """Who may not approve what."""

    registrant_may_approve: bool = Field(default=False, description="Whether a version's registrant may approve it.")


class RollbackPolicy(_Strict):
    """What triggers an automatic rollback of a canary."""

    on_gate_fail: bool = Field(default=True, description="Abort the rollout when a gate fails.")
    on_breach_finding_kinds: tuple[FindingKind, ...] = Field(
        default=(FindingKind.DRIFT, FindingKind.CALIBRATION, FindingKind.BIAS, FindingKind.PERFORMANCE),
        description="Open breach findings of these kinds on the canary abort the rollout at once.",
    )


#: A reference renewal's rule when the policy names none and has no production rule either.
DEFAULT_REFERENCE_RENEWAL_RULE = ApprovalRule(count=1, roles=(Role.BOARD,), distinct_signers=True)

TransitionName = Annotated[str, StringConstraints(pattern=TRANSITION_NAME_PATTERN)]


class Policy(_Strict):
    """A version's change-control plan."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Equals the file name without .yaml.")
    revision: int = Field(ge=1, description="Bumped on every change.")
    description: str = Field(default="", description="What the policy is for.")
    shadow: ShadowPolicy
    steps: tuple[StepPolicy, ...] = Field(min_length=1, description="Canary steps, weights increasing to 10000.")
    gates: GatePolicy
    approvals: dict[TransitionName, ApprovalRule] = Field(
        default_factory=dict,
        description=(
            'Signatures per transition, keyed "from->to". Rollbacks never wait for signatures: they are the '
            "emergency path, and each is audited with its actor and reason."
        ),
        json_schema_extra={"propertyNames": {"pattern": TRANSITION_NAME_PATTERN}},
    )
    reference_renewal: ApprovalRule | None = Field(
        default=None,
        description=(
            "Signatures a reference renewal needs. When absent: the rule of canary->production (else "
            "validated->production), else one board signature. Count 0 applies a renewal without signatures."
        ),
    )
    separation_of_duties: SeparationOfDuties = Field(default_factory=SeparationOfDuties)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)

    @property
    def ref(self) -> str:
        """``"name@revision"``."""
        return f"{self.name}@{self.revision}"

    def plan(self) -> tuple[RolloutStep, ...]:
        """The rollout plan as domain steps."""
        return tuple(RolloutStep(s.weight_bp, s.min_reads) for s in self.steps)

    def approval_rule(self, transition: str) -> ApprovalRule | None:
        """The rule for ``"from->to"``; None (or count 0) means no signature is needed."""
        rule = self.approvals.get(transition)
        return rule if rule is not None and rule.count > 0 else None

    def reference_renewal_rule(self) -> ApprovalRule | None:
        """The signatures a reference renewal needs; None when the policy says it needs none.

        A policy without a ``reference_renewal`` rule asks for what promotion to production asks for: a
        reference decides what the monitors call a breach, so replacing it weighs as much as the version.
        """
        if self.reference_renewal is not None:
            return self.reference_renewal if self.reference_renewal.count > 0 else None
        for name in ("canary->production", "validated->production"):
            rule = self.approval_rule(name)
            if rule is not None:
                return rule
        return DEFAULT_REFERENCE_RENEWAL_RULE


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file (what ``policy.schema.json`` holds)."""
    schema = Policy.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


class PolicyError(Exception):
    """A policy file is invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, json_pointer: str, message: str) -> None:
        self.path = _display(path)
        self.json_pointer = json_pointer
        self.field = _dotted(json_pointer)
        self.detail = message
        super().__init__(f"{self.path}: {self.field}: {message}" if self.field else f"{self.path}: {message}")


def _display(path: Path | str) -> str:
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(_REPO_ROOT))
    except ValueError:
        return str(path)


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _dotted(pointer: str) -> str:
    if not pointer:
        return ""
    out = ""
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _limit(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _schema_error(error: Any) -> tuple[str, str]:
    """(json pointer, message) for one jsonschema error."""
    path: list[str | int] = list(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and isinstance(instance, Mapping):
        missing = [name for name in value if name not in instance]
        return _pointer([*path, missing[0] if missing else "?"]), "is required"
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        known = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in instance if k not in known)
        return _pointer([*path, extra[0] if extra else "?"]), "unknown field"
    if kind == "propertyNames" or "propertyNames" in list(error.absolute_schema_path):
        return _pointer([*path, str(instance)]), 'unknown transition name (use "from->to")'
    messages = {
        "maximum": lambda: f"must be <= {_limit(value)}",
        "minimum": lambda: f"must be >= {_limit(value)}",
        "exclusiveMaximum": lambda: f"must be < {_limit(value)}",
        "exclusiveMinimum": lambda: f"must be > {_limit(value)}",
        "type": lambda: f"must be of type {value if isinstance(value, str) else ' or '.join(value)}",
        "enum": lambda: "must be one of: " + ", ".join(str(v) for v in value),
        "minItems": lambda: f"must have at least {value} item{'s' if value != 1 else ''}",
        "pattern": lambda: f"must match {value}",
    }
    make = messages.get(str(kind))
    return _pointer(path), make() if make else error.message


def _semantic_errors(policy: Policy, stem: str) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if policy.name != stem:
        errors.append(("/name", f"must equal the file name '{stem}'"))
    for i in range(1, len(policy.steps)):
        previous = policy.steps[i - 1].weight_bp
        if policy.steps[i].weight_bp <= previous:
            errors.append((f"/steps/{i}/weight_bp", f"must be greater than steps[{i - 1}].weight_bp ({previous})"))
    last = len(policy.steps) - 1
    if policy.steps[last].weight_bp != 10000:
        errors.append((f"/steps/{last}/weight_bp", "the last step must be 10000 (all traffic)"))
    for name, rule in policy.approvals.items():
        if len(set(rule.roles)) != len(rule.roles):
            errors.append((f"/approvals/{name}/roles", "must not repeat a role"))
    renewal = policy.reference_renewal
    if renewal is not None and len(set(renewal.roles)) != len(renewal.roles):
        errors.append(("/reference_renewal/roles", "must not repeat a role"))
    return errors


_validator: Any = None


def _schema_validator() -> Any:
    global _validator  # noqa: PLW0603 - the schema file is read once per process
    if _validator is None:
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema)
    return _validator


def parse_policy(document: Any, path: Path | str, stem: str | None = None) -> Policy:
    """Validate an already-parsed YAML document and build the policy.

    Raises:
        PolicyError: Naming the first invalid field.
    """
    if not isinstance(document, Mapping):
        raise PolicyError(path, "", "must be a mapping of policy fields")
    errors = list(_schema_validator().iter_errors(document))
    if errors:
        first = min(errors, key=lambda e: (list(map(str, e.absolute_path)), str(e.validator)))
        pointer, message = _schema_error(jsonschema.exceptions.best_match([first]) or first)
        raise PolicyError(path, pointer, message)
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:  # the schema should have caught it; report it the same way
        detail = exc.errors()[0]
        raise PolicyError(path, _pointer([p for p in detail["loc"]]), detail["msg"]) from exc
    problems = _semantic_errors(policy, stem if stem is not None else Path(path).stem)
    if problems:
        raise PolicyError(path, *problems[0])
    return policy


def load_policy(path: Path, stem: str | None = None) -> Policy:
    """Load and validate one policy file.

    Args:
        path: ``governance/policies/<name>.yaml``.
        stem: The name the policy must carry; the file's stem when None (``history/<name>@<rev>.yaml`` passes
            ``<name>``).

    Raises:
        PolicyError: Invalid YAML, a schema violation or a semantic error, naming file and field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(path, "", f"cannot read: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(path, "", f"invalid YAML{where}: {problem}") from exc
    return parse_policy(document, path, stem)


class PolicyCatalog:
    """The policies of one folder, by name (loaded on first use, then cached)."""

    def __init__(self, directory: Path = POLICY_DIR) -> None:
        self._dir = directory
        self._cache: dict[str, Policy] = {}

    def get(self, name: str) -> Policy:
        """The policy ``name``.

        Raises:
            NotFound: No such policy file.
            PolicyError: The file is invalid.
        """
        if name not in self._cache:
            path = self._dir / f"{name}.yaml"
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name) or not path.is_file():
                raise NotFound(f"policy '{name}'")
            self._cache[name] = load_policy(path)
        return self._cache[name]

    def get_ref(self, policy_ref: str) -> Policy:
        """The exact revision a version was registered under, ``"<name>@<revision>"``.

        The current file serves its own revision; a superseded revision is read from
        ``history/<name>@<revision>.yaml`` in the same folder. A version keeps the change-control plan it was
        approved under: when that revision is gone, commands on the version are refused rather than silently
        run under a newer plan.

        Raises:
            FailedPrecondition: The revision is neither current nor kept in ``history/``.
            NotFound: No such policy.
            PolicyError: A file is invalid.
        """
        name, _, revision_text = policy_ref.partition("@")
        current = self.get(name)
        if not revision_text or int(revision_text) == current.revision:
            return current
        if policy_ref not in self._cache:
            path = self._dir / "history" / f"{policy_ref}.yaml"
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*@[0-9]+", policy_ref) or not path.is_file():
                raise FailedPrecondition(
                    f"policy {policy_ref} (the version's change-control plan) is no longer available: the current "
                    f"revision is {current.revision}; keep superseded revisions in {self._dir / 'history'}"
                )
            historic = load_policy(path, stem=name)
            if historic.revision != int(revision_text):
                raise PolicyError(path, "/revision", f"must be {revision_text} in a file named {path.name}")
            self._cache[policy_ref] = historic
        return self._cache[policy_ref]

    def names(self) -> list[str]:
        """Names of the policy files in the folder."""
        return sorted(p.stem for p in self._dir.glob("*.yaml"))

    def load_all(self) -> Sequence[Policy]:
        """Load (and so validate) every policy; raises on the first invalid file."""
        return [self.get(name) for name in self.names()]


def write_schema(path: Path = SCHEMA_PATH) -> None:
    """Write :func:`policy_json_schema` to ``path``."""
    path.write_text(json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_schema()
    print(f"wrote {SCHEMA_PATH}")
