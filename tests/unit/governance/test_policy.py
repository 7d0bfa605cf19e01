"""Policy files: the shipped ones load, the schema file agrees with the model, bad files give exact errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from governance.domain.policy import (
    POLICY_DIR,
    SCHEMA_PATH,
    PolicyCatalog,
    PolicyError,
    load_policy,
    policy_json_schema,
)
from services.runtime.errors import NotFound


def _good() -> dict:
    return yaml.safe_load((POLICY_DIR / "standard.yaml").read_text())


def _write(tmp_path: Path, document: object, name: str = "standard") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def test_shipped_policies_load():
    policies = {p.name: p for p in PolicyCatalog().load_all()}
    assert set(policies) == {"standard", "fast-test"}
    standard = policies["standard"]
    assert standard.ref == "standard@1"
    assert [s.weight_bp for s in standard.steps] == [500, 2500, 5000, 10000]
    assert standard.approval_rule("shadow->canary").count == 2
    assert standard.approval_rule("registered->shadow") is None
    assert not standard.separation_of_duties.registrant_may_approve


def test_schema_file_agrees_with_model():
    assert json.loads(SCHEMA_PATH.read_text()) == policy_json_schema()


def test_catalog_unknown_policy():
    with pytest.raises(NotFound, match="policy 'nope' not found"):
        PolicyCatalog().get("nope")


def _error(tmp_path: Path, document: object) -> str:
    path = _write(tmp_path, document)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.path == str(path)
    return str(info.value).removeprefix(f"{path}: ")


def test_bad_yaml(tmp_path):
    message = _error(tmp_path, "name: standard\nsteps: [\n  - a: b: c\n")
    assert message.startswith("invalid YAML at line 3, column")


def test_not_a_mapping(tmp_path):
    assert _error(tmp_path, "- 1\n- 2\n") == "must be a mapping of policy fields"


def test_unknown_field(tmp_path):
    doc = _good()
    doc["gates"]["max_eec"] = 0.1
    assert _error(tmp_path, doc) == "gates.max_eec: unknown field"


def test_weight_out_of_range(tmp_path):
    doc = _good()
    doc["steps"][2]["weight_bp"] = 10001
    assert _error(tmp_path, doc) == "steps[2].weight_bp: must be <= 10000"


def test_steps_not_increasing(tmp_path):
    doc = _good()
    doc["steps"][2]["weight_bp"] = 2500
    assert _error(tmp_path, doc) == "steps[2].weight_bp: must be greater than steps[1].weight_bp (2500)"


def test_last_step_not_full(tmp_path):
    doc = _good()
    doc["steps"] = doc["steps"][:3]
    assert _error(tmp_path, doc) == "steps[2].weight_bp: the last step must be 10000 (all traffic)"


def test_missing_approval_roles(tmp_path):
    doc = _good()
    del doc["approvals"]["shadow->canary"]["roles"]
    assert _error(tmp_path, doc) == "approvals.shadow->canary.roles: is required"


def test_unknown_role(tmp_path):
    doc = _good()
    doc["approvals"]["shadow->canary"]["roles"] = ["board", "janitor"]
    assert (
        _error(tmp_path, doc)
        == "approvals.shadow->canary.roles[1]: must be one of: clinician, board, operator, service"
    )


def test_unknown_transition_name(tmp_path):
    doc = _good()
    doc["approvals"]["shadow->moon"] = {"count": 1, "roles": ["board"]}
    assert _error(tmp_path, doc) == 'approvals.shadow->moon: unknown transition name (use "from->to")'


def test_rollback_approvals_are_refused_not_ignored(tmp_path):
    doc = _good()
    doc["approvals"]["rollback"] = {"count": 2, "roles": ["board"]}
    assert _error(tmp_path, doc) == 'approvals.rollback: unknown transition name (use "from->to")'


def test_wrong_type_and_missing_section(tmp_path):
    doc = _good()
    doc["revision"] = "one"
    assert _error(tmp_path, doc) == "revision: must be of type integer"
    doc = _good()
    del doc["gates"]
    assert _error(tmp_path, doc) == "gates: is required"


def test_confidence_bounds_and_name(tmp_path):
    doc = _good()
    doc["gates"]["confidence"] = 1.0
    assert _error(tmp_path, doc) == "gates.confidence: must be < 1"
    doc = _good()
    doc["name"] = "other"
    assert _error(tmp_path, doc) == "name: must equal the file name 'standard'"


def test_error_path_is_relative_inside_the_repo():
    error = PolicyError(POLICY_DIR / "x.yaml", "/steps/2/weight_bp", "must be <= 10000")
    assert str(error) == "governance/policies/x.yaml: steps[2].weight_bp: must be <= 10000"
