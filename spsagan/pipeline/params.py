"""params.yaml: schema validation and profile resolution.

Layout of params.yaml::

    profile: demo            # which column every stage reads: demo | paper
    <stage>:
      demo: {...}            # the stage's parameters for the offline CPU demo
      paper: {...}           # the same keys, at the paper's scale

Both profiles of a stage have the same keys (one code path); the schema
(`workflow/schemas/params.schema.yaml`) gives each stage's keys once and is applied to both.
Any unknown key, missing key or wrong type stops with a `ParamsError` naming the key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("demo", "paper")


class ParamsError(ValueError):
    """params.yaml (or a value passed for it) does not match the schema."""


def load_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc


def full_schema(stage_schemas: dict) -> dict:
    """Expand per-stage body schemas into a JSON schema for the whole params.yaml."""
    stages = {}
    for name, body in stage_schemas.items():
        body = {"type": "object", "additionalProperties": False, **body}
        body.setdefault("required", sorted(body.get("properties", {})))
        stages[name] = {
            "type": "object",
            "additionalProperties": False,
            "required": list(PROFILES),
            "properties": {p: body for p in PROFILES},
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["profile", *stages],
        "properties": {"profile": {"enum": list(PROFILES)}, **stages},
    }


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _explain(error, prefix: str = "") -> str:
    """One line naming the key and what to do, for a jsonschema ValidationError."""
    where = ".".join(p for p in (prefix, _key_path(error) if error.absolute_path else "") if p) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(f"{where}.{k}" if where != "<top level>" else k for k in extra)
        return f"unknown key {keys}; allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        # jsonschema reports one error per missing property; its message quotes the name.
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return f"missing key {missing if where == '<top level>' else f'{where}.{missing}'}"
    if error.validator == "type":
        return (f"{where}: expected {error.validator_value}, got {type(error.instance).__name__} "
                f"{error.instance!r} (write floats like 1.0e-4, not 1e-4: YAML reads that as text)")
    return f"{where}: {error.message}"


def validate(params: Any, stage_schemas: dict, source: str = "params.yaml") -> None:
    """Raise ParamsError listing every problem in `params` (each line names its key)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(full_schema(stage_schemas))
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {line}" for line in dict.fromkeys(_explain(e) for e in errors))
        raise ParamsError(f"{source} does not match its schema:\n{lines}")


def load_params(path: str | os.PathLike, schema_path: str | os.PathLike) -> dict:
    """Load and validate params.yaml against the per-stage schema file."""
    params = load_yaml(path)
    validate(params, load_yaml(schema_path)["stages"], source=str(path))
    return params


def stage_params(params: dict, stage: str, profile: str | None = None) -> dict:
    """The active profile's section of `stage` (a plain dict)."""
    profile = profile or params["profile"]
    return params[stage][profile]


def section_from_arg(value: str, stage: str, schema_path: str | os.PathLike) -> dict:
    """Resolve a step's `--params` argument: inline JSON (what Snakemake passes) or a params.yaml path.

    Inline JSON is one stage's resolved section; a path is loaded, validated whole, and the active
    profile's section returned. Either way the result has passed the stage's schema.
    """
    schemas = load_yaml(schema_path)["stages"]
    if stage not in schemas:
        raise ParamsError(f"no stage {stage!r} in {schema_path}")
    if value.lstrip().startswith("{"):
        try:
            section = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"--params for {stage}: not valid JSON: {exc}") from exc
        validate_stage(section, stage, schemas)
        return section
    return stage_params(load_params(value, schema_path), stage)


def validate_stage(section: Any, stage: str, schemas: dict) -> None:
    """Validate one resolved section against its stage's body schema."""
    import jsonschema

    body = {"type": "object", "additionalProperties": False, **schemas[stage]}
    body.setdefault("required", sorted(body.get("properties", {})))
    errors = list(jsonschema.Draft202012Validator(body).iter_errors(section))
    if errors:
        lines = "\n".join(f"  - {line}" for line in dict.fromkeys(_explain(e, stage) for e in errors))
        raise ParamsError(f"params for stage {stage} do not match the schema:\n{lines}")
