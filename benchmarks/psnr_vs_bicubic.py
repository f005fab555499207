"""PSNR/SSIM of a trained generator against bicubic on folders of HR images (x4, Y channel, 4-pixel shave).

    python benchmarks/psnr_vs_bicubic.py results/pretrain_psnr/rrdb/model.pt ../shared/benchmarks/Set5/HR \
        ../shared/benchmarks/Set14/HR

Each HR image is mod-cropped to 4, its LR made with the MATLAB-exact imresize, then super-resolved
by bicubic and by the model. Prints one row per folder (set means) and the margin over bicubic.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from spsagan.evaluation import bicubic_sr, sr_with_model
from spsagan.image import imresize, modcrop, read_image
from spsagan.metrics import psnr, ssim
from spsagan.models.modelfile import load_generator
from spsagan.models.presets import takes_seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("hr_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, ckpt = load_generator(args.checkpoint)
    if takes_seg(ckpt["arch"]):
        raise SystemExit("this script evaluates generators without the segmentation prior (PSNR models, esrgan, +fa)")
    print("| set | images | bicubic PSNR / SSIM | model PSNR / SSIM | margin (dB) |")
    print("|---|--:|--:|--:|--:|")
    for hr_dir in args.hr_dirs:
        rows = []
        for path in sorted(hr_dir.glob("*.png")):
            gt = modcrop(read_image(path, gray="keep"), 4)
            lq = imresize(gt, 0.25)
            scores = []
            for sr in (bicubic_sr(lq), sr_with_model(model, lq)):
                scores += [psnr(sr, gt, crop_border=4), ssim(sr, gt, crop_border=4)]
            rows.append(scores)
        b_p, b_s, m_p, m_s = np.mean(rows, axis=0)
        name = hr_dir.parent.name if hr_dir.name == "HR" else hr_dir.name
        print(f"| {name} | {len(rows)} | {b_p:.3f} / {b_s:.4f} | {m_p:.3f} / {m_s:.4f} | {m_p - b_p:+.3f} |")


if __name__ == "__main__":
    main()
