"""``radguard models|approve|rollout|rollback|audit|governance``: the governance API from the command line.

Every command is a gRPC call to the governance service (``--target``, default the local stack's) made
as the identity of a bearer token (``--token`` or ``RADGUARD_TOKEN``; create one with ``radguard
governance tokens add``). Mutating commands send a fresh request id unless ``--request-id`` repeats one,
which makes a retried command harmless.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from kernel.digest import sha256_file
from kernel.topics import AUDIT_TOPIC
from stack.processes import StackError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from google.protobuf.timestamp_pb2 import Timestamp

    from governance.domain.checkpoint import Checkpoint
    from governance.domain.model import AuditRecord
    from governance.domain.witness import CheckpointSource, Disagreement, WitnessReport
    from radguard.common.v1 import common_pb2
    from radguard.events.v1 import events_pb2
    from radguard.governance.v1 import governance_pb2 as pb
    from radguard.governance.v1 import governance_pb2_grpc

# grpc, the generated stubs, cryptography, settings and the governance service's modules are imported
# inside the functions that use them: `radguard models --help` and the like need none of them.

#: ``services.governance_api.auth.ROLES`` (the roles ``tokens add --help`` lists), equal to it by test: that
#: module imports grpc and the interceptors, which a help page does not need.
ROLES: tuple[str, ...] = ("clinician", "board", "operator", "service")

models_app = typer.Typer(help="The model registry: register, list and show versions, move them.", no_args_is_help=True)
rollout_app = typer.Typer(
    help="Gated canary rollouts: start, status, pause, resume, abort, promote.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit trail: verify it, read it.", no_args_is_help=True)
governance_app = typer.Typer(help="Governance administration (tokens).", no_args_is_help=True)
tokens_app = typer.Typer(help="Bearer tokens of governance callers.", no_args_is_help=True)
governance_app.add_typer(tokens_app, name="tokens")

_out = Console()
T = TypeVar("T")

TOKEN_ENV = "RADGUARD_TOKEN"  # noqa: S105 - the variable's name, not a token
TARGET_ENV = "RADGUARD_GOVERNANCE_TARGET"

TargetOption = Annotated[
    str | None, typer.Option("--target", help=f"governance host:port (default ${TARGET_ENV} or the local stack's)")
]
TokenOption = Annotated[str | None, typer.Option("--token", help=f"bearer token (default ${TOKEN_ENV})")]
RequestIdOption = Annotated[
    str | None, typer.Option("--request-id", help="idempotency key; repeat one to retry a command safely")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="why; recorded in the audit trail")]


@functools.cache
def _state_names() -> dict[int, str]:
    """Lifecycle state number → its short name (``canary``), from the generated enum."""
    from radguard.governance.v1 import governance_pb2 as pb

    return {value: name.removeprefix("LIFECYCLE_STATE_").lower() for name, value in pb.LifecycleState.items() if value}


_STATE_STYLE = {
    "registered": "white",
    "validated": "cyan",
    "shadow": "blue",
    "canary": "yellow",
    "production": "bold green",
    "retired": "dim",
    "rolled_back": "bold red",
    "rejected": "red",
}
_ROLLOUT_STYLE = {"running": "yellow", "paused": "cyan", "completed": "bold green", "aborted": "bold red"}
_OUTCOME_STYLE = {"pass": "green", "fail": "bold red", "insufficient_evidence": "yellow"}


def register(root: typer.Typer) -> None:
    """Add the governance commands to the root CLI."""
    root.add_typer(models_app, name="models")
    root.command("approve")(approve)
    root.add_typer(rollout_app, name="rollout")
    root.command("rollback")(rollback)
    root.add_typer(audit_app, name="audit")
    root.add_typer(governance_app, name="governance")


# --- plumbing -----------------------------------------------------------------------------------


def _target(value: str | None) -> str:
    if value:
        return value
    if env := os.environ.get(TARGET_ENV):
        return env
    from stack.settings import load_stack_settings

    stack = load_stack_settings()
    return f"{stack.host}:{stack.governance_port}"


def _token(value: str | None) -> str:
    token = value or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise StackError(f"no bearer token: pass --token or set {TOKEN_ENV} (`radguard governance tokens add`)")
    return token


def _request_id(value: str | None) -> str:
    return value or f"cli-{uuid.uuid4().hex}"


def _call(
    target: str | None,
    token: str | None,
    invoke: Callable[[governance_pb2_grpc.GovernanceStub, Sequence[tuple[str, str]]], T],
) -> T:
    """Run one RPC; gRPC errors become a one-line StackError (exit 1)."""
    import grpc

    from radguard.governance.v1 import governance_pb2_grpc
    from services.cli import channels

    address = _target(target)
    metadata = (("authorization", f"Bearer {_token(token)}"),)
    with channels.channel(address) as channel:
        stub = governance_pb2_grpc.GovernanceStub(channel)
        try:
            return invoke(stub, metadata)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            details = error.details() if hasattr(error, "details") else str(error)
            if code == grpc.StatusCode.UNAVAILABLE:
                raise StackError(
                    f"governance at {address} is unavailable: {details} (is `radguard stack up` running?)"
                ) from None
            name = code.name if code is not None else "ERROR"
            raise StackError(f"{name}: {details}") from None


def _invoke(rpc: str, request: Any) -> Callable[[governance_pb2_grpc.GovernanceStub, Sequence[tuple[str, str]]], Any]:
    def invoke(stub: governance_pb2_grpc.GovernanceStub, metadata: Sequence[tuple[str, str]]) -> Any:
        return getattr(stub, rpc)(request, metadata=metadata)

    return invoke


def _time(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _state(value: int) -> str:
    name = _state_names().get(value, "unspecified")
    return f"[{_STATE_STYLE.get(name, 'white')}]{name}[/]"


def _parse_state(name: str, option: str) -> Any:
    from radguard.governance.v1 import governance_pb2 as pb

    wanted = name.lower().replace("-", "_")
    if wanted in _state_names().values():
        return pb.LifecycleState.Value(f"LIFECYCLE_STATE_{wanted.upper()}")
    raise StackError(f"{option}: unknown state {name!r}; one of {', '.join(_state_names().values())}")


def _enum(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _share(bp: int) -> str:
    return f"{bp / 100:.1f}%".replace(".0%", "%")


# --- registration from the model repository ------------------------------------------------------


def _reference_period(described: Any) -> pb.ReferencePeriod | None:
    """The reference's period as ``metadata.json`` describes it (written by modeling/reference.py), or None."""
    from radguard.governance.v1 import governance_pb2 as pb

    if not isinstance(described, dict) or "n" not in described:
        return None
    period = described.get("period", {})
    where = ", ".join(f"{key} {value}" for key, value in period.items() if key in ("scenario", "hospital_seed", "site"))
    indices = period.get("study_indices")
    span = f", studies {indices[0]}-{indices[1]}" if isinstance(indices, list) and len(indices) == 2 else ""
    labels = str(described.get("labels", "reads"))
    studies = int(described["n"])
    return pb.ReferencePeriod(
        labelled_by="reads" if labels == "reads" else "ground_truth",
        description=f"simulated production period ({where}{span})",
        studies=studies,
        reads=studies if labels == "reads" else 0,
        read_positives=int(described.get("read_positives", 0)) if labels == "reads" else 0,
    )


