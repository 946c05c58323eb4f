"""GAN stage of SwinIR's real-world models: U-Net discriminator with spectral normalisation, vanilla GAN
loss and the alternating generator/discriminator step.

Published recipe (SwinIR real-world x4, trained with KAIR; discriminator as in Real-ESRGAN):
generator loss ``1 * L1 + 1 * perceptual(VGG19 conv1_2..conv5_4, weights 0.1,0.1,1,1,1) + 0.1 * GAN``,
discriminator loss ``BCE(D(real), 1) + BCE(D(fake), 0)``, both Adam at lr 1e-4 with the same step
milestones, EMA of the generator, initialised from the PSNR-stage (L1-only) model.

This module holds no training loop and imports no trainer, so the config schema can refer to
:class:`GANConfig`; the loop integration is ``swinir.train.gan_trainer.GANTrainer``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

__all__ = ["GANConfig", "UNetDiscriminatorSN", "GANLoss", "GANStep", "gan_step", "set_requires_grad"]


@dataclass
class GANConfig:
    """The ``gan`` section of a training config; defaults are the published real-world x4 recipe.

    ``vgg_weights``: path to ``vgg19-dcbb9e9d.pth``; empty = the cache, downloaded on first use.
    ``vgg_pretrained: false`` keeps random VGG weights (tests and smoke runs only).
    """

    perceptual_weight: float = 1.0
    perceptual_layers: list[int] = field(default_factory=lambda: [2, 7, 16, 25, 34])
    perceptual_layer_weights: list[float] = field(default_factory=lambda: [0.1, 0.1, 1.0, 1.0, 1.0])
    perceptual_criterion: str = "l1"
    gan_weight: float = 0.1
    d_lr: float = 1e-4
    d_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    d_num_feat: int = 64
    d_skip_connection: bool = True
    d_init_iters: int = 0  # train only D for this many first iterations
    vgg_weights: str = ""
    vgg_url: str = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    vgg_pretrained: bool = True

    def check(self, path: str) -> None:
        from swinir.errors import ConfigError

        if len(self.perceptual_layers) != len(self.perceptual_layer_weights):
            raise ConfigError(
                f"{path}.perceptual_layer_weights: {len(self.perceptual_layer_weights)} weights for "
                f"{len(self.perceptual_layers)} layers"
            )
        if any(not 0 <= i <= 36 for i in self.perceptual_layers):
            raise ConfigError(
                f"{path}.perceptual_layers: VGG19 feature indices are 0..36, got {self.perceptual_layers}"
            )
        if self.perceptual_criterion not in ("l1", "l2"):
            raise ConfigError(f"{path}.perceptual_criterion: 'l1' or 'l2', got {self.perceptual_criterion!r}")
        for key in ("perceptual_weight", "gan_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{path}.{key}: must be >= 0, got {getattr(self, key)}")
        if self.d_lr <= 0:
            raise ConfigError(f"{path}.d_lr: must be > 0, got {self.d_lr}")
        if len(self.d_betas) != 2 or not all(0 <= b < 1 for b in self.d_betas):
            raise ConfigError(f"{path}.d_betas: expected two numbers in [0, 1), got {self.d_betas}")
        if self.d_num_feat < 1:
            raise ConfigError(f"{path}.d_num_feat: must be >= 1, got {self.d_num_feat}")


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalisation (Real-ESRGAN's, used for SwinIR's real-world GAN).

    conv0 -> three stride-2 4x4 convs (SN) -> three bilinear x2 up + 3x3 conv (SN) with skip additions
    from the matching encoder level -> two 3x3 convs (SN) -> conv to one channel: a per-pixel
    real/fake logit map of the input's size. Parameter names (``conv1.weight_orig``, ...) follow
    ``torch.nn.utils.spectral_norm``, as in the published discriminator weights.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        nf = num_feat

        def sn(cin: int, cout: int, k: int, s: int, p: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, k, s, p, bias=False))

        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        self.conv1 = sn(nf, nf * 2, 4, 2, 1)
        self.conv2 = sn(nf * 2, nf * 4, 4, 2, 1)
        self.conv3 = sn(nf * 4, nf * 8, 4, 2, 1)
        self.conv4 = sn(nf * 8, nf * 4, 3, 1, 1)
        self.conv5 = sn(nf * 4, nf * 2, 3, 1, 1)
        self.conv6 = sn(nf * 2, nf, 3, 1, 1)
        self.conv7 = sn(nf, nf, 3, 1, 1)
        self.conv8 = sn(nf, nf, 3, 1, 1)
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    @staticmethod
    def _act(x: Tensor) -> Tensor:
        return F.leaky_relu(x, 0.2)

    @staticmethod
    def _up(x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        x0 = self._act(self.conv0(x))
        x1 = self._act(self.conv1(x0))
        x2 = self._act(self.conv2(x1))
        x3 = self._act(self.conv3(x2))
        x4 = self._act(self.conv4(self._up(x3, x2)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = self._act(self.conv5(self._up(x4, x1)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = self._act(self.conv6(self._up(x5, x0)))
        if self.skip_connection:
            x6 = x6 + x0
        out = self._act(self.conv7(x6))
        out = self._act(self.conv8(out))
        return self.conv9(out)


class GANLoss(nn.Module):
    """Vanilla GAN loss: BCE with logits against an all-real (1) or all-fake (0) target.

    ``loss_weight`` scales the generator's term only; the discriminator's loss is unweighted.
    """

    def __init__(self, loss_weight: float = 0.1, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def forward(self, logits: Tensor, target_is_real: bool, is_disc: bool = False) -> Tensor:
        target = torch.full_like(logits, self.real_label if target_is_real else self.fake_label)
        loss = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return loss if is_disc else loss * self.loss_weight


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def gan_step(
    net_g: nn.Module,
    net_d: nn.Module,
    lq: Tensor,
    gt: Tensor,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    pixel_loss: Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]] | None,
    perceptual_loss: Callable[[Tensor, Tensor], Tensor] | None,
    gan_loss: GANLoss,
    perceptual_weight: float = 1.0,
    update_g: bool = True,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    backward: Callable[[Tensor, torch.optim.Optimizer], None] | None = None,
) -> dict[str, Tensor]:
    """One alternating step: G (pixel + perceptual + GAN, D frozen), then D on real and detached fake.

    ``pixel_loss`` returns ``(total, parts)`` (the trainer's ``PixelLoss``); ``backward(loss, opt)``
    lets a trainer route through its grad scaler and clipping (default: ``loss.backward(); opt.step()``).
    Returns detached logs: ``l_g_pix``, ``l_g_percep``, ``l_g_gan``, ``l_g_total``, ``l_d_real``,
    ``l_d_fake``, ``out_d_real``, ``out_d_fake`` (mean logits).
    """

    def _bwd(loss: Tensor, opt: torch.optim.Optimizer) -> None:
        if backward is None:
            loss.backward()
            opt.step()
        else:
            backward(loss, opt)

    logs: dict[str, Tensor] = {}
    # -- generator
    set_requires_grad(net_d, False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        out = net_g(lq)
    if update_g:
        total = out.new_zeros((), dtype=torch.float32)
        if pixel_loss is not None:
            l_pix, _ = pixel_loss(out.float(), gt.float())
            total = total + l_pix
            logs["l_g_pix"] = l_pix.detach()
        if perceptual_loss is not None and perceptual_weight > 0:
            l_per = perceptual_weight * perceptual_loss(out.float(), gt.float())
            total = total + l_per
            logs["l_g_percep"] = l_per.detach()
        with autocast():
            fake_g = net_d(out)
        l_gan = gan_loss(fake_g, True, is_disc=False)
        total = total + l_gan
        logs["l_g_gan"] = l_gan.detach()
        logs["l_g_total"] = total.detach()
        _bwd(total, opt_g)
    # -- discriminator
    set_requires_grad(net_d, True)
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        real_d = net_d(gt)
        fake_d = net_d(out.detach())
    l_real = gan_loss(real_d, True, is_disc=True)
    l_fake = gan_loss(fake_d, False, is_disc=True)
    _bwd(l_real + l_fake, opt_d)
    logs.update(
        l_d_real=l_real.detach(),
        l_d_fake=l_fake.detach(),
        out_d_real=real_d.detach().float().mean(),
        out_d_fake=fake_d.detach().float().mean(),
    )
    return logs


class GANStep:
    """Self-contained GAN fine-tuning state (G, D, optimisers, losses, optional EMA of G) for use
    outside the trainer; ``step(lq, gt)`` runs :func:`gan_step` and updates the EMA."""

    def __init__(
        self,
        net_g: nn.Module,
        cfg: GANConfig | None = None,
        perceptual: nn.Module | None = None,
        g_lr: float = 1e-4,
        g_betas: tuple[float, float] = (0.9, 0.99),
        pixel_weight: float = 1.0,
        ema_decay: float = 0.999,
        in_chans: int = 3,
    ) -> None:
        self.cfg = cfg or GANConfig()
        self.net_g = net_g
        self.net_d = UNetDiscriminatorSN(in_chans, self.cfg.d_num_feat, self.cfg.d_skip_connection)
        dev = next(net_g.parameters()).device
        self.net_d.to(dev)
        self.opt_g = torch.optim.Adam([p for p in net_g.parameters() if p.requires_grad], lr=g_lr, betas=g_betas)
        self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=self.cfg.d_lr, betas=tuple(self.cfg.d_betas))
        self.perceptual = perceptual
        self.gan_loss = GANLoss(self.cfg.gan_weight)
        self.pixel_weight = float(pixel_weight)
        self.ema = None
        if ema_decay > 0:
            from swinir.train.ema import EMA

            self.ema = EMA(net_g, ema_decay, warmup=True)
        self.iteration = 0

    def _pixel(self, out: Tensor, gt: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        v = self.pixel_weight * F.l1_loss(out, gt)
        return v, {"l1": v.detach()}

    def step(self, lq: Tensor, gt: Tensor) -> dict[str, float]:
        logs = gan_step(
            self.net_g,
            self.net_d,
            lq,
            gt,
            self.opt_g,
            self.opt_d,
            self._pixel if self.pixel_weight > 0 else None,
            self.perceptual,
            self.gan_loss,
            self.cfg.perceptual_weight,
            update_g=self.iteration >= self.cfg.d_init_iters,
        )
        if self.ema is not None:
            self.ema.update(self.net_g)
        self.iteration += 1
        return {k: float(v) for k, v in logs.items()}
