"""An HTML template that makes `dvc plots show` / `dvc plots diff` pages work without the internet.

DVC's page loads vega, vega-lite and vega-embed from a CDN, so it is blank offline. The template
written here (for `--html-template`) carries the three libraries inline, in the versions the
installed DVC asks for (read from `dvc_render`), and no `{scripts}` slot, so DVC adds no CDN tag:
the page it writes is one self-contained file. The libraries are fetched once from the npm
registry, checked against the registry's sha512, and kept in `downloads/npm/` (git-ignored:
third-party code is never committed). `make plots` writes the template and runs `dvc plots show`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import urllib.request
from pathlib import Path

from spsagan.atomic import write_text

REGISTRY = "https://registry.npmjs.org"
_CDN_TAG = re.compile(r'src="https://cdn\.jsdelivr\.net/npm/(?P<name>[\w.-]+)@(?P<version>[\w.-]+)"')
# dvc_render replaces these in the whole page, library code included.
_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{libraries}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def dvc_libraries() -> list[tuple[str, str]]:
    """(npm name, version) of each library DVC's Vega page loads from its CDN, in load order."""
    from dvc_render.vega import VegaRenderer

    found = [(m["name"], m["version"]) for m in _CDN_TAG.finditer(VegaRenderer.SCRIPTS)]
    if not found:
        raise RuntimeError(
            "dvc_render's Vega page names no CDN library: this DVC is not supported by "
            "spsagan.pipeline.plots; use `dvc plots show --json` or the PNG figures in reports/figures/"
        )
    return found


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https or a local file:// mirror)
        return response.read()


def fetch(name: str, version: str, cache_dir: str | Path, registry: str = REGISTRY) -> str:
    """The browser build of npm package `name@version` (its `jsdelivr` file, what the CDN serves).

    Downloaded once into `cache_dir`; the tarball must match the registry's sha512 `integrity`.
    """
    cached = Path(cache_dir) / f"{name}-{version}.js"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    dist = json.loads(_get(f"{registry.rstrip('/')}/{name}/{version}"))["dist"]
    tarball = _get(dist["tarball"])
    algorithm, _, expected = dist.get("integrity", "").partition("-")
    actual = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if algorithm != "sha512" or actual != expected:
        raise ValueError(
            f"{name}@{version}: the tarball from {dist['tarball']} does not match the registry's "
            f"sha512 ({dist.get('integrity')!r}); not using it"
        )
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        meta = json.load(tar.extractfile("package/package.json"))
        entry = meta.get("jsdelivr") or meta.get("unpkg")
        if not entry:
            raise ValueError(f"{name}@{version}: package.json names no browser build (jsdelivr/unpkg)")
        code = tar.extractfile(f"package/{entry.removeprefix('./')}").read().decode("utf-8")
    write_text(cached, code)
    return code


def _inline(name: str, version: str, code: str) -> str:
    if any(p in code for p in _PLACEHOLDERS):
        raise ValueError(f"{name}@{version} contains one of DVC's page placeholders {_PLACEHOLDERS}")
    code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)  # may not end the element early
    return f'    <script type="text/javascript">/* {name}@{version} (npm) */\n{code}\n    </script>'


def offline_template(cache_dir: str | Path = "downloads/npm", registry: str = REGISTRY) -> str:
    """The page template with DVC's plotting libraries inlined (fetched if not cached)."""
    libraries = "\n".join(_inline(n, v, fetch(n, v, cache_dir, registry)) for n, v in dvc_libraries())
    return PAGE.replace("{libraries}", libraries)


def write_offline_template(path: str | Path, cache_dir: str | Path = "downloads/npm", registry: str = REGISTRY) -> Path:
    write_text(path, offline_template(cache_dir, registry))
    return Path(path)
