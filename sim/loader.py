"""Loads scenarios from YAML: the shipped ones by name, or any file by path.

A scenario file may start with ``extends: <name or relative path>``; it is then deep-merged over that
scenario (mappings merge key by key, everything else, lists included, replaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml

from sim.specs import Scenario

#: Folder of the scenarios shipped with the package.
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_EXTENDS = "extends"
_SUFFIXES = (".yaml", ".yml")


class ScenarioError(ValueError):
    """A scenario could not be found, parsed or validated; the message names the file and the field."""


def available_scenarios() -> tuple[str, ...]:
    """Names of the scenarios shipped with the package, sorted."""
    return tuple(sorted(path.stem for path in SCENARIO_DIR.glob("*.yaml")))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (``"new_scanner"``) or a scenario YAML file by path.

    Args:
        name_or_path: A shipped scenario's name, or a path (anything with a ``/`` or a YAML suffix).

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: If the scenario does not exist, is not valid YAML, or fails validation; the
            message names the offending field, e.g. ``sites[0].scanners[1].noise_sd``.
    """
    path = _resolve(name_or_path, base=None)
    return scenario_from_mapping(_read_merged(path, chain=()), source=str(path))


def scenario_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Scenario:
    """Validate a plain mapping (e.g. parsed YAML) as a scenario.

    Args:
        data: The scenario's fields.
        source: Where the data came from, for error messages.

    Raises:
        ScenarioError: If validation fails.
    """
    try:
        return pydantic.TypeAdapter(Scenario).validate_python(dict(data))
    except pydantic.ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ScenarioError(f"scenario {source}: {problems}") from None


def _describe(error: Mapping[str, Any]) -> str:
    location = _field_path(error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    # Cross-field checks raise ValueError, which pydantic prefixes; the message already names the field.
    message = message.removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _resolve(name_or_path: str | Path, base: Path | None) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(_SUFFIXES):
        path = Path(name_or_path)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {path}")
        return path
    path = SCENARIO_DIR / f"{text}.yaml"
    if not path.is_file():
        shipped = ", ".join(available_scenarios())
        raise ScenarioError(f"unknown scenario {text!r}; shipped scenarios: {shipped}")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"scenario {path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario {path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _read_merged(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ScenarioError(f"scenario {path}: {_EXTENDS} forms a cycle: {cycle}")
    data = _read_yaml(path)
    parent = data.pop(_EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ScenarioError(f"scenario {path}: {_EXTENDS}: must be a scenario name or relative path")
    base = _read_merged(_resolve(parent, base=path.parent), chain=(*chain, resolved))
    return _deep_merge(base, data)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged
