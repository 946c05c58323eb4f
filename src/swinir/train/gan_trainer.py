"""The GAN stage on top of the standard ``Trainer``: a config with a ``gan:`` section trains with
``GANTrainer`` (``swinir.train.TRAINERS`` maps it).

What it adds to the pixel-loss loop: a U-Net discriminator (``UNetDiscriminatorSN``) with its own Adam
optimiser and the same step schedule (``gan.d_lr``), the VGG19 perceptual loss, the vanilla GAN loss,
and the alternating G/D step of ``swinir.train.gan.gan_step``. The generator keeps the trainer's
optimiser, schedule, EMA, validation and checkpoints; the discriminator's state travels inside every
full checkpoint (``extra``) so ``--resume`` is exact, and ``models/net_d_*.pth`` holds its weights in
the published ``{'params': ...}`` layout. Start it from a PSNR-stage model with ``model.init_from``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from swinir.errors import ConfigError
from swinir.train import distributed as dist_utils
from swinir.train.gan import GANConfig, GANLoss, GANLosses, UNetDiscriminatorSN, gan_step
from swinir.train.losses import PixelLoss
from swinir.train.trainer import Trainer, atomic_torch_save

log = logging.getLogger("swinir.train")

__all__ = ["GANTrainer"]


class GANTrainer(Trainer):
    """``Trainer`` with a discriminator; requires ``cfg.gan``."""

    @property
    def gan_cfg(self) -> GANConfig:
        gc = self.cfg.gan
        if gc is None:
            raise ConfigError("gan: this trainer needs a gan section in the config")
        return gc

    def build_loss(self) -> nn.Module:
        """Also builds the discriminator, its optimiser and schedule (before a resume loads them)."""
        gc = self.gan_cfg
        t = self.cfg.train
        self.net_d_module = UNetDiscriminatorSN(self.cfg.model.in_chans, gc.d_num_feat, gc.d_skip_connection)
        self.net_d_module.to(self.device)
        self.net_d: nn.Module = self.net_d_module
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_d = nn.parallel.DistributedDataParallel(self.net_d_module, device_ids=ids)
        self.optimizer_d = torch.optim.Adam(
            self.net_d_module.parameters(), lr=gc.d_lr, betas=(gc.d_betas[0], gc.d_betas[1])
        )
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, self.lr_factor)
        perceptual = None
        if gc.perceptual_weight > 0:
            perceptual = self._build_perceptual(gc)
        return GANLosses(
            PixelLoss([term.term() for term in t.loss]), perceptual, GANLoss(gc.gan_weight), gc.perceptual_weight
        )

    def _build_perceptual(self, gc: GANConfig) -> nn.Module:
        from swinir.train.vgg import PerceptualLoss, load_vgg19, vgg19_weights_path

        if gc.vgg_pretrained:
            if self.main:  # one download, then everyone reads the cached file
                path = vgg19_weights_path(gc.vgg_weights or None, url=gc.vgg_url, progress=self.progress)
            dist_utils.barrier(self.dist)
            if not self.main:
                path = vgg19_weights_path(gc.vgg_weights or None, url=gc.vgg_url, download=False)
            vgg = load_vgg19(path, gc.perceptual_layers)
        else:
            if self.main:
                log.warning(
                    "gan.vgg_pretrained is false: the perceptual loss uses RANDOM VGG19 weights "
                    "(for tests and smoke runs only)"
                )
            vgg = load_vgg19(layers=gc.perceptual_layers, pretrained=False)
        return PerceptualLoss(vgg, gc.perceptual_layer_weights, gc.perceptual_criterion)

    def training_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        gc = self.gan_cfg
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        losses: GANLosses = self.loss_fn  # type: ignore[assignment]
        clip = self.cfg.train.grad_clip
        norms: dict[str, Tensor] = {}

        def backward(loss: Tensor, opt: torch.optim.Optimizer) -> None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # Tensor.backward is unannotated in torch
            if clip > 0 and opt is self.optimizer:
                self.scaler.unscale_(opt)
                norms["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(opt)

        update_g = self.iteration >= gc.d_init_iters
        logs = gan_step(
            (self.net, self.net_d),
            (self.optimizer, self.optimizer_d),
            lq,
            gt,
            losses,
            update_g=update_g,
            autocast=self.autocast,
            backward=backward,
        )
        self.scaler.update()
        self.scheduler.step()
        self.scheduler_d.step()
        if self.ema is not None and update_g:
            self.ema.update(self.model)
        logs["l_d"] = logs["l_d_real"] + logs["l_d_fake"]
        logs["loss"] = logs.get("l_g_total", logs["l_d"])
        logs.update(norms)
        return logs

    # -- checkpoints ------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {
            "net_d": self.net_d_module.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scheduler_d": self.scheduler_d.state_dict(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "net_d" not in state:
            if self.main:
                log.warning("the checkpoint has no discriminator (a PSNR-stage run?): starting a new one")
            return
        self.net_d_module.load_state_dict(state["net_d"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.scheduler_d.load_state_dict(state["scheduler_d"])
        self.restore_lr(self.optimizer_d, self.scheduler_d, self.gan_cfg.d_lr)  # as for G

    def export_weights(self, path: Path) -> Path:
        """G in the released layout (as the base class), and D beside it as ``net_d_*.pth``."""
        out = super().export_weights(path)
        d_path = path.with_name(
            path.name.replace("model", "net_d", 1) if "model" in path.name else f"net_d_{path.name}"
        )
        sd = {k: v.detach().cpu().contiguous() for k, v in self.net_d_module.state_dict().items()}
        atomic_torch_save({"params": sd}, d_path)
        return out
