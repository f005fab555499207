"""Training: PSNR pretraining, GAN training, resumable checkpoints, device handling.

- `train_psnr(cfg, data, out_model, ckpt_root, live_dir, device=None)` (`spsagan.training.psnr`)
- `train_gan(cfg, init_model, data, out_model, ckpt_root, live_dir, device=None)` (`spsagan.training.gan`)
- `open_train_data`, `load_val_images`, `TrainData`, `SubImageSet`, `MixSampler` (`spsagan.training.data`)
- `Preempted`: raised after a SIGTERM/SIGUSR1-triggered checkpoint; rerun to resume (`.checkpoint`)

cfg keys are documented in `PSNR_CFG` and `GAN_CFG` and in docs/training.md.
"""

from spsagan.training.checkpoint import Preempted
from spsagan.training.data import MixSampler, SubImageSet, TrainData, ValImage, load_val_images, open_train_data
from spsagan.training.gan import GAN_CFG, train_gan
from spsagan.training.psnr import PSNR_CFG, train_psnr

__all__ = ["train_psnr", "train_gan", "PSNR_CFG", "GAN_CFG", "TrainData", "SubImageSet", "MixSampler",
           "ValImage", "open_train_data", "load_val_images", "Preempted"]