def _period_text(reference: pb.ReferenceProfile) -> str:
    if not reference.HasField("period"):
        return "not recorded"
    p = reference.period
    return (
        f"{p.description}; labelled by {p.labelled_by}; {p.studies:,} studies, {p.reads:,} reads, "
        f"{p.read_positives:,} positive; chosen by {p.chosen_by or '-'}"
    )


def _section(markdown: str, title: str) -> str:
    lines = markdown.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("## "):
            inside = line[3:].strip().lower() == title.lower()
            continue
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def _metrics(block: dict[str, Any], level: float = 0.95) -> list[pb.Metric]:
    from radguard.governance.v1 import governance_pb2 as pb

    n = int(block.get("n", 0))
    positives = int(block.get("positives", 0))
    support = {"auroc": n, "sensitivity": positives, "specificity": n - positives}
    result = []
    for name in ("auroc", "sensitivity", "specificity", "ppv", "ece", "brier"):
        if isinstance(block.get(name), int | float):
            metric = pb.Metric(name=name, value=float(block[name]), support=support.get(name, n))
            low, high = block.get(f"{name}_ci_low"), block.get(f"{name}_ci_high")
            if isinstance(low, int | float) and isinstance(high, int | float):
                metric.ci_low, metric.ci_high, metric.ci_level = float(low), float(high), level
            result.append(metric)
    return result


