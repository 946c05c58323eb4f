"""Training data: crops, the 8 augmentations, on-the-fly degradations, determinism, sharding, bad images."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from swinir.degrade import imresize, jpeg_compress
from swinir.errors import ImageReadError
from swinir.train.config import DataConfig, DegradeConfig, SourceConfig, ValConfig
from swinir.train.data import StepSampler, TrainSet, augment, load_val_set, make_loader, read_image


@pytest.fixture(scope="module")
def bsd(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real training images (BSD400), copied so the folder is small."""
    out = tmp_path_factory.mktemp("bsd")
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:6]:
        shutil.copy(f, out / f.name)
    return out


def _cfg(folder: Path, **kw: object) -> DataConfig:
    degrade = kw.pop("degrade", DegradeConfig())
    return DataConfig(
        train=[SourceConfig(hr=str(folder))],
        patch_size=kw.pop("patch_size", 16),  # type: ignore[arg-type]
        batch_size=4,
        num_workers=0,
        degrade=degrade,
        **kw,
    )  # type: ignore[arg-type]


def _locate(img: np.ndarray, patch: np.ndarray) -> tuple[int, int] | None:
    """Where ``patch`` occurs exactly inside ``img`` (or None)."""
    res = cv2.matchTemplate(img.astype(np.float32), patch.astype(np.float32), cv2.TM_SQDIFF)
    _, _, loc, _ = cv2.minMaxLoc(res)
    x, y = loc
    h, w = patch.shape[:2]
    return (y, x) if np.array_equal(img[y : y + h, x : x + w], patch) else None


def _inverse(mode: int) -> int:
    eye = np.arange(12).reshape(3, 4, 1)
    return next(k for k in range(8) if np.array_equal(augment(augment(eye, mode), k), eye))


def test_augment_is_the_dihedral_group() -> None:
    img = np.arange(12).reshape(3, 4, 1)
    outs = [augment(img, m) for m in range(8)]
    keys = {(o.shape, o.tobytes()) for o in outs}
    assert len(keys) == 8  # eight distinct transforms
    assert np.array_equal(outs[0], img)
    for m in range(8):  # closed under inversion
        assert np.array_equal(augment(outs[m], _inverse(m)), img)


def test_sr_pair_is_bicubic_of_an_augmented_crop(bsd: Path) -> None:
    ds = TrainSet(_cfg(bsd), scale=3, channels=3, seed=5)
    modes = set()
    for g in range(24):
        lq, gt, info = ds.sample(g)
        assert lq.shape == (16, 16, 3) and gt.shape == (48, 48, 3) and lq.dtype == gt.dtype == np.uint8
        assert np.array_equal(lq, imresize(gt, scale=1 / 3, mode="uint8"))  # MATLAB bicubic of the HR crop
        src = ds.load(int(info["record"]))[0]
        crop = np.ascontiguousarray(augment(gt, _inverse(int(info["augment"]))))
        assert _locate(src, crop) is not None  # gt is one of the 8 transforms of a crop of its image
        modes.add(int(info["augment"]))
    assert len(modes) >= 6
    assert not TrainSet(_cfg(bsd, augment=False), 3, 3).sample(0)[2]["augment"]


def test_noise_levels_fixed_and_blind(bsd: Path) -> None:
    ds = TrainSet(_cfg(bsd, patch_size=48, degrade=DegradeConfig(noise_sigma=[25, 25])), 1, 3)
    res = np.concatenate([(lambda lq, gt, _: (lq - gt / 255.0).ravel())(*ds.sample(g)) for g in range(8)])
    assert ds.sample(0)[0].dtype == np.float32
    assert abs(res.std() * 255 - 25) < 0.5 and abs(res.mean()) < 0.003
    blind = TrainSet(_cfg(bsd, patch_size=48, degrade=DegradeConfig(noise_sigma=[0, 50])), 1, 3)
    sigmas = []
    for g in range(16):
        lq, gt, info = blind.sample(g)
        est = float((lq - gt / 255.0).std() * 255)
        assert abs(est - info["sigma"]) < 0.08 * info["sigma"] + 0.2
        sigmas.append(info["sigma"])
    assert min(sigmas) >= 0 and max(sigmas) <= 50 and np.ptp(sigmas) > 20


def test_jpeg_fixed_and_gray(bsd: Path) -> None:
    ds = TrainSet(_cfg(bsd, patch_size=24, degrade=DegradeConfig(jpeg_quality=[20, 20])), 1, 1)
    lq, gt, info = ds.sample(3)
    assert gt.shape == (24, 24, 1) and info["quality"] == 20
    assert np.array_equal(lq, jpeg_compress(gt, 20))
    blind = TrainSet(_cfg(bsd, patch_size=24, degrade=DegradeConfig(jpeg_quality=[10, 40])), 1, 3)
    qs = {blind.sample(g)[2]["quality"] for g in range(20)}
    assert min(qs) >= 10 and max(qs) <= 40 and len(qs) > 5


