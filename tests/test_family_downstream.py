"""Everything downstream works with every registered architecture, given only a loaded model: restore
(seamless tiles, ensemble, bf16, strength, outscale, ``--tile auto``'s memory model), eval with the
architecture's own test protocol, the serve model list, video, ONNX export, fine-tuning from any loaded
checkpoint, and ``swinir.save``. Each test runs once per entry of ``swinir.architectures.REGISTRY`` on that
architecture's small golden network (``conftest.GOLDEN_OF``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import swinir
from swinir import architectures
from swinir.cli import main
from swinir.degrade import imresize, jpeg_compress
from swinir.engine import ENSEMBLE_TRANSFORMS, restore
from swinir.evaluate import Protocol, evaluate, score, to_uint8
from swinir.fit import auto_tile, estimate_bytes_per_pixel
from swinir.io import SwinIRNotice, from_float, read_image, read_like_release, resize, to_float
from swinir.model import native_bf16
from swinir.tiling import plan_axis, round_tile

ARCHS = architectures.names()


@pytest.fixture(scope="module", params=ARCHS)
def arch(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def ckpt(arch: str, golden_of: Any) -> Path:
    path: Path = golden_of(arch)[0]
    return path


@pytest.fixture(scope="module")
def sr2(ckpt: Path) -> torch.nn.Module:
    return swinir.load(ckpt, device="cpu")


@pytest.fixture(scope="module")
def crop(data_dir: Path) -> np.ndarray:
    """A 64x64 crop of a natural image (Set5 baby), uint8 RGB."""
    return read_image(data_dir / "Set5" / "HR" / "baby.png").array[216:280, 166:230].copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


# -- swinir restore ------------------------------------------------------------------------------------
def test_tiles_without_seams(sr2: torch.nn.Module, crop: np.ndarray) -> None:
    s, ws = sr2.upscale, sr2.window_size
    img = crop.astype(np.float32) / 255
    full = restore(sr2, img)
    tiled = restore(sr2, img, tile=32, overlap=8)
    t, o = round_tile(32, 8, ws)
    spans = plan_axis(64, t, o, ws)
    assert len(spans) == 3  # a 3x3 grid: real seams
    assert psnr(tiled, full) >= 40.0
    near = np.zeros((64 * s, 64 * s), bool)  # output pixels within two input pixels of a tile edge
    edges = [e for (a, _), (_, b) in zip(spans[1:], spans[:-1]) for e in (a, b)]
    for e in edges:
        near[:, max(0, (e - 2) * s) : (e + 2) * s] = True
        near[max(0, (e - 2) * s) : (e + 2) * s, :] = True
    err = np.abs(tiled - full).mean(2)
    assert err[near].mean() / err[~near].mean() < 1.5, "error concentrated on tile borders"


def test_ensemble_is_the_average_of_eight_transformed_runs(sr2: torch.nn.Module, crop: np.ndarray) -> None:
    img = crop[:24, :32].astype(np.float32) / 255
    runs = []
    for k, flip in ENSEMBLE_TRANSFORMS:
        x = np.rot90(img, k)
        x = x[:, ::-1] if flip else x
        y = restore(sr2, np.ascontiguousarray(x))
        y = y[:, ::-1] if flip else y
        runs.append(np.rot90(y, -k))
    ens = restore(sr2, img, ensemble=True)
    assert np.abs(ens - np.mean(runs, axis=0)).max() < 1e-5
    assert np.abs(ens - restore(sr2, img)).max() > 1e-3


def test_bf16_is_close_to_fp32(sr2: torch.nn.Module, crop: np.ndarray) -> None:
    img = crop[:48, :48].astype(np.float32) / 255
    fp32 = restore(sr2, img)
    if not native_bf16():
        with pytest.warns(SwinIRNotice, match="no native bf16"):
            assert np.array_equal(restore(sr2, img, precision="bf16"), fp32)
        return
    bf16 = restore(sr2, img, precision="bf16")
    assert np.isfinite(bf16).all() and 35.0 < psnr(bf16, fp32) < 200.0


def test_strength_and_outscale(sr2: torch.nn.Module, crop: np.ndarray) -> None:
    img = crop[:20, :28]
    raw = swinir.restore(sr2, to_float(img))
    out = swinir.restore(sr2, img, outscale=3)
    assert out.shape == (60, 84, 3)
    np.testing.assert_array_equal(out, from_float(resize(raw, 60, 84)))
    bicubic = resize(to_float(img), 40, 56)
    np.testing.assert_array_equal(swinir.restore(sr2, img, strength=0.5), from_float(bicubic + 0.5 * (raw - bicubic)))


def test_auto_tile_memory_model_leans_large(ckpt: Path, sr2: torch.nn.Module) -> None:
    """The estimate that sizes ``--tile auto`` on CPU is at least the memory a forward really adds per input
    pixel (a fresh process: resident-set growth sampled every millisecond during a 192^2 and a 64^2
    forward, after returning freed heap to the OS; the difference over the pixel difference), and not
    absurdly more."""
    code = textwrap.dedent(f"""
        import ctypes, os, threading, time, torch, swinir
        torch.set_num_threads(1)
        m = swinir.load({str(ckpt)!r})
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        def growth(side):
            x = torch.rand(1, m.in_chans, side, side)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            base, peak, done = rss(), [0], threading.Event()
            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], rss())
                    time.sleep(0.001)
            t = threading.Thread(target=sample)
            t.start()
            with torch.no_grad():
                m(x)
            done.set()
            t.join()
            return max(peak[0], rss()) - base
        growth(64)  # warm-up: one-time caches (Winograd weights, biases)
        print((growth(192) - growth(64)) / (192 * 192 - 64 * 64))
    """)
    measured = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    estimate = estimate_bytes_per_pixel(sr2)
    print(f"\n{sr2.spec.title}: estimated {estimate:.0f} B/px, measured {measured:.0f} B/px")
    assert 0 < measured <= estimate <= 30 * measured
    tile = auto_tile(sr2, torch.device("cpu"), 2048, 2048, free=256 << 20)
    assert tile is not None and tile % sr2.window_size == 0 and tile >= 2 * sr2.window_size


def test_cli_restore_with_auto_tile(ckpt: Path, sr2: torch.nn.Module, tmp_path: Path, crop: np.ndarray) -> None:
    from swinir.io import write_image

    src = write_image(tmp_path / "in.png", crop[:40, :48])
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--tile", "auto"]) == 0
    out = read_image(tmp_path / "out" / "in.png").array
    np.testing.assert_array_equal(out, swinir.restore(sr2, crop[:40, :48], precision="auto"))


# -- swinir eval -------------------------------------------------------------------------------------
def test_eval_follows_the_architectures_test_script(sr2: torch.nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """Each step as the released test script: MATLAB-bicubic LR, the script's padding, the forward, the crop,
    uint8 rounding, metrics with border = scale; results saved as NAME_<Architecture>.png."""
    hr_dir = data_dir / "Set5" / "HR"
    protocol = Protocol("classical_sr", scale=2)
    report = evaluate(sr2, hr_dir, protocol, limit=2, progress=False, save_dir=tmp_path)
    pad = architectures.of(sr2).test_padding
    for res in report.images:
        hr = read_like_release(hr_dir / f"{res.name}.png", "color")
        h, w = hr.shape[:2]
        lr = imresize(hr[: h - h % 2, : w - w % 2], 0.5, mode="uint8")
        x = torch.from_numpy(np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1))).float().unsqueeze(0) / 255
        with torch.no_grad():
            out = sr2(pad(x, sr2.window_size))[..., : x.shape[2] * 2, : x.shape[3] * 2]
        mine = to_uint8(out[0]).transpose(1, 2, 0)
        gt = np.ascontiguousarray(hr[: x.shape[2] * 2, : x.shape[3] * 2, ::-1])
        want = score(mine, gt, protocol)
        assert res.scores is not None and res.scores.psnr_y == pytest.approx(want.psnr_y, abs=1e-9)
        saved = read_image(tmp_path / f"{res.name}_{sr2.spec.title}.png").array
        np.testing.assert_array_equal(saved, mine)


# how each architecture's released test script pads the LR before the forward (output cropped after)
TEST_SCRIPT_PADDING = {"swinir": "flip", "swin2sr": "flip", "hat": "reflect"}


def test_eval_pads_as_the_architectures_test_script(arch: str, sr2: torch.nn.Module) -> None:
    """SwinIR's and Swin2SR's scripts mirror-flip a whole window more, even at a window multiple; HAT's
    (hat_model.py) reflects right/bottom up to the next multiple only."""
    from swinir.evaluate import test_padding

    pad = test_padding(sr2)
    assert pad is architectures.TEST_PADDINGS[TEST_SCRIPT_PADDING[arch]]
    ws = sr2.window_size
    x = torch.rand(1, 3, ws + 3, 2 * ws, generator=torch.Generator().manual_seed(0))
    if TEST_SCRIPT_PADDING[arch] == "reflect":
        want = torch.nn.functional.pad(x, (0, 0, 0, ws - 3), mode="reflect")  # the columns: already a multiple
    else:
        rows = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : 2 * ws, :]
        want = torch.cat([rows, torch.flip(rows, [3])], 3)[:, :, :, : 3 * ws]
    assert torch.equal(pad(x, ws), want)


def test_compressed_sr_protocol_and_its_bicubic_baseline(data_dir: Path, tmp_path: Path, capsys: Any) -> None:
    """main_test_swin2sr.py --task compressed_sr scores SR of a JPEG LR like classical SR; the bicubic
    baseline of that protocol, computed by hand, is what `swinir eval --model bicubic` prints, and JPEG
    at quality 10 costs it over a dB against clean bicubic (28.43 dB on Set5 x4)."""
    hr_dir = data_dir / "Set5" / "HR"
    args = ["eval", "--model", "bicubic", "--task", "compressed_sr", "--scale", "4", "--jpeg", "10"]
    assert main([*args, "--hr", str(hr_dir), "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    protocol = Protocol("compressed_sr", scale=4, jpeg=10)
    values = []
    for row in report["images"]:
        hr = read_like_release(hr_dir / f"{row['name']}.png", "color")
        h, w = hr.shape[:2]
        lr = jpeg_compress(imresize(hr[: h - h % 4, : w - w % 4], 0.25, mode="uint8"), 10, color_order="bgr")
        up = imresize(lr, 4.0, mode="uint8")
        values.append(score(up[:, :, ::-1], hr[: up.shape[0], : up.shape[1], ::-1], protocol).psnr_y)
        assert row["psnr_y"] == pytest.approx(values[-1], abs=1e-9)
    assert report["average"]["psnr_y"] == pytest.approx(np.mean(values), abs=1e-9)
    assert report["average"]["psnr_y"] < 28.43 - 1.0
    # a JPEG LR folder (NAME.jpg, as the Swin2SR test set ships it) gives the same numbers
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    for f in sorted(hr_dir.iterdir()):
        hr = read_like_release(f, "color")
        h, w = hr.shape[:2]
        import cv2

        lr = imresize(hr[: h - h % 4, : w - w % 4], 0.25, mode="uint8")
        cv2.imwrite(str(lr_dir / f"{f.stem}.jpg"), lr, [int(cv2.IMWRITE_JPEG_QUALITY), 10])
    args = ["eval", "--model", "bicubic", "--task", "compressed_sr", "--scale", "4", "--hr", str(hr_dir)]
    assert main([*args, "--lr", str(lr_dir), "--json", str(tmp_path / "r2.json"), "--quiet"]) == 0
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["average"]["psnr_y"] == pytest.approx(report["average"]["psnr_y"], abs=1e-9)


def test_eval_picks_the_protocol_of_a_compressed_sr_model(family: Path, data_dir: Path) -> None:
    model = swinir.load(family / "models" / "swin2sr_pixelshuffle_aux_x4.pth")
    from swinir.evaluate import task_for_model

    assert task_for_model(model) == "compressed_sr"
    report = evaluate(model, data_dir / "Set5" / "HR", Protocol("compressed_sr", 4, jpeg=20), limit=1, progress=False)
    assert report.images[0].shape[2] == 3 and report.average() is not None


# -- serve, video, export, train, save ----------------------------------------------------------------
def test_serve_lists_every_architecture_grouped(arch: str) -> None:
    from swinir import zoo
    from swinir.serve.app import ServeConfig, _model_dict, offered_models

    offered = offered_models(ServeConfig())
    families = [m.architecture for m in offered if not m.builtin]
    if arch != "swinir" and arch not in families:
        pytest.skip(f"{arch} has no zoo entries")
    first = families.index(arch)
    assert families[first : first + families.count(arch)] == [arch] * families.count(arch)  # one block each
    entry = next(e for e in zoo.list_entries(architecture=arch) if not e.builtin)
    row = _model_dict(entry)
    assert row["architecture"] == arch and row["family"] == swinir.spec.TITLES[arch]
    # whether the server can fetch it (HAT's files have no direct URL), and the page to get it from
    assert row["downloadable"] is bool(entry.url) and row["page"] == zoo.RELEASE_PAGES[arch]


def test_video_frames_are_restored_as_images(ckpt: Path, sr2: torch.nn.Module, tmp_path: Path) -> None:
    av = pytest.importorskip("av", reason="video needs PyAV (pip install -e .[video])")
    clip = tmp_path / "clip.mkv"
    rng = np.random.default_rng(0)
    frames = [np.clip(resize(rng.integers(0, 256, (6, 8, 3)).astype(np.float32), 24, 32), 0, 255).astype(np.uint8)]
    frames += [np.roll(frames[0], 3 * i, axis=1) for i in (1, 2)]
    with av.open(str(clip), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "bgr0"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            for packet in s.encode(vf):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    out = tmp_path / "out"
    args = ["restore", str(clip), "-o", str(out), "--model", str(ckpt), "--tile", "0", "--codec", "ffv1"]
    assert main([*args, "--pix-fmt", "bgr0"]) == 0
    with av.open(str(out / "clip.mkv")) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == 3
    for g, f in zip(got, frames):
        np.testing.assert_array_equal(g, restore(sr2, f, precision="auto"))  # the CLI default


def test_onnx_export_equals_pytorch(arch: str, ckpt: Path, sr2: torch.nn.Module, tmp_path: Path) -> None:
    if arch == "swinir":
        pytest.skip("tests/test_export.py exports this same SwinIR network (a minute of CI each)")
    pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs onnxscript (pip install -e .[test])")
    ort = pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime (pip install -e .[test])")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out), "--verify-sizes", "24x32"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 29, 19, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = sr2(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-4


def test_fine_tune_from_any_loaded_checkpoint(ckpt: Path, sr2: torch.nn.Module, shared: Path, tmp_path: Path) -> None:
    """``model.from_init``: the network is the checkpoint's, every tensor starts from it, and the trained
    model loads back as the same architecture."""
    import shutil

    from swinir.train import Trainer, load_config

    images = tmp_path / "imgs"
    images.mkdir()
    for f in sorted((shared / "data" / "train" / "BSD400").iterdir())[:4]:
        shutil.copy(f, images / f.name)
    overrides = [
        f"data.train=[{images}]",
        "val.hr=null",
        "log.progress=false",
        "train.iterations=2",
        "model.from_init=true",
        f"model.init_from={ckpt}",
    ]
    trainer = Trainer(load_config("builtin-x2-tiny", overrides), tmp_path / "run")
    model = trainer.model
    assert model.spec.with_(img_size=sr2.spec.img_size) == sr2.spec  # the checkpoint's network
    for key, value in sr2.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key  # every tensor loaded
    trainer.fit()
    saved = sorted((tmp_path / "run" / "models").glob("model_*.pth"))[-1]
    again = swinir.load(saved)
    assert again.spec.architecture == sr2.spec.architecture


def test_fine_tune_refuses_weights_of_another_architecture(ckpt: Path, arch: str, tmp_path: Path) -> None:
    from swinir.errors import ConfigError
    from swinir.train import Trainer, load_config

    other = next(a for a in ARCHS if a != arch) if len(ARCHS) > 1 else None
    if other is None:
        pytest.skip("one architecture registered")
    overrides = ["val.hr=null", "log.progress=false", f"model.architecture={other}", f"model.init_from={ckpt}"]
    # the tiny preset's lightweight head (pixelshuffledirect) is no head of HAT's (the trainer would refuse to
    # build it before looking at the weights); a pixelshuffle head exists in every architecture
    overrides.append("model.upsampler=pixelshuffle")
    with pytest.raises(ConfigError, match="model.from_init: true"):
        Trainer(load_config("builtin-x2-tiny", overrides), tmp_path / "run")


def test_save_writes_the_released_layout_and_reloads(sr2: torch.nn.Module, ckpt: Path, tmp_path: Path) -> None:
    """Keys of the written file equal the golden file's (the authors' own), derived buffers included."""
    raw = torch.load(ckpt, weights_only=True)
    key = next(k for k in raw if isinstance(raw[k], dict) and k != "swinir_spec")
    path = swinir.save(sr2, tmp_path / "m.pth", key=key)
    ours = torch.load(path, weights_only=True)
    assert list(ours[key]) == list(raw[key])
    assert {k: tuple(v.shape) for k, v in ours[key].items()} == {k: tuple(v.shape) for k, v in raw[key].items()}
    assert swinir.load(path).spec == sr2.spec


# the smallest released file of each architecture: (manifest under golden/, entry)
SMALLEST_RELEASE = {
    "swinir": ("released_state_dicts.json", "lightweight_x2"),
    "swin2sr": ("family/released_state_dicts.json", "Swin2SR_Lightweight_X2_64"),
    "hat": ("family/released_state_dicts.json", "HAT-S_SRx2"),
}


def test_save_of_a_released_size_network_writes_its_files_layout(arch: str, golden: Path, tmp_path: Path) -> None:
    """``swinir.save`` of a full-size network of a released configuration writes the released file's keys, in
    its order, with its shapes (derived buffers included), under its key: what the authors' code loads
    strictly (``tests/test_family.py`` loads such files into spandrel's copies)."""
    if arch not in SMALLEST_RELEASE:
        pytest.fail(f"registered architecture {arch} has no released manifest in SMALLEST_RELEASE: add one")
    manifest, name = SMALLEST_RELEASE[arch]
    release = json.loads((golden / manifest).read_text())[name]
    spec = swinir.spec.ModelSpec.from_kwargs(release["config"], arch)
    model = architectures.build(spec)
    path = swinir.save(model, tmp_path / "m.pth", key=release["checkpoint_key"])
    written = torch.load(path, weights_only=True)[release["checkpoint_key"]]
    assert list(written) == list(release["state_dict"])
    assert {k: list(v.shape) for k, v in written.items()} == release["state_dict"]
    assert swinir.load(path).spec == model.spec