def version_from_repo(
    repo: Path,
    triton_model: str,
    triton_version: int,
    *,
    model_name: str | None = None,
    version: str | None = None,
    policy: str = "standard",
    parent_version: str = "",
) -> pb.ModelVersion:
    """The registration of a version exported into a Triton model repository folder.

    Reads ``metadata.json`` (lineage, validation metrics, artifact hashes), ``calibration.json``
    (temperature, threshold), ``model_card.md`` and the reference profile from
    ``<repo>/<triton_model>/<triton_version>/``; the artifact hash is that of the weights file (or of
    ``model.py`` for a model without weights).

    Raises:
        StackError: The folder or a file it needs is missing.
    """
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    folder = repo / triton_model / str(triton_version)
    if not folder.is_dir():
        raise StackError(f"{folder} does not exist: export the version into the model repository first")

    def read_json(name: str) -> dict[str, Any]:
        path = folder / name
        if not path.exists():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}

    metadata = read_json("metadata.json")
    calibration = read_json("calibration.json")
    card_path = folder / "model_card.md"
    card = card_path.read_text(encoding="utf-8") if card_path.exists() else f"# {triton_model} {triton_version}\n"
    intended = _section(card, "Intended use") or f"Research and test use of {triton_model} inside radguard."
    weights = folder / str(metadata.get("weights_file", "weights.pt"))
    artifact = weights if weights.exists() else folder / "model.py"
    reference = folder / "reference_profile.npz"
    reference_uri = reference.resolve().as_uri() if reference.exists() else card_path.resolve().as_uri()
    reference_sha = sha256_file(reference) if reference.exists() else hashlib.sha256(card.encode()).hexdigest()
    validation = metadata.get("metrics", {}).get("validation", {})
    overall = _metrics(validation.get("overall", {}))
    if not overall:
        overall = [pb.Metric(name="auroc", value=0.5, support=0)]
    subgroups = []
    for entry in validation.get("subgroups", []):
        for metric in _metrics(entry):
            subgroups.append(pb.SubgroupMetric(subgroup=f"{entry['dimension']}={entry['group']}", metric=metric))
    fitted = calibration.get("fitted_on", {})
    fitted_on = (
        f"{fitted['temperature']['split']} split, scenario {fitted['temperature'].get('scenario', '?')}"
        if isinstance(fitted, dict) and isinstance(fitted.get("temperature"), dict)
        else "not fitted (temperature 1)"
    )
    spec = metadata.get("spec", {})
    return pb.ModelVersion(
        ref=common_pb2.ModelRef(model_name=model_name or triton_model, model_version=version or str(triton_version)),
        triton=pb.TritonModel(model_name=triton_model, model_version=triton_version),
        artifact_sha256=sha256_file(artifact),
        model_card=card,
        intended_use=intended,
        calibration=pb.Calibration(
            temperature=float(calibration.get("temperature", 1.0)), revision=1, fitted_on=fitted_on
        ),
        operating_threshold=float(calibration.get("threshold", 0.5)),
        reference_profile=pb.ReferenceProfile(
            uri=reference_uri, sha256=reference_sha, period=_reference_period(metadata.get("reference_profile"))
        ),
        validation=pb.ValidationReport(
            dataset=f"simulated validation split (seed {metadata.get('seed', '?')})",
            overall=overall,
            subgroups=subgroups,
        ),
        lineage=pb.Lineage(
            training_data=str(spec.get("summary") or f"{spec.get('train_studies', '?')} simulated studies"),
            code_revision=str(metadata.get("code_revision") or "unknown"),
            parent_version=parent_version,
        ),
        policy_ref=policy,
    )


# --- printing -----------------------------------------------------------------------------------


def print_versions(versions: Sequence[pb.ModelVersion]) -> None:
    """A table of registry versions."""
    table = Table(title="model versions")
    for col in ("model", "version", "state", "triton", "policy", "registered by", "registered", "state changed"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.ref.model_name,
            v.ref.model_version,
            _state(v.state),
            f"{v.triton.model_name}/{v.triton.model_version}",
            v.policy_ref,
            v.registered_by,
            _time(v.registered_at),
            _time(v.state_changed_at),
        )
    _out.print(table)


def print_version(v: pb.ModelVersion) -> None:
    """One version in full."""
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    rows = [
        ("state", _state(v.state)),
        ("triton", f"{v.triton.model_name} version {v.triton.model_version}"),
        ("artifact sha256", v.artifact_sha256),
        ("policy", v.policy_ref),
        (
            "calibration",
            f"temperature {v.calibration.temperature:.4f} (rev {v.calibration.revision}, {v.calibration.fitted_on})",
        ),
        ("threshold", f"{v.operating_threshold:.4f}"),
        ("reference", f"{v.reference_profile.uri} ({v.reference_profile.sha256[:12]}…)"),
        ("reference period", _period_text(v.reference_profile)),
        (
            "lineage",
            f"{v.lineage.training_data} @ {v.lineage.code_revision[:12]} parent {v.lineage.parent_version or '-'}",
        ),
        ("registered", f"{_time(v.registered_at)} by {v.registered_by}"),
        ("state changed", _time(v.state_changed_at)),
    ]
    for key, value in rows:
        info.add_row(key, value)
    _out.print(Panel(info, title=f"{v.ref.model_name} {v.ref.model_version}"))
    metrics = Table(title=f"validation: {v.validation.dataset}")
    for col in ("subgroup", "metric", "value", "95% CI", "support"):
        metrics.add_column(col)
    entries = [("overall", m) for m in v.validation.overall] + [(s.subgroup, s.metric) for s in v.validation.subgroups]
    for subgroup, m in entries:
        ci = f"{m.ci_low:.3f}-{m.ci_high:.3f}" if m.HasField("ci_low") and m.HasField("ci_high") else "-"
        metrics.add_row(subgroup, m.name, f"{m.value:.4f}", ci, str(m.support))
    _out.print(metrics)


