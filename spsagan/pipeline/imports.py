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
import json
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


def _statements(body: list[ast.stmt]):
    """Every statement, nested ones included (function bodies, branches, handlers), but no expression:
    an import is a statement, and skipping expressions makes this ten times faster than `ast.walk`."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)


def _file_facts(path: Path) -> dict:
    """What one file says about imports: {"imports": [[level, module, [names]]], "lazy": {name: module}}."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imports = []
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            imports += [[0, alias.name, []] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append([node.level, node.module or "", [alias.name for alias in node.names]])
    lazy = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            value = ast.literal_eval(node.value)
            lazy = {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {"imports": imports, "lazy": lazy}


class FactCache:
    """Per-file import facts, keyed by path, size and mtime; optionally kept in a JSON file.

    Parsing is most of the cost of a closure (about 60 files); with the file, a Snakemake run that
    changes nothing parses nothing. A changed file has a new mtime or size and is parsed again.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self.entries: dict = {}
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                self.entries = {}  # a damaged cache is rebuilt

    def facts(self, path: Path) -> dict:
        st = path.stat()
        key, stamp = str(path.resolve()), [st.st_mtime_ns, st.st_size]
        entry = self.entries.get(key)
        if entry is None or entry["stamp"] != stamp:
            entry = {"stamp": stamp, **_file_facts(path)}
            self.entries[key] = entry
            self.changed = True
        return entry

    def save(self) -> None:
        if self.path is not None and self.changed:
            from spsagan.atomic import write_text

            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(self.entries))
            self.changed = False


def _resolve(level: int, module: str, current: str, is_package: bool) -> str:
    """The absolute module name of an import; relative ones resolve against the importing module."""
    if not level:
        return module
    anchor = current.split(".") if is_package else current.split(".")[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([module] if module else []))


def closure(script: str | os.PathLike, package_dir: str | os.PathLike, cache: FactCache | None = None) -> list[Path]:
    """Every file of the package that running `script` can import, `script` itself excluded.

    package_dir: the package folder (e.g. `spsagan`); the result lists paths as
    `package_dir / ...`, sorted, in the same relative or absolute form as `package_dir`.
    cache: per-file facts shared between calls (and runs, when it has a file).
    """
    cache = cache or FactCache()
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
        for level, raw, names in cache.facts(path)["imports"]:
            module = _resolve(level, raw, name, is_package)
            add_module(module)
            init = _module_file(root, module) if module.split(".")[0] == package else None
            if init is None or init.name != "__init__.py":
                continue
            lazy = cache.facts(init)["lazy"]
            for n in names:
                if _module_file(root, f"{module}.{n}") is not None:
                    add_module(f"{module}.{n}")
                elif n in lazy:
                    add_module(lazy[n])
                elif n == "*":
                    for target in lazy.values():
                        add_module(target)
    return sorted(seen)
