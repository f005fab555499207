"""params.yaml: schema validation and profile resolution.

Layout of params.yaml::

    profile: demo            # which column every stage reads: demo | paper
    <stage>:
      demo: {...}            # the stage's parameters for the offline CPU demo
      paper: {...}           # the same keys, at the paper's scale

Both profiles of a stage have the same keys (one code path); the schema
(`workflow/schemas/params.schema.yaml`, generated from the declarations in `spsagan.config` by
`spsagan.pipeline.param_views`) gives each stage's keys once and is applied to both.
Any unknown, missing, duplicated or mistyped key stops with a `ConfigError` naming the key; then
each section becomes its stage's typed config (`spsagan.config`), whose checks run for both profiles.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from spsagan.config import CONFIGS, PROFILES, check_across_stages, from_section
from spsagan.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (the earlier value would be silently dropped)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc


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
        doc = error.schema.get("properties", {}).get(missing, {}).get("description")
        about = f" ({doc})" if doc else ""
        return f"missing key {missing if where == '<top level>' else f'{where}.{missing}'}{about}"
    if error.validator == "type":
        return (
            f"{where}: expected {error.validator_value}, got {type(error.instance).__name__} "
            f"{error.instance!r} (write floats like 1.0e-4, not 1e-4: YAML reads that as text)"
        )
    return f"{where}: {error.message}"


def validate(params: Any, stage_schemas: dict, source: str = "params.yaml") -> None:
    """Raise ConfigError listing every problem in `params` (each line names its key)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(full_schema(stage_schemas))
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {line}" for line in dict.fromkeys(_explain(e) for e in errors))
        raise ConfigError(f"{source} does not match its schema:\n{lines}")


def load_params(path: str | os.PathLike, schema_path: str | os.PathLike) -> dict:
    """Load params.yaml, validate it against the per-stage schema file and check every typed config."""
    params = load_yaml(path)
    validate(params, load_yaml(schema_path)["stages"], source=str(path))
    check_configs(params)
    return params


def typed_configs(params: dict, profile: str) -> dict[str, Any]:
    """The typed config of every stage (of `spsagan.config.CONFIGS`) in a schema-valid params dict."""
    return {stage: from_section(stage, params[stage][profile]) for stage in CONFIGS if stage in params}


def check_configs(params: dict) -> None:
    """Run every typed config's checks, and the checks across stages, for both profiles."""
    for profile in PROFILES:
        try:
            configs = typed_configs(params, profile)
            if set(configs) == set(CONFIGS):  # a partial params file (a toy pipeline) has no cross-checks
                check_across_stages(configs)
        except ConfigError as exc:
            raise ConfigError(f"params.yaml, profile {profile}: {exc}") from None


def stage_params(params: dict, stage: str, profile: str | None = None) -> dict:
    """The active profile's section of `stage` (a plain dict)."""
    profile = profile or params["profile"]
    return params[stage][profile]


def config_from_arg(value: str, stage: str, schema_path: str | os.PathLike):
    """A step's typed config from its `--params` argument: inline JSON (what Snakemake passes) or a
    params.yaml path (validated whole; the active profile's section is used)."""
    return from_section(stage, section_from_arg(value, stage, schema_path))


def section_from_arg(value: str, stage: str, schema_path: str | os.PathLike) -> dict:
    """Resolve a step's `--params` argument: inline JSON (what Snakemake passes) or a params.yaml path.

    Inline JSON is one stage's resolved section; a path is loaded, validated whole, and the active
    profile's section returned. Either way the result has passed the stage's schema.
    """
    schemas = load_yaml(schema_path)["stages"]
    if stage not in schemas:
        raise ConfigError(f"no stage {stage!r} in {schema_path}")
    if value.lstrip().startswith("{"):
        try:
            section = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--params for {stage}: not valid JSON: {exc}") from exc
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
        raise ConfigError(f"params for stage {stage} do not match the schema:\n{lines}")


def load_config(
    stage: str,
    profile: str | None = None,
    params_path: str | os.PathLike = "params.yaml",
    schema_path: str | os.PathLike = "workflow/schemas/params.schema.yaml",
):
    """One stage's typed config from params.yaml (the active profile unless `profile` is given).

    For scripts and tests: `dataclasses.replace(load_config("pretrain_psnr", "demo"), iters=10)`.
    """
    params = load_params(params_path, schema_path)
    return from_section(stage, stage_params(params, stage, profile))


def read_numbers(params, stage_schemas):
    """Where the schema wants a number, take text that YAML 1.2 reads as one as that float, in place.

    `dvc exp run -S` writes floats as Python spells them (5.0e-5 becomes `5e-05`); DVC reads that as a
    number, but Snakemake's YAML loader (PyYAML, YAML 1.1) reads the string '5e-05', which the schema
    would refuse. Any other mismatch is left for `validate` to report.
    """
    import jsonschema

    number = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
    found = []
    for error in jsonschema.Draft202012Validator(full_schema(stage_schemas)).iter_errors(params):
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        if (
            error.validator == "type"
            and {"number", "integer"} & set(wanted)
            and error.absolute_path
            and isinstance(error.instance, str)
            and number.fullmatch(error.instance.strip())
        ):
            found.append(list(error.absolute_path))
    for path in found:
        node = params
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = float(node[path[-1]])
