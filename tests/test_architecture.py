"""The layers of docs/architecture.md hold: the paper's code never reaches into the operations wing.

Read from the source with `ast` (no import runs), so a lazy import inside a function counts too.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spsagan"
WING = PACKAGE / "pipeline"
# What only the operations wing may import: the two tools and the wing itself (registry, params, ...).
FORBIDDEN = ("snakemake", "dvc", "spsagan.pipeline")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_module_outside_the_wing_imports_snakemake_dvc_or_the_registry():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if WING in path.parents:
            continue
        bad = [n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(set(bad))
    assert not offenders, f"the paper's code imports the operations wing or a pipeline tool: {offenders}"


def test_the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from spsagan.pipeline.registry import load_registry\n    import dvc.api\n")
    assert {"spsagan.pipeline.registry", "dvc.api"} <= set(_imports(module))


def test_every_public_exception_lives_in_errors_py():
    """spsagan/errors.py lists each exception with who handles it; a class defined elsewhere would escape it."""
    elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = [b.id for b in getattr(node, "bases", []) if isinstance(b, ast.Name)]
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                if any(b.endswith(("Error", "Exception")) or b in ("ConfigError", "InUse") for b in bases):
                    elsewhere.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not elsewhere, f"exceptions outside spsagan/errors.py: {elsewhere}"
