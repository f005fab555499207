"""Views generated from the params declarations in `spsagan.config`: the schema file and the reference.

Every key is declared once, as a `spsagan.config.key(...)` field of its section's dataclass. From
those declarations this module writes two files, and tells whether the committed ones are current:

- `workflow/schemas/params.schema.yaml`: the JSON schema (in YAML) the pipeline validates params.yaml
  with, one body per stage, applied to both profiles (`spsagan.pipeline.params.full_schema`). It stays
  a file because the registry names it (`params_schema`), so a toy pipeline in the tests brings its own.
- `docs/params.md`: one table per stage: key, type and range, runtime or not, and the key's doc.

`python -m spsagan.pipeline params-views` rewrites both; `check-params-views` (and a test) fails
while either differs from what the declarations give.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from spsagan.config import CONFIGS, declared, runtime_keys
from spsagan.tables import markdown

SCHEMA_FILE = Path("workflow/schemas/params.schema.yaml")
REFERENCE_FILE = Path("docs/params.md")
COMMAND = "python -m spsagan.pipeline params-views"

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


# --------------------------------------------------------------------------------------------------
# Declarations -> JSON schema


def _literals(hint: Any) -> list | None:
    """The values a Literal (or bool, as true and false) allows; None for any other type."""
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    return [True, False] if hint is bool else None


def _fixed(values: list) -> dict:
    return {"const": values[0]} if len(values) == 1 else {"enum": values}


def _type_schema(hint: Any, bounds: dict) -> dict:
    """The JSON schema of a type annotation; numeric bounds go to the numbers wherever they sit."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return _fixed(list(args))
    if origin in (typing.Union, types.UnionType):
        # A union of fixed values and at most one open type: `auto | true | false`, `all | integer`.
        fixed = [v for a in args if (vals := _literals(a)) is not None for v in vals]
        open_types = [a for a in args if _literals(a) is None]
        if not open_types:
            return _fixed(fixed)
        (other,) = open_types
        return {"oneOf": [_fixed(fixed), _type_schema(other, bounds)]}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], bounds)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], bounds)}
    schema = {"type": _JSON_TYPES[hint]}
    if hint in (int, float):
        schema.update({_BOUNDS[name]: value for name, value in bounds.items()})
    return schema


def key_schema(field: dataclasses.Field, hint: Any) -> dict:
    """One key's schema: its type and range, and its doc as the description."""
    rules = field.metadata["rules"]
    schema = _type_schema(hint, rules["bounds"])
    if rules["length"] is not None:
        schema.update(minItems=rules["length"], maxItems=rules["length"])
    if rules["nonempty"]:
        schema["minItems" if schema.get("type") == "array" else "minProperties"] = 1
    schema["description"] = field.metadata["doc"]
    return schema


def stage_schemas() -> dict[str, dict]:
    """Each stage's body schema, as the schema file holds it (every listed key is required)."""
    out = {}
    for stage, cls in CONFIGS.items():
        hints = typing.get_type_hints(cls)
        out[stage] = {"properties": {name: key_schema(f, hints[name]) for name, f in declared(cls).items()}}
    return out


def schema_text() -> str:
    header = [
        f"# Generated from the declarations in spsagan/config.py by `{COMMAND}`: do not edit.",
        "# JSON schema (written in YAML) of each stage's section of params.yaml. The same keys apply to both",
        "# profiles (demo and paper); spsagan/pipeline/params.py wraps them and names any bad key in its error.",
        "# Every key listed under `properties` is required.",
    ]
    body = yaml.safe_dump(
        {"stages": stage_schemas()}, sort_keys=False, default_flow_style=None, width=200, allow_unicode=True
    )
    return "\n".join(header) + "\n" + body


# --------------------------------------------------------------------------------------------------
# JSON schema -> the reference in Markdown


def _value(v: Any) -> str:
    return f"`{str(v).lower() if isinstance(v, bool) else v}`"


def _range(schema: dict) -> str:
    low = next(((k, schema[k]) for k in ("minimum", "exclusiveMinimum") if k in schema), None)
    high = next(((k, schema[k]) for k in ("maximum", "exclusiveMaximum") if k in schema), None)
    if low and high:
        return f" in {'[' if low[0] == 'minimum' else '('}{low[1]}, {high[1]}{']' if high[0] == 'maximum' else ')'}"
    if low:
        return f" {'≥' if low[0] == 'minimum' else '>'} {low[1]}"
    if high:
        return f" {'≤' if high[0] == 'maximum' else '<'} {high[1]}"
    return ""


def describe_type(schema: dict) -> str:
    """A key's type and range in words: `integer ≥ 1`, `list of number in [0, 1), 2 items`."""
    if "const" in schema:
        return _value(schema["const"])
    if "enum" in schema:
        return " | ".join(map(_value, schema["enum"]))
    if "oneOf" in schema:
        return " or ".join(describe_type(s) for s in schema["oneOf"])
    kind = schema["type"]
    if kind == "array":
        items = schema.get("minItems"), schema.get("maxItems")
        count = f", {items[0]} items" if items[0] == items[1] and items[0] else ""
        count = count or (f", ≥ {items[0]} item{'s' * (items[0] > 1)}" if items[0] else "")
        return f"list of {describe_type(schema['items'])}{count}"
    if kind == "object":
        entries = f", ≥ {schema['minProperties']} entry" if schema.get("minProperties") else ""
        return f"map of string → {describe_type(schema['additionalProperties'])}{entries}"
    return kind + _range(schema)


def reference_text() -> str:
    runtime_note = (
        "**runtime**: the key chooses how the stage runs, not what it computes; changing it reruns\n"
        "nothing (neither Snakemake nor DVC hashes it), and a resumed run may take the new value."
    )
    lines = [
        "# params.yaml reference",
        "",
        f"Generated from the declarations in `spsagan/config.py` by `{COMMAND}`;",
        "do not edit (a test fails when this page drifts from them). Every key below is required in both",
        "profiles (`demo` and `paper`) of its stage's section of `params.yaml`, which holds the values; an",
        "unknown, missing or mistyped key stops the run before any stage, naming the key. The checks between",
        "keys and between stages (a crop that is not a multiple of 4, a test set `make_lr` does not make)",
        "are the `check` methods in the same module.",
        "",
        runtime_note,
    ]
    for stage, body in stage_schemas().items():
        rows = [
            (f"`{name}`", describe_type(schema), "yes" if name in runtime_keys(stage) else "", schema["description"])
            for name, schema in body["properties"].items()
        ]
        lines += ["", f"## {stage}", "", *markdown(["key", "type and range", "runtime", "meaning"], rows)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The files


def views() -> dict[Path, str]:
    """Each generated file (relative to the repository root) and the text it should hold."""
    return {SCHEMA_FILE: schema_text(), REFERENCE_FILE: reference_text()}


def write_views(root: str | Path = ".") -> list[Path]:
    """Rewrite the generated files under `root`; returns the ones that changed."""
    changed = []
    for rel, text in views().items():
        path = Path(root) / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    return changed


def stale_views(root: str | Path = ".") -> list[Path]:
    """The generated files under `root` that differ from what the declarations give."""
    return [
        rel
        for rel, text in views().items()
        if not (Path(root) / rel).exists() or (Path(root) / rel).read_text(encoding="utf-8") != text
    ]
