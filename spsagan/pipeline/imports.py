"""A step script's code dependencies: the project modules it can import, found by reading the source.

`closure(script, package_dir)` parses the script with `ast` and follows every `import` and
`from ... import ...` that names the package, at module level and inside functions alike (a lazy
import still runs when the step does). Importing `a.b.c` executes `a/__init__.py` and
`a/b/__init__.py` first, so those files join the closure too. `from a.b import name` adds the
module `a/b/name.py` when `name` is a submodule, and otherwise follows `name` through the package's
lazy re-exports: a literal `_LAZY = {"name": "a.b.module"}` in its `__init__.py` (see
`spsagan/models/__init__.py`). Imports of other packages (torch, numpy) are not project code.

The registry uses this for every stage, so Snakemake and DVC rerun a stage exactly when a module its
step can execute changed, and no hand-kept list can drift.
"""

from __future__ import annotations

import ast
import functools
import os
from pathlib import Path


def _module_file(package_root: Path, module: str) -> Path | None:
    """The file of a dotted module name under `package_root` (the folder holding the package)."""
    base = package_root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(package_root: Path, path: Path) -> str:
    parts = list(path.relative_to(package_root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _lazy_exports(tree: ast.Module) -> dict[str, str]:
    """The `_LAZY = {name: module}` literal of a package `__init__`, if any."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
    return {}


def _imported(tree: ast.Module, current: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, names) for every import statement anywhere in the tree; names are `from` targets."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the current module
                anchor = current.split(".") if is_package else current.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [alias.name for alias in node.names]))
    return found


def closure(script: str | os.PathLike, package_dir: str | os.PathLike) -> list[Path]:
    """Every file of the package that running `script` can import, `script` itself excluded.

    package_dir: the package folder (e.g. `spsagan`); the result lists paths as
    `package_dir / ...`, sorted, in the same relative or absolute form as `package_dir`.
    """
    package_dir = Path(package_dir)
    root, package = package_dir.parent, package_dir.name
    seen: set[Path] = set()
    queue: list[tuple[Path, str, bool]] = [(Path(script), "__main__", False)]

    def add_module(module: str) -> None:
        parts = module.split(".")
        if parts[0] != package:
            return
        for i in range(1, len(parts) + 1):  # every parent package's __init__ runs first
            path = _module_file(root, ".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                queue.append((path, ".".join(parts[:i]), path.name == "__init__.py"))

    while queue:
        path, name, is_package = queue.pop()
        tree = _parse(path, path.stat().st_mtime_ns)
        for module, names in _imported(tree, name, is_package):
            add_module(module)
            init = _module_file(root, module) if module.split(".")[0] == package else None
            if init is None or init.name != "__init__.py":
                continue
            lazy = _lazy_exports(_parse(init, init.stat().st_mtime_ns))
            for n in names:
                if _module_file(root, f"{module}.{n}") is not None:
                    add_module(f"{module}.{n}")
                elif n in lazy:
                    add_module(lazy[n])
                elif n == "*":
                    for target in lazy.values():
                        add_module(target)
    return sorted(seen)


def module_names(files: list[Path], package_dir: str | os.PathLike) -> list[str]:
    """Dotted names of closure files (for messages and tests)."""
    return [_module_name(Path(package_dir).parent, f) for f in files]
