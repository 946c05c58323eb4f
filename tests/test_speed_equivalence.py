"""The fast model against the plain reference path (swinir.reference): same numbers, any size, any mode."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import swinir
from swinir.model import (
    SwinIR,
    group_masks,
    image_to_tokens,
    shift_mask,
    shifted_window_plan,
    tokens_to_image,
    window_partition,
)
from swinir.reference import ReferenceSwinIR

# one golden network per code path: every upsampler, both residual connections, window 8 and 7, gray/color
NETWORKS = (
    "pixelshuffle_x2",
    "pixelshuffle_x3",
    "pixelshuffledirect_x4",
    "nearestconv_x4_3conv",
    "denoise_gray",
    "jpeg_color_w7",
)
SIZES = ((16, 16), (19, 27), (33, 17), (5, 40))  # window multiples and not, wide, below one window high


def _pair(golden: Path, index: dict, name: str) -> tuple[SwinIR, ReferenceSwinIR]:
    entry = index[name]
    model = swinir.load(golden / entry["checkpoint"])
    ref = ReferenceSwinIR(**entry["config"]).eval()
    raw = torch.load(golden / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
    ref.load_state_dict(raw, strict=True)  # the released layout, derived buffers included
    return model, ref


@pytest.mark.parametrize("name", NETWORKS)
def test_fast_path_equals_reference(golden: Path, golden_index: dict, name: str) -> None:
    model, ref = _pair(golden, golden_index, name)
    chans = golden_index[name]["config"]["in_chans"]
    torch.manual_seed(0)
    worst = 0.0
    with torch.inference_mode():
        for h, w in SIZES + SIZES[:1]:  # the repeat runs from the caches
            x = torch.rand(2, chans, h, w)
            out, want = model(x), ref(x)
            assert out.shape == want.shape
            worst = max(worst, (out - want).abs().max().item())
    print(f"\n{name}: fast vs reference max abs diff {worst:.2e}")
    assert worst <= 1e-5


def test_window_plan_is_roll_plus_partition() -> None:
    """The cached gather index reads exactly the original's shifted windows, grouped by mask."""
    torch.manual_seed(0)
    for (h, w), ws in (((32, 24), 8), ((8, 16), 8), ((21, 14), 7), ((8, 8), 8)):
        s = ws // 2
        img = torch.randn(2, 5, h, w)
        tokens = image_to_tokens(img, ws)
        assert torch.equal(tokens_to_image(tokens, h, w, ws), img)
        plan = shifted_window_plan(2, h, w, ws, s)
        got = tokens.reshape(-1, 5)[plan.perm].view(-1, ws * ws, 5)
        rolled = torch.roll(img.permute(0, 2, 3, 1), (-s, -s), (1, 2))
        want = window_partition(rolled, ws).view(2, h // ws, w // ws, ws * ws, 5)
        mask = shift_mask(h, w, ws, s).view(h // ws, w // ws, ws * ws, ws * ws)
        groups = group_masks(ws, s)
        start = 0
        # interior, last column, last row, corner; batch-major inside each group
        for g, (rows, cols) in enumerate(
            (
                (slice(0, -1), slice(0, -1)),
                (slice(0, -1), slice(-1, None)),
                (slice(-1, None), slice(0, -1)),
                (slice(-1, None), slice(-1, None)),
            )
        ):
            part = want[:, rows, cols].reshape(-1, ws * ws, 5)
            assert part.shape[0] == plan.groups[g]
            assert torch.equal(got[start : start + plan.groups[g]], part)
            start += plan.groups[g]
            masks = mask[rows, cols].reshape(-1, ws * ws, ws * ws)
            assert torch.equal(masks, groups[g].expand_as(masks))  # one mask serves the whole group
        assert start == got.shape[0]


def test_caches_follow_in_place_weight_updates(golden: Path, golden_index: dict) -> None:
    """An EMA-style in-place update under no_grad must not leave a stale cached bias behind."""
    model, ref = _pair(golden, golden_index, "denoise_gray")
    x = torch.rand(1, 1, 24, 24)
    torch.manual_seed(0)
    with torch.no_grad():
        before = model(x)
        tables = {n: torch.randn_like(p) * 3 for n, p in model.named_parameters() if n.endswith("bias_table")}
        for m in (model, ref):
            for name, p in m.named_parameters():
                if name in tables:
                    p.add_(tables[name])  # in place: same storage, only the version counter moves
        after, want = model(x), ref(x)
    assert (after - before).abs().max().item() > 1e-4
    assert (after - want).abs().max().item() <= 1e-5


def test_gradients_equal_reference(golden: Path, golden_index: dict) -> None:
    """Training runs through the same gathers and grouped attention: gradients match the original's."""
    model, ref = _pair(golden, golden_index, "pixelshuffle_x2")
    model.train()
    ref.train()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 24)
    target = torch.rand(2, 3, 32, 48)
    for m in (model, ref):
        torch.nn.functional.l1_loss(m(x), target).backward()
    grads = dict(ref.named_parameters())
    worst = 0.0
    for name, p in model.named_parameters():
        g_ref = grads[name].grad
        assert p.grad is not None and g_ref is not None, name
        worst = max(worst, ((p.grad - g_ref).abs().max() / g_ref.abs().max().clamp_min(1e-12)).item())
    print(f"\nworst relative gradient difference {worst:.2e}")
    assert worst <= 1e-4


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a.float() - b.float()) ** 2).mean().item())


@pytest.mark.parametrize("name", ("pixelshuffle_x2", "denoise_gray"))
def test_bf16_close_to_reference(golden: Path, golden_index: dict, name: str) -> None:
    """In bf16 the fast path is as close to the fp32 reference as the reference itself run in bf16."""
    model, ref = _pair(golden, golden_index, name)
    chans = golden_index[name]["config"]["in_chans"]
    torch.manual_seed(0)
    x = torch.rand(1, chans, 19, 27)
    with torch.inference_mode():
        want = ref(x)
        ours = model.to(torch.bfloat16)(x.bfloat16()).float()
        plain = ref.to(torch.bfloat16)(x.bfloat16()).float()
    p_ours, p_plain = _psnr(ours, want), _psnr(plain, want)
    print(f"\n{name} bf16 vs fp32 reference: fast {p_ours:.1f} dB, reference path {p_plain:.1f} dB")
    assert p_ours >= 45 and p_ours >= p_plain - 3
