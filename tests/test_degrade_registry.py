"""One registry of degradation pipelines serves training and `swinir degrade`."""

from __future__ import annotations

import numpy as np
import pytest

from swinir.cli.degrade import make_pipeline as cli_pipeline
from swinir.degrade import REAL_WORLD, imresize, jpeg_compress, make_pipeline
from swinir.degrade.registry import PIPELINES, is_random
from swinir.errors import ConfigError, SwinIRError
from swinir.train.config import DegradeConfig
from swinir.train.data import make_pipeline as train_pipeline


def image(h: int = 50, w: int = 42) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_bicubic_is_the_matlab_resize_of_the_scale_multiple_crop() -> None:
    fn = make_pipeline("bicubic", scale=4)
    trace: list[str] = []
    lq, hr = fn(image(), np.random.default_rng(1), trace)
    assert hr.shape == (48, 40, 3) and np.array_equal(lq, imresize(image()[:48, :40], scale=0.25, mode="uint8"))
    assert trace == ["matlab bicubic 1/4"] and not is_random(fn)


def test_noise_and_jpeg_draw_from_the_seed() -> None:
    noise = make_pipeline("noise", sigma=(10, 50))
    a, _ = noise(image(), np.random.default_rng(3))
    b, _ = noise(image(), np.random.default_rng(3))
    c, _ = noise(image(), np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and is_random(noise)
    jpeg = make_pipeline("jpeg", quality=(30, 30))
    trace: list[str] = []
    lq, hr = jpeg(image(), np.random.default_rng(0), trace)
    assert np.array_equal(lq, jpeg_compress(image(), 30)) and trace == ["jpeg quality 30"] and not is_random(jpeg)
    assert is_random(make_pipeline("jpeg", quality=(10, 40)))


def test_real_world_pipelines_are_the_training_ones() -> None:
    assert REAL_WORLD == ("bsrgan", "realesrgan")
    assert set(REAL_WORLD) < set(PIPELINES)
    fn = train_pipeline("bsrgan", {"jpeg_range": [60, 60]}, 2)  # the config's pipeline_options
    lq, hr = fn(image(64, 64), np.random.default_rng(0))
    assert lq.shape == (32, 32, 3) and hr.shape == (64, 64, 3)
    assert fn.cfg.jpeg_range == (60, 60)
    with pytest.raises(ConfigError, match="data.degrade.pipeline: unknown pipeline 'bicubic'; known: bsrgan"):
        train_pipeline("bicubic", {}, 2)
    with pytest.raises(ConfigError, match=r"pipeline_options: realesrgan: .*no_such"):
        train_pipeline("realesrgan", {"no_such": 1}, 4)
    with pytest.raises(ConfigError, match="expected one of bsrgan, realesrgan or null"):
        DegradeConfig(pipeline="noise").check("data.degrade")


def test_unknown_names_and_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown pipeline 'blur'; known: bsrgan, realesrgan, bicubic, noise, jpeg"):
        make_pipeline("blur")
    with pytest.raises(ValueError, match="^noise: "):
        make_pipeline("noise", scale=2)
    with pytest.raises(SwinIRError, match="--scale does not apply to the jpeg pipeline"):
        cli_pipeline("jpeg", scale=2)
    choice = cli_pipeline("realesrgan", scale=2)
    assert choice.random and choice.scale == 2 and choice.fn.scale == 2
