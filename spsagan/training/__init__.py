"""Training: PSNR pretraining, GAN training, the loop they share, resumable checkpoints.

- `train_psnr(cfg, preset, data, out_model, ckpt_root, live_dir, keep=None)` (`spsagan.training.psnr`)
- `train_gan(cfg, preset, init_model, data, out_model, ckpt_root, live_dir)` (`spsagan.training.gan`)
- `fit`, `Run` (`spsagan.training.loop`): iterations, logging, validation, checkpoints, model file
- `open_train_data`, `load_val_images`, `TrainData`, `SubImageSet`, `MixSampler` (`spsagan.training.data`)
- `Preempted`: raised after a checkpoint on a stop signal or a vanished starter; rerun to resume (`.signals`)
- data-parallel training over the processes torchrun starts (`spsagan.training.distributed`)

cfg is the stage's typed config (`spsagan.config`: `PretrainPSNRConfig`, `TrainGANConfig`), with
exactly the keys of its params.yaml section; docs/params.md describes each.
"""

from spsagan._lazy import lazy_exports

# Public names and their modules, imported on first use (see spsagan/_lazy.py).
_LAZY = {
    "train_psnr": "spsagan.training.psnr",
    "train_gan": "spsagan.training.gan",
    "fit": "spsagan.training.loop",
    "Run": "spsagan.training.loop",
    "TrainData": "spsagan.training.data",
    "SubImageSet": "spsagan.training.data",
    "MixSampler": "spsagan.training.data",
    "ValImage": "spsagan.training.data",
    "open_train_data": "spsagan.training.data",
    "load_val_images": "spsagan.training.data",
    "Preempted": "spsagan.training.signals",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
