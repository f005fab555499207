"""Write a trained generator in the layouts other SR code loads: `spsagan-export model.pt --format F -o out.pth`.

Formats (the reverse of `spsagan.models.published.load_published`):

- `basicsr`: `{"params": state_dict}` with BasicSR's RRDBNet names (conv_first, body.N.rdbK.convJ,
  conv_body, conv_up1, conv_up2, conv_hr, conv_last), as BasicSR releases its models; loads with
  `basicsr.archs.rrdbnet_arch.RRDBNet(3, 3, num_feat, num_block, num_grow_ch)`.
- `esrgan`: a bare state dict with ESRGAN's `RRDBNet_arch.py` names (RRDB_trunk.N.RDBK.convJ,
  trunk_conv, upconv1, upconv2, HRconv); loads with ESRGAN's `RRDBNet(3, 3, nf, nb, gc)` and test.py.

Both layouts describe a plain RRDBNet. A pruned RRSB (connections removed, so its convs are narrower
than the layout's) or a generator with an attention layer (SPSA or feature attention: no place in
those networks) is refused with a one-line error. The file is written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from spsagan.atomic import atomic_path
from spsagan.errors import ConfigError
from spsagan.models.modelfile import load_generator
from spsagan.models.published import esrgan_key
from spsagan.models.rrdb import RRDBNet, block_masks

FORMATS = {
    "basicsr": "BasicSR RRDBNet, {'params': state_dict}",
    "esrgan": "ESRGAN RRDBNet_arch.py, bare state dict",
}


def check_exportable(model: RRDBNet, fmt: str) -> None:
    """Raise ConfigError unless `model` is a plain RRDBNet that the `fmt` layout can express."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    arch = model.arch
    if arch["attention"] is not None:
        kind = {"spsa": "an SPSA (segmentation-prior self-attention)", "fa": "a feature-attention"}[arch["attention"]]
        raise ConfigError(
            f"the generator has {kind} layer, which the {fmt} RRDBNet layout has no place for; "
            "only the esrgan preset (no attention) can be exported"
        )
    masks = block_masks(arch["keep"], arch["num_block"])
    pruned = sum(not kept for mask in masks for row in mask for kept in row)
    if pruned:
        raise ConfigError(
            f"the generator is a pruned RRSB ({pruned} connections removed across {len(masks)} dense "
            f"blocks, so its convs have fewer input channels than the {fmt} RRDBNet layout); "
            "only unpruned RRDB can be exported"
        )


def export_state(model: RRDBNet, fmt: str) -> dict:
    """The object to `torch.save` for `fmt` (tensors copied to the CPU, contiguous)."""
    check_exportable(model, fmt)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if fmt == "esrgan":
        return {esrgan_key(k): v for k, v in state.items()}
    return {"params": state}


def export_model(model_pt: str | os.PathLike, fmt: str, out: str | os.PathLike) -> Path:
    """Write the generator of a pipeline checkpoint (`model.pt`) to `out` in layout `fmt`; returns `out`."""
    model_pt, out = Path(model_pt), Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out.exists() and model_pt.exists() and out.resolve() == model_pt.resolve():
        raise ConfigError(f"{out}: the output would overwrite the input checkpoint; choose another name")
    model, _ = load_generator(model_pt)
    try:
        obj = export_state(model, fmt)
    except ConfigError as err:
        raise ConfigError(f"{model_pt}: {err}") from None
    with atomic_path(out) as tmp:
        torch.save(obj, tmp)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spsagan-export",
        description="Write a trained RRDB generator (esrgan preset) in BasicSR's or ESRGAN's weights layout.",
    )
    parser.add_argument("checkpoint", help="model.pt written by the training stage")
    parser.add_argument(
        "--format",
        required=True,
        choices=sorted(FORMATS),
        help="basicsr: {'params': ...} with BasicSR RRDBNet names; "
        "esrgan: bare state dict with ESRGAN RRDBNet_arch.py names",
    )
    parser.add_argument("-o", "--output", required=True, help="the weights file to write (.pth)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns the exit status (0 ok, 1 error)."""
    args = build_parser().parse_args(argv)
    try:
        written = export_model(args.checkpoint, args.format, args.output)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
        print(f"spsagan-export: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
