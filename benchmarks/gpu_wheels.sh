#!/usr/bin/env bash
# Wheels for the GPU machine's image (Python 3.12, x86-64), which has torch, numpy, pandas, OpenCV, scikit-image,
# matplotlib and seaborn but not the pipeline's own tools (snakemake, dvclive, jsonschema, ...): for every package
# of this project's environment (.venv) that the image lacks, the same version as a wheel for that Python, into
# .whl/ (git-ignored), for benchmarks/gpu_suite.sh. Pure-Python packages published only as source are built into
# wheels here. Run where pip reaches PyPI:
#
#   benchmarks/gpu_wheels.sh [DEST]      # prints the size: a device call carries 64 MiB in all
set -euo pipefail
DEST=${1:-.whl}
VENV_PY=${VENV_PY:-.venv/bin/python}
# Packages the image already holds (its package list), lower case with '-'.
HAVE=" torch numpy pandas scipy scikit-learn scikit-image opencv-python-headless matplotlib seaborn pyyaml tqdm
pillow networkx sympy jinja2 markupsafe filelock fsspec typing-extensions triton setuptools packaging attrs psutil
requests urllib3 idna certifi charset-normalizer contourpy cycler fonttools kiwisolver pyparsing python-dateutil six
imageio tifffile lazy-loader joblib threadpoolctl mpmath pygments rich markdown-it-py mdurl click pytest pluggy
iniconfig wrapt pyarrow tabulate humanize pip wheel spsagan ruff pytest-xdist execnet protobuf msgpack regex
"
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
rm -rf "$DEST" && mkdir -p "$DEST"
tmp=$(mktemp -d)
"$VENV_PY" -m pip list --format=freeze --exclude-editable | while IFS='=' read -r name _ version; do
  key=$(echo "$name" | tr 'A-Z_.' 'a-z--')
  case "$HAVE" in *" $key "* | *" $key"$'\n'* | *$'\n'"$key "*) continue ;; esac
  if ! python3 -m pip download -q --no-deps "${TARGET[@]}" -d "$DEST" "$name==$version" 2>/dev/null; then
    # No wheel for that Python: a pure-Python source release, built into a wheel here.
    python3 -m pip wheel -q --no-deps -w "$tmp" "$name==$version" && mv "$tmp"/*.whl "$DEST"/
  fi
done
rm -rf "$tmp"
du -sh "$DEST"; ls "$DEST" | wc -l
