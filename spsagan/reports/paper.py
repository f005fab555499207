"""Numbers reported in the literature, as plain data: nothing here is computed or estimated.

Sources:
- "SPSAGAN Table 1": the paper's Table 1 (x4; PSNR dB / SSIM on Y, and PI). The extracted table is
  partly garbled: some cells were lost, and two BSD100 groups cannot be placed in a column. Those
  are kept with `method=None` and a note instead of being assigned a guessed column.
- "ESRGAN supp. Table 2": the standard x4 PSNR/SSIM of bicubic and the PSNR-oriented RRDB (DF2K).
- "ESRGAN Fig. 7": per-image PI of BSD100 126007.
- "SPSAGAN Sec. 4": inference time per OST image, RRDB vs RRSB, on a GTX 1080Ti.

Dataset names are canonical: Set5, Set14, BSD100 (also called B100), Urban100, OST300.
"""

from __future__ import annotations

import math

import pandas as pd

NAN = math.nan
TABLE1 = "SPSAGAN Table 1"
ESRGAN_SUPP = "ESRGAN supp. Table 2"

# Column order of the paper's Table 1 (methods as columns), HR last.
TABLE1_METHODS = ["Bicubic", "SRCNN", "SRResNet", "SAN", "SRGAN", "NatSR", "SFTGAN", "ESRGAN", "SPSAGAN", "HR"]
TABLE1_DATASETS = ["BSD100", "OST300"]

_UNPLACED = "cell group whose column was lost in extraction (between NatSR and SPSAGAN; SFTGAN or ESRGAN?)"

# (method, dataset, psnr, ssim, pi, source, note)
_ROWS = [
    ("Bicubic", "BSD100", 25.96, 0.6675, 7.003, TABLE1, ""),
    ("SRCNN", "BSD100", 26.90, 0.7101, 6.045, TABLE1, ""),
    ("SRResNet", "BSD100", 27.58, 0.7620, 5.437, TABLE1, ""),
    ("SAN", "BSD100", NAN, 0.7436, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("SRGAN", "BSD100", 25.16, 0.6688, 2.565, TABLE1, ""),
    ("SPSAGAN", "BSD100", 25.16, 0.6344, 2.365, TABLE1, "best PI on BSD100 per the paper's text"),
    ("HR", "BSD100", NAN, NAN, 2.310, TABLE1, ""),
    (None, "BSD100", 25.33, 0.6510, 2.396, TABLE1, _UNPLACED),
    (
        None,
        "BSD100",
        27.76,
        0.7432,
        2.510,
        TABLE1,
        _UNPLACED + "; underlined; 27.76/0.7432 is the BSD100 score of "
        "the PSNR-oriented RRDB (DIV2K) in the ESRGAN paper, so it may pair a PSNR-model score with a GAN PI",
    ),
    ("Bicubic", "OST300", NAN, 0.6635, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("SRCNN", "OST300", NAN, 0.7032, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("SRResNet", "OST300", NAN, 0.7221, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("SAN", "OST300", 27.23, 0.7376, 5.525, TABLE1, ""),
    ("SRGAN", "OST300", NAN, 0.6270, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("NatSR", "OST300", 25.86, 0.6743, 2.545, TABLE1, ""),
    (
        "SFTGAN",
        "OST300",
        NAN,
        0.6340,
        NAN,
        TABLE1,
        "PSNR and PI lost in extraction; the text says its PI is below HR's 2.500",
    ),
    ("ESRGAN", "OST300", NAN, 0.6500, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("SPSAGAN", "OST300", NAN, 0.6242, NAN, TABLE1, "PSNR and PI lost in extraction"),
    ("HR", "OST300", NAN, NAN, 2.500, TABLE1, ""),
    ("Bicubic", "Set5", 28.42, 0.8104, NAN, ESRGAN_SUPP, ""),
    ("Bicubic", "Set14", 26.00, 0.7027, NAN, ESRGAN_SUPP, ""),
    ("Bicubic", "Urban100", 23.14, 0.6577, NAN, ESRGAN_SUPP, ""),
    ("RRDB (PSNR, DF2K)", "Set5", 32.73, 0.9011, NAN, ESRGAN_SUPP, "PSNR-oriented pretrained model"),
    ("RRDB (PSNR, DF2K)", "Set14", 28.99, 0.7917, NAN, ESRGAN_SUPP, "PSNR-oriented pretrained model"),
    ("RRDB (PSNR, DF2K)", "BSD100", 27.85, 0.7455, NAN, ESRGAN_SUPP, "PSNR-oriented pretrained model"),
]

# Per-image PI (ESRGAN paper Fig. 7, BSD100 image 126007).
PER_IMAGE_PI = [
    {"dataset": "BSD100", "image": "126007", "method": "HR", "pi": 2.16, "source": "ESRGAN Fig. 7"},
    {"dataset": "BSD100", "image": "126007", "method": "Bicubic", "pi": 6.61, "source": "ESRGAN Fig. 7"},
    {"dataset": "BSD100", "image": "126007", "method": "ESRGAN", "pi": 2.42, "source": "ESRGAN Fig. 7"},
]

# Inference time per OST image (seconds), paper section 4: the +SPSA ablation (RRDB body with SPSA)
# against SPSAGAN (RRSB body with SPSA).
INFERENCE_TIME = [
    {"network": "RRDB+SPSA", "median_s": 0.368, "device": "GTX 1080Ti", "source": "SPSAGAN Sec. 4"},
    {"network": "RRSB+SPSA", "median_s": 0.296, "device": "GTX 1080Ti", "source": "SPSAGAN Sec. 4"},
]

_ALIASES = {
    "b100": "BSD100",
    "bsd100": "BSD100",
    "ost": "OST300",
    "ost300": "OST300",
    "set5": "Set5",
    "set14": "Set14",
    "urban100": "Urban100",
}


def canonical_dataset(name: str) -> str:
    """The canonical name of a benchmark set (`B100` -> `BSD100`, `OST` -> `OST300`); others unchanged."""
    return _ALIASES.get(str(name).lower(), str(name))


def reported_values() -> pd.DataFrame:
    """All reported set-level values: columns method, dataset, psnr, ssim, pi, source, note.

    `method` is None for Table 1 cells whose column is unknown; NaN marks a value the source does not
    give (or that was lost); HR's PSNR is +inf.
    """
    return pd.DataFrame(_ROWS, columns=["method", "dataset", "psnr", "ssim", "pi", "source", "note"])


def table1_values() -> pd.DataFrame:
    """The placed cells of the paper's Table 1 only (method is never None)."""
    df = reported_values()
    return df[(df["source"] == TABLE1) & df["method"].notna()].reset_index(drop=True)


def table1_unplaced() -> pd.DataFrame:
    """Table 1 cell groups that cannot be assigned to a method."""
    df = reported_values()
    return df[(df["source"] == TABLE1) & df["method"].isna()].reset_index(drop=True)


# The paper's training setting (ESRGAN's recipe, SPSAGAN Sec. 4), for report headers that name a
# run's departures from it (`spsagan.reports.reductions`).
PAPER_SETTING = {
    "blocks": 23,
    "features": 64,
    "PSNR iterations": 1_000_000,
    "GAN iterations": 400_000,
    "px HR crops (PSNR/GAN)": (96, 96),
}