def print_transition(t: pb.Transition) -> None:
    """A transition with its signatures and what it still needs."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    status = _enum(pb.TransitionStatus, t.status, "TRANSITION_STATUS_")
    _out.print(
        f"transition [bold]{t.transition_id}[/]: {t.model.model_name} {t.model.model_version} "
        f"{_state(t.from_state)} → {_state(t.to_state)} — [bold]{status}[/]"
    )
    if t.approvals:
        table = Table(title="signatures")
        for col in ("signer", "role", "meaning", "signed", "algorithm", "key"):
            table.add_column(col)
        for a in t.approvals:
            table.add_row(
                a.signer, _enum(common_pb2.Role, a.role, "ROLE_"), a.meaning, _time(a.signed_at), a.algorithm, a.key_id
            )
        _out.print(table)
    for unmet in t.unmet_requirements:
        _out.print(f"  [yellow]needs[/] {unmet}")


def print_rollout(r: pb.Rollout) -> None:
    """A rollout: plan with progress, latest gates, reasons."""
    from radguard.governance.v1 import governance_pb2 as pb

    status = _enum(pb.RolloutStatus, r.status, "ROLLOUT_STATUS_")
    decision = _enum(pb.GateDecision, r.last_decision, "GATE_DECISION_")
    _out.print(
        f"rollout [bold]{r.rollout_id}[/]: {r.candidate.model_name} {r.candidate.model_version} vs stable "
        f"{r.stable_version} — [{_ROLLOUT_STYLE.get(status, 'white')}]{status}[/], canary share {_share(r.weight_bp)}, "
        f"last decision {decision} ({r.policy_ref})"
    )
    plan = Table(title="plan")
    for col in ("step", "canary share", "min reads", ""):
        plan.add_column(col)
    for i, step in enumerate(r.plan):
        mark = (
            "◀ current"
            if i == r.step_index and status in ("running", "paused")
            else ("done" if i < r.step_index else "")
        )
        plan.add_row(str(i + 1), _share(step.weight_bp), str(step.min_reads), mark)
    _out.print(plan)
    total = max(len(r.plan), 1)
    done = r.step_index + (1 if status == "completed" else 0)
    _out.print(ProgressBar(total=total, completed=done, width=40), f" step {min(done, total)}/{total}")
    if r.gates:
        gates = Table(title="gates (latest evaluation)")
        for col in ("gate", "outcome", "observed", "limit", "detail"):
            gates.add_column(col)
        for g in r.gates:
            outcome = _enum(pb.GateOutcome, g.outcome, "GATE_OUTCOME_")
            gates.add_row(
                g.gate,
                f"[{_OUTCOME_STYLE.get(outcome, 'white')}]{outcome}[/]",
                f"{g.observed:.4g}",
                f"{g.limit:.4g}",
                g.detail,
            )
        _out.print(gates)
    for line in r.reasons:
        _out.print(f"  • {line}")


def print_routes(table_: common_pb2.RouteTable) -> None:
    """A model's route table."""
    _out.print(
        f"route {table_.model_name} revision {table_.revision}: stable {table_.stable_version or '-'}, "
        f"canary {table_.canary_version or '-'} at {_share(table_.canary_weight_bp)}, "
        f"shadows {', '.join(table_.shadow_versions) or '-'} ({table_.reason})"
    )


def print_audit(entries: Sequence[events_pb2.AuditEntry], *, changes: bool) -> None:
    """Audit entries as a story, oldest first."""
    from radguard.common.v1 import common_pb2

    table = Table(title="audit trail")
    for col in ("seq", "time", "actor", "role", "action", "subject", "request"):
        table.add_column(col)
    if changes:
        table.add_column("change")
    for e in entries:
        row = [
            str(e.seq),
            _time(e.time),
            e.actor,
            _enum(common_pb2.Role, e.actor_role, "ROLE_"),
            e.action,
            e.subject,
            e.request_id[:20],
        ]
        if changes:
            row.append(_change(e.before_json, e.after_json))
        table.add_row(*row)
    _out.print(table)


def _change(before: str, after: str) -> str:
    try:
        old = json.loads(before) if before else {}
        new = json.loads(after) if after else {}
    except json.JSONDecodeError:
        return ""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    diffs = [
        f"{key}: {old.get(key)!s:.30} → {new.get(key)!s:.30}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and key not in ("row_version", "updated_at", "state_changed_at")
    ]
    return "; ".join(diffs[:4]) + (" …" if len(diffs) > 4 else "")


