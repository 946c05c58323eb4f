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

__all__ = [
    "GANConfig",
    "UNetDiscriminatorSN",
    "GANLoss",
    "GANLosses",
    "gan_step",
    "generator_loss",
    "set_requires_grad",
]


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
        logits: Tensor = self.conv9(out)
        return logits


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


class GANLosses(nn.Module):
    """The generator's loss terms in one module, so ``.to(device)`` moves the VGG too. ``pixel`` returns
    ``(total, parts)`` (the trainer's ``PixelLoss``); either of ``pixel`` and ``perceptual`` may be None."""

    def __init__(
        self, pixel: nn.Module | None, perceptual: nn.Module | None, gan: GANLoss, perceptual_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.pixel = pixel
        self.perceptual = perceptual if perceptual_weight > 0 else None
        self.gan = gan
        self.perceptual_weight = float(perceptual_weight)


Autocast = Callable[[], contextlib.AbstractContextManager[Any]]
Backward = Callable[[Tensor, torch.optim.Optimizer], None]


def _step(loss: Tensor, opt: torch.optim.Optimizer) -> None:
    loss.backward()  # type: ignore[no-untyped-call]  # Tensor.backward is unannotated in torch
    opt.step()


def generator_loss(
    net_d: nn.Module, out: Tensor, gt: Tensor, losses: GANLosses, autocast: Autocast, logs: dict[str, Tensor]
) -> Tensor:
    """Pixel + weighted perceptual + GAN loss of G's output ``out`` (D frozen by the caller); logs each."""
    total = out.new_zeros((), dtype=torch.float32)
    if losses.pixel is not None:
        l_pix, _ = losses.pixel(out.float(), gt.float())
        total = total + l_pix
        logs["l_g_pix"] = l_pix.detach()
    if losses.perceptual is not None:
        l_per = losses.perceptual_weight * losses.perceptual(out.float(), gt.float())
        total = total + l_per
        logs["l_g_percep"] = l_per.detach()
    with autocast():
        fake_g = net_d(out)
    l_gan: Tensor = losses.gan(fake_g, True, is_disc=False)
    total = total + l_gan
    logs["l_g_gan"] = l_gan.detach()
    logs["l_g_total"] = total.detach()
    return total


def gan_step(
    nets: tuple[nn.Module, nn.Module],
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    lq: Tensor,
    gt: Tensor,
    losses: GANLosses,
    update_g: bool = True,
    autocast: Autocast = contextlib.nullcontext,
    backward: Backward = _step,
) -> dict[str, Tensor]:
    """One alternating step: G (pixel + perceptual + GAN, D frozen) unless ``update_g`` is False (the
    ``d_init_iters`` warm-up), then D on real and detached fake. ``nets`` and ``optimizers`` are (G, D).

    ``backward(loss, opt)`` lets a trainer route through its grad scaler and clipping (default:
    ``loss.backward(); opt.step()``). Returns detached logs: ``l_g_pix``, ``l_g_percep``, ``l_g_gan``,
    ``l_g_total`` (when G is updated), ``l_d_real``, ``l_d_fake``, ``out_d_real``, ``out_d_fake`` (mean logits).
    """
    (net_g, net_d), (opt_g, opt_d) = nets, optimizers
    logs: dict[str, Tensor] = {}
    set_requires_grad(net_d, False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        out = net_g(lq)
    if update_g:
        backward(generator_loss(net_d, out, gt, losses, autocast, logs), opt_g)
    set_requires_grad(net_d, True)
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        real_d = net_d(gt)
        fake_d = net_d(out.detach())
    l_real = losses.gan(real_d, True, is_disc=True)
    l_fake = losses.gan(fake_d, False, is_disc=True)
    backward(l_real + l_fake, opt_d)
    logs.update(
        l_d_real=l_real.detach(),
        l_d_fake=l_fake.detach(),
        out_d_real=real_d.detach().float().mean(),
        out_d_fake=fake_d.detach().float().mean(),
    )
    return logs
