"""GAN stage: U-Net discriminator with spectral norm, vanilla GAN loss, the alternating step.

The perceptual term uses RANDOM VGG19 weights here (the ImageNet file is not fetched in tests).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from swinir.degrade import imresize
from swinir.model import SwinIR
from swinir.train.ema import EMA
from swinir.train.gan import GANConfig, GANLoss, GANLosses, UNetDiscriminatorSN, gan_step
from swinir.train.losses import PixelLoss, WeightedLoss
from swinir.train.vgg import PerceptualLoss, load_vgg19


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is fastest and avoids spin-waiting on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_generator() -> SwinIR:
    return SwinIR(
        upscale=4,
        in_chans=3,
        img_size=8,
        window_size=4,
        img_range=1.0,
        depths=[2],
        embed_dim=12,
        num_heads=[2],
        mlp_ratio=2,
        upsampler="nearest+conv",
        resi_connection="1conv",
    )


def test_unet_discriminator_layout_and_output():
    d = UNetDiscriminatorSN(3, 64)
    assert sum(p.numel() for p in d.parameters()) == 4_376_897  # Real-ESRGAN's UNetDiscriminatorSN, 64 feats
    keys = set(d.state_dict())
    assert {"conv0.weight", "conv0.bias", "conv9.weight", "conv9.bias"} <= keys
    for i in range(1, 9):  # spectral-normalised, bias-free
        assert {f"conv{i}.weight_orig", f"conv{i}.weight_u", f"conv{i}.weight_v"} <= keys
        assert f"conv{i}.bias" not in keys
    small = UNetDiscriminatorSN(3, 8)
    for h, w in ((32, 32), (40, 24), (37, 29)):
        assert small(torch.rand(2, 3, h, w)).shape == (2, 1, h, w)
    plain = UNetDiscriminatorSN(3, 8, skip_connection=False)
    assert plain(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(3, 8).train()
    x = torch.rand(1, 3, 16, 16)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(x)
    for name in ("conv1", "conv4", "conv8"):
        w = getattr(d, name).weight  # the normalised weight used in the last forward
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()
        assert abs(sigma - 1.0) < 0.05, (name, sigma)
        raw = getattr(d, name).weight_orig
        assert torch.linalg.matrix_norm(raw.reshape(raw.shape[0], -1), ord=2).item() != pytest.approx(1.0, abs=0.05)


def test_vanilla_gan_loss_values_and_weight():
    loss = GANLoss(0.1)
    zero = torch.zeros(2, 1, 4, 4)
    assert loss(zero, True).item() == pytest.approx(0.1 * math.log(2), rel=1e-6)  # generator: weighted
    assert loss(zero, False, is_disc=True).item() == pytest.approx(math.log(2), rel=1e-6)  # disc: unweighted
    sure = torch.full((1, 1, 4, 4), 20.0)
    assert loss(sure, True, is_disc=True).item() < 1e-6
    assert loss(sure, False, is_disc=True).item() == pytest.approx(20.0, rel=1e-3)


def test_gan_config_checks():
    from swinir.errors import ConfigError

    GANConfig().check("gan")
    with pytest.raises(ConfigError, match="gan.perceptual_layer_weights"):
        GANConfig(perceptual_layer_weights=[1.0]).check("gan")
    with pytest.raises(ConfigError, match="gan.d_lr"):
        GANConfig(d_lr=0).check("gan")


def _patches(data_dir, n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    img = cv2.imread(str(data_dir / "Set5" / "HR" / "butterfly.png"))[:, :, ::-1]
    gts, lqs = [], []
    for i in range(n):
        hr = np.ascontiguousarray(img[40 + 60 * i : 40 + 60 * i + size, 80 : 80 + size])
        gts.append(hr)
        lqs.append(imresize(hr, scale=0.25))
    to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0
    return to_t(lqs), to_t(gts)


def run_gan_steps(
    g: SwinIR, cfg: GANConfig, lq, gt, steps: int, perceptual=None, g_lr: float = 1e-4, ema: EMA | None = None
) -> list[dict[str, float]]:
    """``steps`` calls of ``gan_step`` as the GAN trainer makes them, with a new D: L1 pixel loss, G held
    back for ``d_init_iters``, the EMA after each step; returns the logs."""
    d = UNetDiscriminatorSN(3, cfg.d_num_feat, cfg.d_skip_connection)
    opts = (
        torch.optim.Adam(g.parameters(), lr=g_lr, betas=(0.9, 0.99)),
        torch.optim.Adam(d.parameters(), lr=cfg.d_lr, betas=(cfg.d_betas[0], cfg.d_betas[1])),
    )
    losses = GANLosses(PixelLoss([WeightedLoss("l1")]), perceptual, GANLoss(cfg.gan_weight), cfg.perceptual_weight)
    logs = []
    for i in range(steps):
        out = gan_step((g, d), opts, lq, gt, losses, update_g=i >= cfg.d_init_iters)
        logs.append({k: float(v) for k, v in out.items()})
        if ema is not None:
            ema.update(g)
    return logs


def test_gan_step_moves_both_losses_and_keeps_an_ema(data_dir):
    """D first learns alone on a fixed batch (d_init_iters), then G trains against it.
    (Checked to hold for seeds 0-3; seed 0 is kept to stay fast.)"""
    seed = 0
    per = PerceptualLoss(load_vgg19(pretrained=False))  # random VGG weights
    torch.manual_seed(seed)
    lq, gt = _patches(data_dir)
    g = tiny_generator()
    g0 = {k: v.clone() for k, v in g.state_dict().items()}
    cfg = GANConfig(d_num_feat=16, d_lr=1e-3, d_init_iters=12)
    ema = EMA(g, 0.999, warmup=True)
    logs = run_gan_steps(g, cfg, lq, gt, 18, perceptual=per, g_lr=5e-4, ema=ema)
    d_loss = [r["l_d_real"] + r["l_d_fake"] for r in logs]
    assert d_loss[0] == pytest.approx(2 * math.log(2), abs=0.1)  # an untrained D is undecided
    assert d_loss[11] < d_loss[0] - 0.4  # D learns to tell the real batch from the fakes
    assert logs[11]["out_d_real"] > logs[11]["out_d_fake"]
    g_logs = logs[12:]
    assert "l_g_total" not in logs[11] and all("l_g_total" in r for r in g_logs)
    # the adversarial term now pushes: D calls G's output fake, so -log D(fake) > log 2
    assert g_logs[0]["l_g_gan"] > 0.1 * math.log(2)
    assert min(r["l_g_pix"] for r in g_logs[-3:]) < g_logs[0]["l_g_pix"] - 0.01  # G fits the batch
    assert min(r["l_g_total"] for r in g_logs[-3:]) < g_logs[0]["l_g_total"]
    assert all(r["l_g_total"] == pytest.approx(r["l_g_pix"] + r["l_g_percep"] + r["l_g_gan"], rel=1e-5) for r in g_logs)
    assert any(not torch.equal(v, g0[k]) for k, v in g.state_dict().items())
    # the EMA follows G but lags behind it
    ema = ema.module.state_dict()
    assert max((ema[k] - v).abs().max().item() for k, v in g.state_dict().items() if v.is_floating_point()) > 0


def test_d_init_iters_holds_the_generator(data_dir):
    torch.manual_seed(1)
    lq, gt = _patches(data_dir, n=1)
    g = tiny_generator()
    g0 = {k: v.clone() for k, v in g.state_dict().items()}
    logs = run_gan_steps(g, GANConfig(d_num_feat=8, d_init_iters=2, perceptual_weight=0.0), lq, gt, 2)
    assert all("l_g_total" not in r and "l_d_real" in r for r in logs)
    assert all(torch.equal(v, g0[k]) for k, v in g.state_dict().items())
    logs = run_gan_steps(g, GANConfig(d_num_feat=8, d_init_iters=0, perceptual_weight=0.0), lq, gt, 1)
    assert "l_g_total" in logs[0] and "l_g_percep" not in logs[0]
    assert any(not torch.equal(v, g0[k]) for k, v in g.state_dict().items())


# ------------------------------------------------------------------------------------------- the real loop
def _records(out, kind: str = "train") -> list[dict]:
    import json

    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_tiny_psnr_then_gan_run_through_the_cli(tmp_path, shared):
    """realsr-m-x4-psnr-tiny (BSRGAN data, L1), then realsr-m-x4-gan-tiny started from it (random VGG):
    both GAN losses move, G and D checkpoints load, a resume restores the discriminator."""
    import swinir
    from swinir.checkpoint import read_file
    from swinir.cli import main
    from swinir.train import load_config
    from swinir.train.gan_trainer import GANTrainer

    common = [
        "--no-progress",
        "--set",
        "train.threads=1",
        "--set",
        "log.tensorboard=false",
        "--set",
        "log.plot=false",
        "--set",
        "val.max_images=1",
        "--set",
        "val.max_size=32",
    ]
    psnr_out = tmp_path / "psnr"
    assert (
        main(
            [
                "train",
                "realsr-m-x4-psnr-tiny",
                "--out",
                str(psnr_out),
                "--iterations",
                "3",
                "--set",
                "data.patch_size=8",
                "--set",
                "data.batch_size=2",
                *common,
            ]
        )
        == 0
    )
    psnr_model = psnr_out / "models" / "model_0000003.pth"
    init = read_file(psnr_model)[0]["params_ema"]

    gan_out = tmp_path / "gan"
    gan_args = [
        "--set",
        f"model.init_from={psnr_model}",
        "--set",
        "log.every=1",
        "--set",
        "log.checkpoint_every=3",
        "--set",
        "val.every=0",
        *common,
    ]
    assert main(["train", "realsr-m-x4-gan-tiny", "--out", str(gan_out), "--iterations", "6", *gan_args]) == 0
    recs = _records(gan_out)
    assert len(recs) == 6
    for key in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake"):
        vals = [r[key] for r in recs]
        assert all(math.isfinite(v) for v in vals) and max(vals) - min(vals) > 1e-3, (key, vals)
    d_total = [r["l_d"] for r in recs]
    assert d_total[0] == pytest.approx(2 * math.log(2), abs=0.1) and min(d_total) < d_total[0]

    # G: released layout, loads with swinir.load, moved away from the PSNR-stage weights
    model = swinir.load(gan_out / "models" / "model_0000006.pth")
    assert model.spec.upsampler == "nearest+conv" and model.scale == 4
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    ema = read_file(gan_out / "models" / "model_0000006.pth")[0]["params_ema"]
    assert any(not torch.equal(ema[k], init[k]) for k in init if k in ema)
    # D: {'params': ...} beside it, loads into the discriminator
    d_sd = torch.load(gan_out / "models" / "net_d_0000006.pth", weights_only=True)["params"]
    UNetDiscriminatorSN(3, 16).load_state_dict(d_sd)

    # resume: the discriminator and its optimiser come back from the checkpoint
    cfg = load_config(
        "realsr-m-x4-gan-tiny", [f"model.init_from={psnr_model}", "log.tensorboard=false", "train.iterations=7"]
    )
    trainer = GANTrainer(cfg, gan_out, resume=True, progress=False)
    try:
        assert trainer.iteration == 6
        for k, v in trainer.net_d_module.state_dict().items():
            torch.testing.assert_close(v, d_sd[k], rtol=0, atol=0)
        assert trainer.optimizer_d.state_dict()["state"]  # Adam moments restored
    finally:
        trainer.close()