# --- models ------------------------------------------------------------------------------------


@models_app.command("register")
def models_register(
    triton_model: Annotated[str, typer.Argument(help="Triton model in the repository, e.g. chest_nodule")],
    triton_version: Annotated[int, typer.Argument(help="its numeric version folder, e.g. 2")],
    model: Annotated[
        str | None, typer.Option("--model", help="registry model name (default: the Triton model)")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="version label (default: the Triton version)")
    ] = None,
    policy: Annotated[str, typer.Option("--policy", help="change-control policy name")] = "standard",
    parent: Annotated[str, typer.Option("--parent", help="version it derives from")] = "",
    repo: Annotated[Path | None, typer.Option("--repo", help="model repository (default: the stack's)")] = None,
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Register a version exported into the model repository (card, calibration, metrics, lineage)."""
    from radguard.governance.v1 import governance_pb2 as pb
    from stack.settings import load_stack_settings

    repository = repo or load_stack_settings().model_repo
    message = version_from_repo(
        repository,
        triton_model,
        triton_version,
        model_name=model,
        version=version,
        policy=policy,
        parent_version=parent,
    )
    request = pb.RegisterVersionRequest(version=message, request_id=_request_id(request_id))
    result = _call(target, token, lambda stub, md: stub.RegisterVersion(request, metadata=md))
    _out.print(f"registered {result.ref.model_name} {result.ref.model_version} ({result.policy_ref})")
    print_versions([result])


@models_app.command("list")
def models_list(
    model: Annotated[str, typer.Option("--model", help="only this model")] = "",
    state: Annotated[list[str] | None, typer.Option("--state", help="only this state (repeatable)")] = None,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """List registered versions, newest first."""
    from radguard.governance.v1 import governance_pb2 as pb

    states = []
    for name in state or ():
        states.append(_parse_state(name, "--state"))
    versions: list[pb.ModelVersion] = []
    page = ""
    while True:
        request = pb.ListVersionsRequest(model_name=model, states=states, page_token=page)
        reply: pb.ListVersionsResponse = _call(target, token, _invoke("ListVersions", request))
        versions += reply.versions
        page = reply.next_page_token
        if not page:
            break
    if not versions:
        _out.print("no versions registered yet: `radguard models register MODEL VERSION`")
        return
    print_versions(versions)


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="version label")],
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Show one version: state, calibration, lineage and validation metrics."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.GetVersionRequest(model=common_pb2.ModelRef(model_name=model, model_version=version))
    print_version(_call(target, token, lambda stub, md: stub.GetVersion(request, metadata=md)))


@models_app.command("transition")
def models_transition(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="version label")],
    to: Annotated[str, typer.Option("--to", help="target state, e.g. validated, shadow, canary, retired")],
    reason: ReasonOption = "",
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Ask to move a version to another lifecycle state (pending until its approvals are signed)."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.RequestTransitionRequest(
        model=common_pb2.ModelRef(model_name=model, model_version=version),
        to_state=_parse_state(to, "--to"),
        reason=reason,
        request_id=_request_id(request_id),
    )
    print_transition(_call(target, token, lambda stub, md: stub.RequestTransition(request, metadata=md)))


# --- approvals ---------------------------------------------------------------------------------


def approve(
    transition_id: Annotated[str, typer.Argument(help="the pending transition")],
    meaning: Annotated[str, typer.Option("--meaning", help="what your signature means, e.g. 'approve canary'")],
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Sign an approval of a pending transition as the token's identity."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.ApproveRequest(transition_id=transition_id, meaning=meaning, request_id=_request_id(request_id))
    reply = _call(target, token, lambda stub, md: stub.Approve(request, metadata=md))
    a = reply.approval
    _out.print(
        f"signed by [bold]{a.signer}[/] as {_enum(common_pb2.Role, a.role, 'ROLE_')} at {_time(a.signed_at)} "
        f"({a.algorithm}, key {a.key_id}, signature {a.signature.hex()[:16]}…)"
    )
    print_transition(reply.transition)


# --- rollouts ----------------------------------------------------------------------------------


@rollout_app.command("start")
def rollout_start(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="candidate version (approved for canary)")],
    reason: ReasonOption = "",
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Start a gated canary rollout of a version against the stable one."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.StartRolloutRequest(
        candidate=common_pb2.ModelRef(model_name=model, model_version=version),
        reason=reason,
        request_id=_request_id(request_id),
    )
    print_rollout(_call(target, token, lambda stub, md: stub.StartRollout(request, metadata=md)))


@rollout_app.command("status")
def rollout_status(
    model: Annotated[str | None, typer.Argument(help="model name (its running or latest rollout)")] = None,
    rollout_id: Annotated[str | None, typer.Option("--id", help="a rollout id instead of a model")] = None,
    watch: Annotated[float, typer.Option("--watch", help="refresh every N seconds until it ends (0: once)")] = 0.0,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Show a rollout's plan, progress, latest gates and reasons."""
    from radguard.governance.v1 import governance_pb2 as pb

    if (model is None) == (rollout_id is None):
        raise StackError("give a MODEL or --id ROLLOUT_ID (exactly one)")
    request = pb.GetRolloutRequest(rollout_id=rollout_id) if rollout_id else pb.GetRolloutRequest(model_name=model)
    while True:
        rollout = _call(target, token, lambda stub, md: stub.GetRollout(request, metadata=md))
        print_rollout(rollout)
        if watch <= 0 or rollout.status not in (pb.ROLLOUT_STATUS_RUNNING, pb.ROLLOUT_STATUS_PAUSED):
            return
        time.sleep(watch)


