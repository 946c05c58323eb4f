"""Training and validation data: folders of images, random crops, the 8 flips/rotations, degradations
made on the fly with the shared ``swinir.degrade`` code.

Every training sample is a pure function of ``(seed, global sample index)``: the index picks the epoch
and the position in that epoch's seeded shuffle, and seeds the crop, augmentation and degradation draws.
So the data stream does not depend on the number of loader workers or processes, and resuming at
iteration ``i`` only needs the sampler to start at ``i * batch`` (see ``StepSampler``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from swinir.degrade import REAL_WORLD, add_gaussian_noise, add_gaussian_noise_test, imresize, jpeg_compress
from swinir.degrade import make_pipeline as build_pipeline
from swinir.errors import ConfigError, ImageReadError, SwinIRError
from swinir.io import image_size, list_images
from swinir.io import read_uint8 as read_image
from swinir.train.config import DataConfig, ValConfig

log = logging.getLogger("swinir.train")


# --------------------------------------------------------------------------------------------------
# images: listed and read by swinir.io (list_images, read_uint8 as read_image, image_size)
# --------------------------------------------------------------------------------------------------
def augment(img: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 dihedral transforms of an HxWxC array (0 = identity)."""
    if mode >= 4:
        img = img[::-1]
    img = np.rot90(img, k=mode % 4)
    return img


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 (0..255) or float ([0,1]) -> CxHxW float32."""
    x = np.ascontiguousarray(np.transpose(img, (2, 0, 1)))
    t = torch.from_numpy(x)
    return t.float().div_(255.0) if x.dtype == np.uint8 else t.float()


# --------------------------------------------------------------------------------------------------
# training set
# --------------------------------------------------------------------------------------------------
@dataclass
class Record:
    hr: Path
    lq: Path | None
    source: int  # index of the folder in the config


def _match_lq(hr: Path, lq_files: dict[str, Path], scale: int) -> Path | None:
    for stem in (hr.stem, f"{hr.stem}x{scale}", f"{hr.stem}_x{scale}", f"{hr.stem}X{scale}"):
        if stem in lq_files:
            return lq_files[stem]
    return None


class TrainSet(Dataset[dict[str, torch.Tensor]]):
    """Random (LQ, GT) crops from weighted folders; ``dataset[g]`` is deterministic in ``(seed, g)``."""

    def __init__(self, cfg: DataConfig, scale: int, channels: int, seed: int = 0) -> None:
        self.cfg = cfg
        self.scale = int(scale)
        self.channels = int(channels)
        self.seed = int(seed)
        self.patch = int(cfg.patch_size)
        self.records: list[Record] = []
        self.weights: list[float] = []
        for si, src in enumerate(cfg.train):
            files = list_images(src.hr, f"data.train[{si}].hr")
            lq_files = {f.stem: f for f in list_images(src.lq, f"data.train[{si}].lq")} if src.lq else None
            for f in files:
                lq = None
                if lq_files is not None:
                    lq = _match_lq(f, lq_files, self.scale)
                    if lq is None:
                        self._bad(f, f"no matching low-quality image in {src.lq}")
                        continue
                self.records.append(Record(f, lq, si))
            self.weights.append(float(src.weight))
        if cfg.max_images:
            self.records = self.records[: cfg.max_images]
        self.cache: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        self._validate()
        if not self.records:
            raise ConfigError("data.train: no usable training images (all were skipped)")
        self._orders: dict[int, np.ndarray] = {}
        self._pipeline = make_pipeline(cfg.degrade.pipeline, cfg.degrade.pipeline_options, self.scale)
        self.epoch_length = len(self._epoch_pool(0))

    # -- loading and checks ---------------------------------------------------------------------------
    def _bad(self, path: Path, why: str) -> None:
        if self.cfg.skip_bad:
            log.warning("skipping %s: %s", path, why)
            return
        raise ImageReadError(f"{path}: {why}; fix or remove it, or set data.skip_bad: true to skip such images")

    def _validate(self) -> None:
        keep: list[Record] = []
        cache: list[tuple[np.ndarray, np.ndarray | None]] = []
        need_hr = self.patch * self.scale
        for rec in self.records:
            try:
                if self.cfg.cache:
                    hr = read_image(rec.hr, self.channels)
                    lq = read_image(rec.lq, self.channels) if rec.lq else None
                    hs, ls = hr.shape[:2], (lq.shape[:2] if lq is not None else None)
                else:
                    hs = image_size(rec.hr)
                    ls = image_size(rec.lq) if rec.lq else None
            except ImageReadError as exc:
                if not self.cfg.skip_bad:
                    raise ImageReadError(f"{exc}; or set data.skip_bad: true to skip such images") from None
                log.warning("skipping %s", exc)
                continue
            if ls is not None:
                if min(ls) < self.patch:
                    assert rec.lq is not None  # ls is its size
                    self._bad(rec.lq, f"{ls[1]}x{ls[0]} is smaller than the {self.patch}px patch")
                    continue
                if ls[0] * self.scale > hs[0] or ls[1] * self.scale > hs[1]:
                    self._bad(rec.hr, f"{hs[1]}x{hs[0]} is smaller than its LQ image {ls[1]}x{ls[0]} x{self.scale}")
                    continue
            elif min(hs) < need_hr:
                self._bad(
                    rec.hr,
                    f"{hs[1]}x{hs[0]} is smaller than the {need_hr}px crop (patch {self.patch} x scale {self.scale})",
                )
                continue
            keep.append(rec)
            if self.cfg.cache:
                cache.append((hr, lq))
        self.records = keep
        self.cache = cache if self.cfg.cache else None

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self.cache is not None:
            return self.cache[i]
        rec = self.records[i]
        return read_image(rec.hr, self.channels), (read_image(rec.lq, self.channels) if rec.lq else None)

    # -- epoch order ----------------------------------------------------------------------------------
    def _epoch_pool(self, epoch: int) -> np.ndarray:
        """Record indices of one epoch before shuffling: each image ``floor(w)`` times, plus a seeded
        ``frac(w)`` share of the folder's images once more."""
        rng = np.random.default_rng([self.seed, 0x5EED, epoch])
        pool: list[np.ndarray] = []
        for si, w in enumerate(self.weights):
            idx = np.array([i for i, r in enumerate(self.records) if r.source == si], dtype=np.int64)
            if idx.size == 0:
                continue
            whole, frac = int(math.floor(w)), w - math.floor(w)
            pool.extend([idx] * whole)
            extra = int(round(frac * idx.size))
            if extra:
                pool.append(np.sort(rng.choice(idx, size=extra, replace=False)))
        return np.concatenate(pool) if pool else np.zeros(0, dtype=np.int64)

    def epoch_order(self, epoch: int) -> np.ndarray:
        order = self._orders.get(epoch)
        if order is None:
            pool = self._epoch_pool(epoch)
            order = pool[np.random.default_rng([self.seed, 0x0DE5, epoch]).permutation(pool.size)]
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[epoch] = order
        return order

    def __len__(self) -> int:
        return self.epoch_length

    # -- one sample -----------------------------------------------------------------------------------
    def sample(self, g: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """(lq HxWxC uint8 or float32, gt HxWxC uint8, info) for global sample index ``g``."""
        epoch, pos = divmod(int(g), self.epoch_length)
        rec_i = int(self.epoch_order(epoch)[pos])
        rng = np.random.default_rng([self.seed, epoch, pos])
        hr, lq = self.load(rec_i)
        p, s = self.patch, self.scale
        info: dict[str, float] = {"record": rec_i, "epoch": epoch}
        if lq is not None:
            y = int(rng.integers(0, lq.shape[0] - p + 1))
            x = int(rng.integers(0, lq.shape[1] - p + 1))
            lq_c = lq[y : y + p, x : x + p]
            gt = hr[y * s : (y + p) * s, x * s : (x + p) * s]
        else:
            ps = p * s
            y = int(rng.integers(0, hr.shape[0] - ps + 1))
            x = int(rng.integers(0, hr.shape[1] - ps + 1))
            gt = hr[y : y + ps, x : x + ps]
            lq_c = None
        mode = int(rng.integers(0, 8)) if self.cfg.augment else 0
        info["augment"] = mode
        gt = np.ascontiguousarray(augment(gt, mode))
        if lq_c is not None:
            return np.ascontiguousarray(augment(lq_c, mode)), gt, info
        if self._pipeline is not None:
            lq_r, gt_r = self._pipeline(gt, rng)
            lq_r = lq_r.reshape(lq_r.shape[0], lq_r.shape[1], -1)
            gt_r = gt_r.reshape(gt_r.shape[0], gt_r.shape[1], -1)
            if lq_r.shape[:2] != (p, p) or gt_r.shape[:2] != (p * s, p * s):
                raise RuntimeError(
                    f"degradation {self.cfg.degrade.pipeline} returned LQ {lq_r.shape[:2]} / GT "
                    f"{gt_r.shape[:2]} for a {p * s}px crop; expected {p} / {p * s}"
                )
            return np.ascontiguousarray(lq_r), np.ascontiguousarray(gt_r), info
        lq_img: np.ndarray = imresize(gt, output_shape=(p, p), mode="uint8") if s > 1 else gt.copy()
        if lq_img.ndim == 2:
            lq_img = lq_img[:, :, None]
        deg = self.cfg.degrade
        out: np.ndarray = lq_img
        if deg.noise_sigma is not None:
            lo, hi = deg.noise_sigma
            sigma = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
            info["sigma"] = sigma
            out = add_gaussian_noise(
                lq_img.astype(np.float32) / np.float32(255.0),
                sigma,
                rng,
                clip=deg.noise_clip or deg.jpeg_quality is not None,
            )
            if deg.jpeg_quality is not None:  # noise then JPEG needs an 8-bit image in between
                out = np.round(out * 255.0).astype(np.uint8)
        if deg.jpeg_quality is not None:
            lo_q, hi_q = deg.jpeg_quality
            q = int(rng.integers(lo_q, hi_q + 1))
            info["quality"] = q
            out = jpeg_compress(out, q)
            if out.ndim == 2:
                out = out[:, :, None]
        return out, gt, info

    def __getitem__(self, g: int) -> dict[str, torch.Tensor]:
        lq, gt, _ = self.sample(g)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "index": torch.tensor(int(g))}


