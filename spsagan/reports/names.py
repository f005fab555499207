"""One display name and one kind per method, for every report, figure and claim.

The pipeline names methods by what made them: the presets and PSNR models by their preset name
(`esrgan`, `+fa`, `+spsa`, `spsagan`, `rrdb_psnr`, `rrsb_psnr`), published weights and authors'
images by their paper column (`ESRGAN`, `SFTGAN`, `SRCNN`, ...), plus `bicubic` and `HR`. Reports
show `display_name(method)`, so `+fa` reads "+FA" in Table 1, the ablation, the figures and the
claims alike.

A method's kind decides how a reproduced number is judged against the paper (`spsagan.reports.table1`):
- `fixed`: deterministic given the weights or images (published weights, authors' result images,
  bicubic, HR): reproduced - paper is a protocol difference, judged against a tolerance;
- `retrained`: trained by this pipeline: a number varies from one training run to the next, judged
  against the spread over seeds.
"""

from __future__ import annotations

FIXED = "fixed"
RETRAINED = "retrained"

# Pipeline methods: display name. `esrgan` is our retraining of ESRGAN, never the published column.
RETRAINED_NAMES = {
    "rrdb_psnr": "RRDB (PSNR)",
    "rrsb_psnr": "RRSB (PSNR)",
    "esrgan": "ESRGAN (retrained)",
    "+fa": "+FA",
    "+spsa": "+SPSA",
    "spsagan": "SPSAGAN",
}
# The paper's Table 1 columns that come from someone else's weights or images, or need no training.
FIXED_NAMES = ["Bicubic", "SRCNN", "SRResNet", "SAN", "SRGAN", "NatSR", "SFTGAN", "ESRGAN", "HR"]
# Published weights files `evaluate.published` can load (the rest come as authors' images).
PUBLISHED = ["ESRGAN", "SFTGAN", "SRResNet", "SRGAN"]


def display_name(method: str) -> str:
    """The one name a report shows for a results method: `+fa` -> `+FA`, `esrgan` -> `ESRGAN (retrained)`,
    `bicubic` -> `Bicubic`, `ESRGAN` (the published weights) -> `ESRGAN`; anything else as given.
    Idempotent: a display name maps to itself."""
    name = str(method)
    if name in RETRAINED_NAMES:
        return RETRAINED_NAMES[name]
    for fixed in FIXED_NAMES:
        if name.lower() == fixed.lower():
            return fixed
    return name


def results_name(display: str) -> str:
    """The inverse for pipeline methods: `+FA` -> `+fa`, `SPSAGAN` -> `spsagan`; others unchanged."""
    for method, shown in RETRAINED_NAMES.items():
        if display == shown:
            return method
    return display


def method_kind(method: str) -> str:
    """`retrained` for a pipeline model (by its results or display name), `fixed` for everything else
    (published weights, authors' images, bicubic, HR, our models exported and loaded back)."""
    name = str(method)
    return RETRAINED if name in RETRAINED_NAMES or name in RETRAINED_NAMES.values() else FIXED