def _rollout_command(name: str, rpc: str, message: str, doc: str) -> None:
    """Add ``rollout NAME ROLLOUT_ID``: the RPC ``rpc`` with the request message named ``message``."""

    def command(
        rollout_id: Annotated[str, typer.Argument(help="the rollout")],
        reason: ReasonOption = "",
        target: TargetOption = None,
        token: TokenOption = None,
        request_id: RequestIdOption = None,
    ) -> None:
        from radguard.governance.v1 import governance_pb2 as pb

        request = getattr(pb, message)(rollout_id=rollout_id, reason=reason, request_id=_request_id(request_id))
        print_rollout(_call(target, token, lambda stub, md: getattr(stub, rpc)(request, metadata=md)))

    command.__doc__ = doc
    rollout_app.command(name)(command)


_rollout_command("pause", "PauseRollout", "PauseRolloutRequest", "Hold a running rollout at its current step.")
_rollout_command("resume", "ResumeRollout", "ResumeRolloutRequest", "Let a paused rollout evaluate its gates again.")
_rollout_command(
    "abort", "AbortRollout", "AbortRolloutRequest", "Stop a rollout: 100% to stable, candidate rolled back."
)
_rollout_command("promote", "PromoteRollout", "PromoteRolloutRequest", "Advance a rollout one step now.")