def test_deterministic_cached_or_not_any_workers(bsd: Path) -> None:
    cfg = _cfg(bsd, degrade=DegradeConfig(noise_sigma=[0, 50]))
    a, b = TrainSet(cfg, 2, 3, seed=1), TrainSet(_cfg(bsd, cache=False, degrade=cfg.degrade), 2, 3, seed=1)
    assert a.cache is not None and b.cache is None
    for g in (0, 7, 13):
        assert all(np.array_equal(x, y) for x, y in zip(a.sample(g)[:2], b.sample(g)[:2]))
    assert not np.array_equal(a.sample(0)[1], TrainSet(cfg, 2, 3, seed=2).sample(0)[1])
    batch0 = next(iter(make_loader(a, 4, 0, start_iter=3)))
    batch2 = next(iter(make_loader(a, 4, 2, start_iter=3)))
    assert batch0["index"].tolist() == [12, 13, 14, 15]
    assert torch.equal(batch0["lq"], batch2["lq"]) and torch.equal(batch0["gt"], batch2["gt"])
    assert batch0["lq"].shape == (4, 3, 16, 16) and batch0["gt"].shape == (4, 3, 32, 32)


def test_epochs_cover_every_image_and_weights(bsd: Path, tmp_path: Path) -> None:
    ds = TrainSet(_cfg(bsd), 2, 3)
    assert ds.epoch_length == 6 and sorted(ds.epoch_order(0)) == list(range(6))
    assert not np.array_equal(ds.epoch_order(0), ds.epoch_order(1))
    other = tmp_path / "other"
    other.mkdir()
    for f in sorted(bsd.iterdir())[:4]:
        shutil.copy(f, other / f.name)
    cfg = DataConfig(
        train=[SourceConfig(str(bsd), weight=2.0), SourceConfig(str(other), weight=0.5)],
        patch_size=16,
        batch_size=4,
        num_workers=0,
    )
    w = TrainSet(cfg, 2, 3)
    counts = np.bincount(w.epoch_order(0), minlength=10)
    assert w.epoch_length == 6 * 2 + 2 and list(counts[:6]) == [2] * 6 and counts[6:].sum() == 2


def test_sampler_shards_the_global_batch() -> None:
    def take(s: StepSampler, n: int) -> list[int]:
        it = iter(s)
        return [next(it) for _ in range(n)]

    single = take(StepSampler(8, start_iter=2), 16)
    r0, r1 = take(StepSampler(8, 0, 2, start_iter=2), 8), take(StepSampler(8, 1, 2, start_iter=2), 8)
    assert single == list(range(16, 32))
    assert r0[:4] + r1[:4] == single[:8] and r0[4:] + r1[4:] == single[8:]


def test_paired_folders_are_aligned(bsd: Path, tmp_path: Path) -> None:
    hr_dir, lq_dir = tmp_path / "hr", tmp_path / "lq"
    hr_dir.mkdir()
    lq_dir.mkdir()
    for f in sorted(bsd.iterdir())[:2]:
        img = read_image(f, 3)
        img = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]
        cv2.imwrite(str(hr_dir / f"{f.stem}.png"), img[:, :, ::-1])
        cv2.imwrite(str(lq_dir / f"{f.stem}x2.png"), np.ascontiguousarray(img[::2, ::2, ::-1]))
    cfg = DataConfig(train=[SourceConfig(str(hr_dir), lq=str(lq_dir))], patch_size=12, batch_size=2, num_workers=0)
    ds = TrainSet(cfg, 2, 3)
    for g in range(6):
        lq, gt, info = ds.sample(g)
        inv = _inverse(int(info["augment"]))  # both were transformed alike: undo, then compare the grids
        assert lq.shape == (12, 12, 3) and np.array_equal(augment(lq, inv), augment(gt, inv)[::2, ::2])


def test_bad_and_small_images(bsd: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(sorted(bsd.iterdir())[0], folder / "good.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((20, 20, 3), np.uint8))
    for cache in (True, False):
        with pytest.raises(ImageReadError, match=r"broken\.png: not a readable image.*data\.skip_bad: true"):
            TrainSet(_cfg(folder, cache=cache), 2, 3)
    (folder / "broken.png").unlink()
    with pytest.raises(ImageReadError, match=r"tiny\.png: 20x20 is smaller than the 32px crop"):
        TrainSet(_cfg(folder), 2, 3)
    (folder / "broken.png").write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="swinir.train"):
        ds = TrainSet(_cfg(folder, skip_bad=True), 2, 3)
    assert [r.hr.name for r in ds.records] == ["good.jpg"]
    assert "broken.png" in caplog.text and "tiny.png" in caplog.text


def test_val_set_protocols(shared: Path) -> None:
    set5 = shared / "data" / "Set5"
    sr = load_val_set(ValConfig(hr=str(set5 / "HR"), max_images=2), 2, 3)
    matlab = read_image(set5 / "LR_bicubic" / "X2" / f"{sr[0].name}x2.png", 3)
    assert np.array_equal(np.round(sr[0].lq * 255).astype(np.uint8), matlab)  # our LR == the released MATLAB LR
    paired = load_val_set(ValConfig(hr=str(set5 / "HR"), lq=str(set5 / "LR_bicubic" / "X2"), max_images=2), 2, 3)
    assert np.array_equal(paired[1].lq, sr[1].lq) and paired[1].gt.shape == sr[1].gt.shape
    dn = load_val_set(ValConfig(hr=str(shared / "data" / "McMaster"), noise_sigma=25, max_images=1, max_size=64), 1, 3)
    assert dn[0].gt.shape == (64, 64, 3)
    assert abs((dn[0].lq - dn[0].gt / 255.0).std() * 255 - 25) < 1.5  # unclipped, paper protocol