def make_pipeline(name: str | None, options: dict[str, Any], scale: int) -> Callable[..., Any] | None:
    """A real-world degradation ``(hr_uint8, rng) -> (lq_uint8, hr_uint8)`` from ``swinir.degrade``'s registry."""
    if not name:
        return None
    if name not in REAL_WORLD:
        raise ConfigError(f"data.degrade.pipeline: unknown pipeline {name!r}; known: {', '.join(REAL_WORLD)}")
    try:
        return build_pipeline(name, scale=scale, **options)
    except ValueError as exc:
        raise ConfigError(f"data.degrade.pipeline_options: {exc}") from None


class StepSampler(Sampler[int]):
    """Global sample indices ``it * batch + k``, forever from ``start_iter``; a process of a DDP group
    takes its contiguous ``batch / world`` share of every global batch."""

    def __init__(self, global_batch: int, rank: int = 0, world: int = 1, start_iter: int = 0) -> None:
        if global_batch % world:
            raise ConfigError(f"data.batch_size: {global_batch} is not divisible by {world} processes")
        self.batch = global_batch
        self.local = global_batch // world
        self.rank = rank
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[int]:
        it = self.start_iter
        lo = self.rank * self.local
        while True:
            base = it * self.batch
            for k in range(lo, lo + self.local):
                yield base + k
            it += 1


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(0)