def rollback(
    model: Annotated[str, typer.Argument(help="model name")],
    to: Annotated[str, typer.Option("--to", help="version to restore (default: the previous production)")] = "",
    reason: ReasonOption = "",
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Put a previous version back into production."""
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.RollbackRequest(model_name=model, to_version=to, reason=reason, request_id=_request_id(request_id))
    reply = _call(target, token, lambda stub, md: stub.Rollback(request, metadata=md))
    _out.print(
        f"rolled back {reply.rolled_back.ref.model_version} ({_state(reply.rolled_back.state)}); "
        f"{reply.restored.ref.model_version} is {_state(reply.restored.state)}"
    )
    print_routes(reply.routes)


# --- audit --------------------------------------------------------------------------------------


PUBLIC_KEY_ENV = "RADGUARD_AUDIT_PUBLIC_KEY_FILE"


def _stack_governance_home() -> Path:
    from stack.settings import load_stack_settings

    return load_stack_settings().state_dir / "governance"


def _local_stack_target(target: str | None) -> bool:
    return target is None and not os.environ.get(TARGET_ENV)


def _verifying_keys(given: list[Path] | None, local_stack: bool) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id: the flags, else ``$RADGUARD_AUDIT_PUBLIC_KEY_FILE``, else the local stack's."""
    from governance.domain.checkpoint import load_public_key, public_key_id

    paths = list(given or [])
    if not paths and (env := os.environ.get(PUBLIC_KEY_ENV, "").strip()):
        paths = [Path(env)]
    if not paths and local_stack:
        local = _stack_governance_home() / "audit-checkpoint-key.pub.pem"
        paths = [local] if local.is_file() else []
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            key = load_public_key(path)
        except (OSError, ValueError) as exc:
            raise StackError(f"--public-key {path}: {exc}") from None
        keys[public_key_id(key)] = key
    return keys


def _all_entries(target: str | None, token: str | None) -> list[AuditRecord]:
    from radguard.governance.v1 import governance_pb2 as pb
    from services.governance_api.adapters.audit_topic import audit_from_proto

    records: list[AuditRecord] = []
    page = ""
    while True:
        request = pb.QueryAuditRequest(page_size=1000, page_token=page)
        reply: pb.QueryAuditResponse = _call(target, token, _invoke("QueryAudit", request))
        records += [audit_from_proto(entry) for entry in reply.entries]
        page = reply.next_page_token
        if not page:
            return records


def _source_line(name: str, problems: Sequence[Disagreement], ok_text: str) -> None:
    if not problems:
        _out.print(f"{name:<16}[green]ok[/]: {ok_text}", highlight=False)
        return
    for problem in problems:
        where = f"seq {problem.seq}" if problem.seq is not None else "-"
        _out.print(f"{name:<16}[bold red]BAD[/] ({where}): {problem.reason}", highlight=False)


def _verify_database_only(target: str | None, token: str | None, from_seq: int, to_seq: int, *, noted: bool) -> None:
    from radguard.governance.v1 import governance_pb2 as pb

    request = pb.VerifyAuditRequest(from_seq=from_seq, to_seq=to_seq)
    reply = _call(target, token, lambda stub, md: stub.VerifyAudit(request, metadata=md))
    if not reply.ok:
        raise StackError(
            f"audit chain broken at seq {reply.first_bad_seq}: {reply.reason} ({reply.entries_checked} entries checked)"
        )
    _out.print(f"[bold green]ok[/]: {reply.entries_checked} entries verify; head {reply.head_hash}")
    if noted:
        _out.print("[dim]note: database only: checkpoints and the audit topic were not checked[/]")


def _print_report(
    verdict: pb.VerifyAuditResponse,
    report: WitnessReport,
    problems: Sequence[Disagreement],
    keys: dict[str, Ed25519PublicKey],
    audit_topic: str,
    undecodable: int,
) -> bool:
    """One line per source (ok, or each disagreement), the notes, and the conclusion; True when all agree."""
    from governance.domain.witness import first_bad_seq

    latest = report.latest_checkpoint
    _source_line(
        "database",
        [p for p in problems if p.source == "database"],
        f"{verdict.entries_checked} entries verify; head {verdict.head_hash}",
    )
    if keys:
        _source_line(
            "checkpoints",
            [p for p in problems if p.source in ("checkpoints", "checkpoint file")],
            f"{report.checkpoints_verified} signed checkpoints (keys {', '.join(sorted(keys))}) match the chain"
            + (f"; latest covers seq {latest.seq}, signed {latest.time.isoformat()}" if latest else ""),
        )
    else:
        _out.print(f"{'checkpoints':<16}[yellow]not checked[/]: no verifying key (--public-key or ${PUBLIC_KEY_ENV})")
    _source_line(
        "audit topic",
        [p for p in problems if p.source == "audit topic"],
        f"{report.published_compared} entries equal their copies on {audit_topic}",
    )
    for note in report.notes:
        _out.print(f"[dim]note: {note}[/]", highlight=False)
    if undecodable:
        _out.print(f"[dim]note: {undecodable} records on {audit_topic} could not be decoded[/]")
    if not problems:
        _out.print(f"[bold green]audit chain verified[/]: {report.entries} entries")
        return True
    bad_seq = first_bad_seq(problems)
    first = f"first bad seq {bad_seq}" if bad_seq is not None else "no entry named"
    which = ", ".join(dict.fromkeys(p.source for p in problems))
    _out.print(f"[bold red]audit chain does NOT verify[/]: {first} (disagreeing: {which})", highlight=False)
    return False


@audit_app.command("verify")
def audit_verify(
    from_seq: Annotated[int, typer.Option("--from", min=0, help="first seq (0: the start)")] = 0,
    to_seq: Annotated[int, typer.Option("--to", min=0, help="last seq (0: the head)")] = 0,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-key",
            help=f"checkpoint public key, PEM (repeatable; default ${PUBLIC_KEY_ENV} or the local stack's)",
        ),
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (default: the local stack's)")
    ] = None,
    audit_topic: Annotated[str, typer.Option("--audit-topic", help="the audit topic")] = AUDIT_TOPIC,
    checkpoints_file: Annotated[
        Path | None,
        typer.Option("--checkpoints-file", help="governance's local checkpoint file (default: the local stack's)"),
    ] = None,
    kafka_timeout_s: Annotated[
        float, typer.Option("--kafka-timeout", min=1.0, help="seconds reading the audit topic may take")
    ] = 30.0,
    database_only: Annotated[
        bool, typer.Option("--database-only", help="only recompute the stored chain (no checkpoints, no topic)")
    ] = False,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Verify the audit chain in the database against its signed checkpoints and the entries published on Kafka.

    Against the local stack (no --target) every witness is checked with the stack's key, Kafka and
    checkpoint file; against another deployment, give --bootstrap and --public-key (else only the stored
    chain is checked). Exit 0 when every source agrees; 1 naming the first bad seq and the sources that
    disagree, or when a source cannot be read.
    """
    from governance.domain.witness import Disagreement, compare_with_witnesses
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli.channels import kafka_security
    from services.runtime.errors import Unavailable
    from stack.settings import load_stack_settings

    local_stack = _local_stack_target(target)
    # Another deployment's witnesses are where its operator says: without --bootstrap or --public-key, only
    # the stored chain is checked there.
    witnesses = not (database_only or from_seq or to_seq) and (local_stack or bool(bootstrap or public_key))
    if not witnesses:
        _verify_database_only(target, token, from_seq, to_seq, noted=not database_only)
        return
    keys = _verifying_keys(public_key, local_stack)
    if checkpoints_file is None and local_stack:
        checkpoints_file = _stack_governance_home() / "audit-checkpoints.jsonl"
    # Witnesses first, then the database: whatever they hold was committed before the chain is read.
    servers = bootstrap or load_stack_settings().kafka_bootstrap
    try:
        from services.governance_api.adapters.audit_topic import read_audit_topic
        from services.governance_api.adapters.checkpoint_file import CheckpointFile

        topic = read_audit_topic(servers, audit_topic, timeout_s=kafka_timeout_s, security=kafka_security())
    except Unavailable as exc:
        raise StackError(f"cannot read the audit topic: {exc.message}") from None
    file_contents = CheckpointFile(checkpoints_file).read() if checkpoints_file is not None else None
    verdict: pb.VerifyAuditResponse = _call(target, token, _invoke("VerifyAudit", pb.VerifyAuditRequest()))
    records = _all_entries(target, token)

    sources: list[tuple[CheckpointSource, Checkpoint]] = []
    if keys:
        sources += [("audit topic", c) for c in topic.checkpoints]
    if keys and file_contents is not None:
        sources += [("checkpoint file", c) for c in file_contents.checkpoints]
    report = compare_with_witnesses(
        records, sources, topic.entries, keys, stored_head_hash=verdict.head_hash if verdict.ok else None
    )
    problems = list(report.disagreements)
    if file_contents is not None and file_contents.bad_lines:
        problems.append(
            Disagreement("checkpoint file", None, f"lines {file_contents.bad_lines} of {checkpoints_file} do not parse")
        )
    if not verdict.ok:
        problems.insert(0, Disagreement("database", verdict.first_bad_seq, verdict.reason))

    if not _print_report(verdict, report, problems, keys, audit_topic, topic.undecodable):
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    subject: Annotated[str, typer.Option("--subject", help="only this subject, e.g. model/chest_nodule/2")] = "",
    actor: Annotated[str, typer.Option("--actor", help="only this actor")] = "",
    action: Annotated[str, typer.Option("--action", help="only this action, e.g. access.denied")] = "",
    from_seq: Annotated[int, typer.Option("--from", min=0, help="first seq")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="most entries shown")] = 200,
    changes: Annotated[bool, typer.Option("--changes/--no-changes", help="show what each entry changed")] = True,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Read the audit trail in seq order: who did what to which subject, and what changed."""
    from radguard.governance.v1 import governance_pb2 as pb

    entries: list[events_pb2.AuditEntry] = []
    page = ""
    while len(entries) < limit:
        request = pb.QueryAuditRequest(
            from_seq=from_seq,
            subject=subject,
            actor=actor,
            action=action,
            page_size=min(limit - len(entries), 500),
            page_token=page,
        )
        reply: pb.QueryAuditResponse = _call(target, token, _invoke("QueryAudit", request))
        entries += reply.entries
        page = reply.next_page_token
        if not page:
            break
    if not entries:
        _out.print("no audit entries match")
        return
    print_audit(entries[:limit], changes=changes)


# --- tokens -------------------------------------------------------------------------------------


def default_tokens_file() -> Path:
    """Where the local stack's governance service reads its tokens."""
    from stack.settings import load_stack_settings

    return load_stack_settings().state_dir / "governance" / "tokens.json"


@tokens_app.command("add")
def tokens_add(
    principal: Annotated[str, typer.Option("--principal", help="account or user pseudonym")],
    role: Annotated[str, typer.Option("--role", help=f"one of {', '.join(ROLES)}")],
    file: Annotated[Path | None, typer.Option("--file", help="tokens file (default: the local stack's)")] = None,
    keyring: Annotated[
        Path | None, typer.Option("--keyring", help="signers' keyring (default: the local stack's)")
    ] = None,
) -> None:
    """Create a bearer token for PRINCIPAL acting as ROLE; the token is printed once and never stored.

    Board members and clinicians sign approvals: they also get a signing key in the keyring.
    """
    from services.governance_api.adapters.keyring import enrol
    from services.governance_api.auth import TokenFileError, add_token

    path = file or default_tokens_file()
    try:
        token = add_token(path, principal, role)
    except TokenFileError as exc:
        raise StackError(str(exc)) from None
    if role in ("board", "clinician"):
        keyring_path = keyring or path.with_name("keyring.json")
        if enrol(keyring_path, principal.strip()):
            _out.print(f"signing key for {principal} enrolled in {keyring_path}", highlight=False)
    _out.print(f"token for [bold]{principal}[/] ({role}) added to {path}; it is shown only now:", highlight=False)
    typer.echo(token)