def make_loader(
    dataset: TrainSet,
    global_batch: int,
    num_workers: int,
    rank: int = 0,
    world: int = 1,
    start_iter: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader[dict[str, torch.Tensor]]:
    sampler = StepSampler(global_batch, rank, world, start_iter)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=sampler.local,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
        drop_last=True,
    )


# --------------------------------------------------------------------------------------------------
# validation set
# --------------------------------------------------------------------------------------------------
@dataclass
class ValImage:
    name: str
    lq: np.ndarray  # HxWxC float32 in [0,1] (unclipped noise kept, as the paper's protocol)
    gt: np.ndarray  # HxWxC uint8


def val_protocol(cfg: ValConfig, scale: int, channels: int) -> Any:
    """The ``swinir.evaluate.Protocol`` that scores this validation like ``swinir eval`` (the paper's
    test script), or None when the validation has no paper protocol (e.g. noise and JPEG together)."""
    from swinir.evaluate import Protocol

    if scale > 1:
        return Protocol("classical_sr", scale=scale)
    if cfg.noise_sigma is not None and cfg.jpeg_quality is None:
        return Protocol("gray_dn" if channels == 1 else "color_dn", noise=float(cfg.noise_sigma))
    if cfg.jpeg_quality is not None and cfg.noise_sigma is None:
        return Protocol("jpeg_car" if channels == 1 else "color_jpeg_car", jpeg=int(cfg.jpeg_quality))
    return None


def _crop_pair(lq: np.ndarray, gt: np.ndarray, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre crop of at most ``size`` HR pixels per side, aligned with the LR grid."""
    side = max(1, size // scale)
    lh, lw = lq.shape[:2]
    th, tw = min(lh, side), min(lw, side)
    y, x = (lh - th) // 2, (lw - tw) // 2
    return lq[y : y + th, x : x + tw], gt[y * scale : (y + th) * scale, x * scale : (x + tw) * scale]


def load_val_set(cfg: ValConfig, scale: int, channels: int) -> list[ValImage]:
    """Deterministic validation pairs, made by ``swinir.evaluate`` exactly as ``swinir eval`` makes them
    (MATLAB-bicubic LR or a paired folder for SR, the paper's seeded noise, OpenCV JPEG), then
    centre-cropped to ``max_size`` if set."""
    if not cfg.hr:
        return []
    from swinir.evaluate import load_sample

    files = list_images(cfg.hr, "val.hr")
    if cfg.max_images:
        files = files[: cfg.max_images]
    protocol = val_protocol(cfg, scale, channels)
    out: list[ValImage] = []
    for f in files:
        if protocol is not None:
            try:
                sample = load_sample(f, protocol, cfg.lq)
            except SwinIRError as exc:
                raise ConfigError(f"val: {exc}") from None
            assert sample.gt is not None  # validation protocols all have a ground truth
            lq, gt = sample.lq.astype(np.float32), sample.gt
        else:  # no paper protocol: clean input, or this pipeline's noise then JPEG
            gt = read_image(f, channels)
            lq8 = gt
            if cfg.jpeg_quality is not None:
                lq8 = jpeg_compress(gt, int(cfg.jpeg_quality)).reshape(gt.shape)
            lq = lq8.astype(np.float32) / np.float32(255.0)
            if cfg.noise_sigma is not None:
                lq = add_gaussian_noise_test(lq.astype(np.float64), float(cfg.noise_sigma)).astype(np.float32)
        if cfg.max_size:
            lq, gt = _crop_pair(lq, gt, cfg.max_size, scale)
        out.append(ValImage(f.stem, np.ascontiguousarray(lq), np.ascontiguousarray(gt)))
    return out


def input_baseline(img: ValImage, scale: int) -> np.ndarray:
    """The un-restored input at the output size, uint8: MATLAB bicubic upscaling for SR, the (clipped,
    rounded) degraded image otherwise; its PSNR is the reference a trained model must beat."""
    lq8 = np.clip(np.round(img.lq.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if scale > 1:
        up: np.ndarray = imresize(lq8, output_shape=img.gt.shape[:2], mode="uint8")
        return up[:, :, None] if up.ndim == 2 else up
    return lq8
