"""Issue 12 regressions for `swinir restore` (and `swinir eval --save`): each test is named after the behaviour
and failed before the fix. Files are tiny and the model is the 8-channel x2 of ``tiny_x2_checkpoint``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import swinir
from swinir.cli import main
from swinir.errors import SwinIRError
from swinir.io import read_image, write_image

RNG = np.random.default_rng(12)


def _rgb(h: int = 8, w: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3)).astype(np.uint8)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_restore_never_writes_an_input_when_two_inputs_share_an_output(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "d"
    write_image(d / "a.png", _rgb())
    write_image(d / "a.jpg", _rgb())
    before = _snapshot(d)
    for extra in ([], ["--ext", "same"], ["--ext", "jpg"], ["--overwrite"]):
        assert main(["restore", str(d), "-o", str(d), "--model", str(tiny_x2_checkpoint), *extra]) == 1
        assert _snapshot(d) == before, extra
    err = capsys.readouterr().err
    assert "all would be written to" in err and "refusing to overwrite the input image" in err


def test_existing_output_is_not_replaced_without_overwrite(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d2 = tmp_path / "d2"
    write_image(d2 / "a.jpg", _rgb())
    write_image(d2 / "a.png", _rgb(5, 5))  # an unrelated image that happens to have the output's name
    before = (d2 / "a.png").read_bytes()
    model = ["--model", str(tiny_x2_checkpoint)]
    assert main(["restore", str(d2 / "a.jpg"), "-o", str(d2), *model]) == 1
    cap = capsys.readouterr()
    assert (d2 / "a.png").read_bytes() == before
    assert f"exists: {d2 / 'a.png'}: not replaced" in cap.err and "--overwrite" in cap.err
    assert "0 restored, 1 not replaced (output exists)" in cap.out
    assert main(["restore", str(d2 / "a.jpg"), "-o", str(d2), "--skip-existing", *model]) == 0
    assert (d2 / "a.png").read_bytes() == before
    assert main(["restore", str(d2 / "a.jpg"), "-o", str(d2), "--overwrite", *model]) == 0
    assert read_image(d2 / "a.png").array.shape == (16, 16, 3)


def test_output_folder_inside_the_input_tree_is_reported_with_a_count(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f2 = tmp_path / "f2"
    write_image(f2 / "a.png", _rgb())
    write_image(f2 / "sub" / "a.png", _rgb(6, 6))
    write_image(f2 / "sub" / "a.jpg", _rgb(6, 6))
    before = _snapshot(f2 / "sub")
    assert main(["restore", str(f2), "-o", str(f2 / "sub"), "-r", "--model", str(tiny_x2_checkpoint)]) == 1
    err = capsys.readouterr().err
    assert f"notice: {f2}: 2 image(s) inside the output folder" in err
    assert _snapshot(f2 / "sub") == before  # f2/sub/a.png (the output of f2/a.png) exists: not replaced


def test_rerun_with_a_suffix_does_not_restore_its_earlier_outputs(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "d"
    write_image(d / "ok.png", _rgb())
    args = ["restore", str(d), "-o", str(d), "--suffix", "_x4", "--model", str(tiny_x2_checkpoint)]
    assert main(args) == 0
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in d.iterdir()) == ["ok.png", "ok_x4.png"]
    assert "1 earlier output(s) (*_x4 beside their source) left out" in capsys.readouterr().err


def test_eval_save_into_the_ground_truth_folder_does_not_score_its_outputs(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hr, out = tmp_path / "hr", tmp_path / "out"
    for name in ("baby", "bird"):
        write_image(hr / f"{name}.png", read_image(data_dir / "Set5" / "HR" / f"{name}.png").array[:48, :48])
    args = ["eval", "--model", "bicubic", "--scale", "2", "--hr", str(hr), "--quiet"]
    assert main([*args, "--save", str(hr)]) == 1  # saving among the test images is refused
    assert "holds the test images" in capsys.readouterr().err
    assert main([*args, "--save", str(out)]) == 0
    first = capsys.readouterr().out
    assert len(json.loads((out / "results.json").read_text())["images"]) == 2
    for result in out.glob("*_SwinIR.png"):  # as an earlier version, which saved there, left them
        result.rename(hr / result.name)
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "Average PSNR/SSIM(RGB)" in first and cap.out == first  # the same two images, the same scores
    assert "2 earlier output(s) (*_SwinIR.png beside their source)" in cap.err


def test_unknown_device_is_one_line(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "x.png", _rgb())
    rc = main(["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--device", "tpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: --device tpu: unknown device 'tpu'")
    with pytest.raises(SwinIRError, match="unknown device"):
        swinir.load(tiny_x2_checkpoint, device="tpu")


def test_nonfinite_output_fails_the_image_and_writes_nothing(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    model = swinir.load(tiny_x2_checkpoint, device="cpu")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    bad = swinir.save(model, tmp_path / "nan.pth")
    write_image(tmp_path / "in" / "x.png", _rgb())
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", str(bad)]) == 1
    cap = capsys.readouterr()
    assert "NaN or infinite" in cap.err and "0 restored" in cap.out
    assert not list((tmp_path / "o").glob("*"))  # no file, not even a temporary one


def test_unwritable_output_folder_fails_before_any_work(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", _rgb())
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "file" / "out"  # cannot be created (root ignores permission bits, not this)
    assert main(["restore", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_x2_checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "model:" not in err and "failed:" not in err  # nothing loaded, nothing computed
    assert err.strip().splitlines()[-1].startswith(f"error: {out}: cannot write there")


def test_quality_outside_1_to_100_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "x.png", _rgb())
    with pytest.raises(SystemExit) as ei:
        main(["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--ext", "jpg", "--quality", "1000"])
    assert ei.value.code == 2 and "must be in 1-101" in capsys.readouterr().err
    assert (
        main(["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--ext", "jpg", "--quality", "101"]) == 1
    )
    assert "applies to WebP only" in capsys.readouterr().err


def test_outscale_below_one_pixel_is_rejected(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "x.png", _rgb())
    args = ["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_x2_checkpoint)]
    assert main([*args, "--outscale", "1e-9"]) == 1
    assert "at least 1 pixel per side" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x.png").exists()


def test_animated_gif_says_only_the_first_frame_is_restored(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = [PILImage.fromarray(_rgb()) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    rc = main(["restore", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "o"), "--model", str(tiny_x2_checkpoint)])
    assert rc == 0
    assert "animated image of 3 frames: only the first frame is restored" in capsys.readouterr().err


def test_progress_bar_advances_per_tile_with_the_tile_count(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "big.png", _rgb(24, 24))
    args = ["--tile", "8", "--overlap", "4", "--model", str(tiny_x2_checkpoint)]
    assert main(["restore", str(tmp_path / "big.png"), "-o", str(tmp_path / "o"), *args]) == 0
    err = capsys.readouterr().err
    assert "big.png tile 1/25" in err and "big.png tile 25/25" in err  # 5 x 5 tiles of 8 with overlap 4
    counts = re.findall(r"\| (\S+)/1 \[", err)  # the bar's count: whole images (was 0.04/1, 0.08/1, ...)
    assert counts and set(counts) <= {"0", "1"}, counts
    assert re.search(r"restore:\s+4%\|[^|]*\| 0/1 \[.*big.png tile 1/25\]", err)  # while it fills per tile


def test_kernel_note_only_with_verbose(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from swinir import kernels

    monkeypatch.setattr(kernels, "available", lambda: False)
    write_image(tmp_path / "x.png", _rgb())
    args = ["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--device", "cpu"]
    assert main([*args, "--model", str(tiny_x2_checkpoint)]) == 0
    assert "CPU kernels" not in capsys.readouterr().err
    assert main([*args, "--overwrite", "-v", "--model", str(tiny_x2_checkpoint)]) == 0
    assert capsys.readouterr().err.count("CPU kernels are not in use") == 1


def test_sigterm_stops_with_a_message_and_no_partial_file(tmp_path: Path, tiny_x2_checkpoint: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(40):
        write_image(src / f"{i:02d}.png", _rgb(48, 48))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "swinir", "restore", str(src), "-o", str(out), "--tile", "8", "--overlap", "4"]
    proc = subprocess.Popen(
        [*cmd, "--model", str(tiny_x2_checkpoint)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if "stopped by" in line]
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0] and "Traceback" not in stderr
    written = list(out.iterdir())
    assert 0 < len(written) < 40 and not [p for p in written if p.name.startswith(".")]
    for p in written:
        assert read_image(p).array.shape == (96, 96, 3)


def test_one_torchrun_parser_for_training_and_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    import swinir.cli.restore as cli_restore
    import swinir.train.distributed as train_dist
    from swinir.torchrun import DistInfo, from_env

    assert train_dist.from_env is from_env and cli_restore.from_env is from_env
    assert not hasattr(cli_restore, "dist_env") and not hasattr(cli_restore, "InputGuard")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert from_env() == DistInfo(2, 4, 2)  # local rank defaults to the rank (one node)
    for rank, world in (("x", "4"), ("5", "4"), ("0", "two")):  # malformed: one process, not a crash
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", world)
        assert from_env() == DistInfo()


def test_eval_errors_name_the_flag_while_the_library_names_the_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swinir.evaluate import Protocol
    from swinir.options import OptionsError

    with pytest.raises(OptionsError, match="needs a scale of 2 or more") as ei:
        Protocol("classical_sr", scale=1)
    assert ei.value.field == "scale" and "--" not in str(ei.value)
    write_image(tmp_path / "hr" / "a.png", _rgb())
    args = ["eval", "--model", "bicubic", "--task", "classical_sr", "--scale", "1", "--hr", str(tmp_path / "hr")]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == "error: --scale: task classical_sr needs a scale of 2 or more"
    assert (
        main(["eval", "--model", "bicubic", "--scale", "2", "--hr", str(tmp_path / "hr"), "--tile-overlap", "-1"]) == 1
    )
    assert capsys.readouterr().err.strip() == "error: --tile-overlap: overlap must be >= 0, got -1"


# ---------------------------------------------------------------------------------------------------
# issue 23: hostile inputs and concurrent runs
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["/../../victim/v", "_x/../../victim/v", "..", "a/b", "\\..\\v", "x\0y"])
def test_a_suffix_is_a_name_fragment_and_nothing_is_written_outside_o(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    write_image(tmp_path / "in" / "headx8.png", _rgb())
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "v.png").write_bytes(b"unrelated")
    before = _snapshot(tmp_path)
    out = tmp_path / "nest" / "o_x"  # /../../victim/v from here reaches tmp_path/victim
    args = ["restore", str(tmp_path / "in" / "headx8.png"), "-o", str(out), "--suffix", suffix, "--overwrite"]
    assert main([*args, "--model", str(tiny_x2_checkpoint)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: --suffix: suffix {suffix!r} must be a name fragment, e.g. _x4: no path separators and no '..'"
    ]
    assert _snapshot(tmp_path) == before and not (tmp_path / "nest").exists()


def test_an_output_folder_that_links_elsewhere_is_refused_before_any_write(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    write_image(src / "top.png", _rgb())
    write_image(src / "sub" / "a.png", _rgb())
    elsewhere.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)  # -r mirrors sub/ into it
    assert main(["restore", str(src), "-o", str(out), "-r", "--model", str(tiny_x2_checkpoint)]) == 1
    cap = capsys.readouterr()
    assert f"failed: {src / 'sub' / 'a.png'}: its output {out / 'sub' / 'a.png'} would land in {elsewhere}" in cap.err
    assert "done: 1 restored, 1 failed" in cap.out
    assert not list(elsewhere.iterdir()) and (out / "top.png").is_file()


def test_a_corrupt_png_fails_in_one_line_from_the_cli_and_the_library(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swinir.errors import ImageReadError
    from swinir.pipeline import FileRun, restore_file

    good = write_image(tmp_path / "good.png", RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8))
    data = bytearray(good.read_bytes())
    data[data.find(b"IDAT") + 200] ^= 0xFF  # one byte flipped inside IDAT
    bad = tmp_path / "c.png"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["restore", str(bad), "-o", str(out), "--model", str(tiny_x2_checkpoint)]) == 1
    cap = capsys.readouterr()
    fails = [line for line in cap.err.splitlines() if "failed:" in line]
    assert len(fails) == 1 and fails[0].startswith(f"failed: {bad}: cannot decode it (a PNG header")
    assert "0 restored, 1 failed" in cap.out and not (out / "c.png").exists()
    with pytest.raises(ImageReadError, match="cannot decode it"):
        restore_file(FileRun(swinir.load(tiny_x2_checkpoint, device="cpu")), bad, tmp_path / "api.png")
    assert not (tmp_path / "api.png").exists()


def _claim_png(path: Path, side: int) -> Path:
    """A few hundred bytes of PNG whose header claims side x side pixels (its data is far too short)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def test_input_and_output_size_limits_are_checked_before_decoding_and_compute(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = _claim_png(tmp_path / "big.png", 9000)  # 81 MP: hours of tiles before, and under Pillow's bomb limit
    out, model = tmp_path / "out", ["--model", str(tiny_x2_checkpoint)]
    assert main(["restore", str(big), "-o", str(out), *model]) == 1
    err = capsys.readouterr().err
    assert (
        f"failed: {big}: 9000x9000 = 81 MP is over the input limit of 64 MP (read from the header; nothing "
        "decoded); --input-limit MP raises the limit (--input-limit 0 lifts it)" in err
    )
    assert main(["restore", str(big), "-o", str(out), "--input-limit", "100", *model]) == 1
    assert f"failed: {big}: cannot decode it" in capsys.readouterr().err  # decoded only once allowed
    assert main(["restore", str(big), "-o", str(out), "--input-limit", "80", *model]) == 1
    assert "over the input limit of 80 MP" in capsys.readouterr().err

    small = write_image(tmp_path / "small.png", _rgb())
    for flag in ("--width", "--height", "--long-side"):
        assert main(["restore", str(small), "-o", str(out), flag, "1000000000", *model]) == 1
        err = capsys.readouterr().err
        assert "over the output limit of 400 MP (refused before any compute); --output-limit MP" in err
        assert "tile 1/" not in err and "OpenCV" not in err  # the model never ran
    assert main(["restore", str(small), "-o", str(out), "--output-limit", "0.0002", *model]) == 1
    assert "the result would be 16x16 = 0.000256 MP, over the output limit of 0.0002 MP" in capsys.readouterr().err
    assert main(["restore", str(small), "-o", str(out), "--output-limit", "0.0003", *model]) == 0
    assert not [p for p in out.iterdir() if p.name != "small.png"]


def test_a_fifo_named_like_an_image_is_listed_not_opened(tmp_path: Path, tiny_x2_checkpoint: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "ok.png", _rgb())
    os.mkfifo(folder / "pipe.png")
    cmd = [sys.executable, "-m", "swinir", "restore", "-o", str(tmp_path / "out"), "--model", str(tiny_x2_checkpoint)]
    named = subprocess.run([*cmd, str(folder / "pipe.png")], capture_output=True, text=True, timeout=120)
    assert named.returncode == 1 and "model:" not in named.stderr  # refused before the model loads
    assert f"failed: {folder / 'pipe.png'}: a FIFO (named pipe), not a regular file" in named.stderr
    inside = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=120)
    assert inside.returncode == 0, inside.stderr
    head = inside.stderr.split("model:")[0]  # listed before the model loads
    assert f"skipped: {folder / 'pipe.png'}: a FIFO (named pipe), not a regular file; only regular files" in head
    assert "done: 1 restored, 0 failed" in inside.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png"]


def test_an_empty_output_folder_is_refused(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.png", _rgb())
    before = _snapshot(tmp_path)
    assert main(["restore", "a.png", "-o", "", "--suffix", "_z", "--model", str(tiny_x2_checkpoint)]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "error: -o is empty; give a folder for the results (-o . is the current folder)"
    )
    assert _snapshot(tmp_path) == before
    from swinir.options import OptionsError
    from swinir.restore_plan import plan_restore

    with pytest.raises(OptionsError, match="the output folder is empty") as ei:
        plan_restore(["a.png"], "", False, "_z", "png")
    assert ei.value.field == "output"


def test_options_that_would_do_nothing_are_refused_or_said(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "a.png", _rgb())
    args = ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_x2_checkpoint)]
    assert main([*args, "--alpha", "0.3"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --alpha weighs the model of --blend-with; give --blend-with too, or leave --alpha out"
    )
    assert main([*args, "--gray"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith("error: --gray picks the grayscale models of --noise-level/--jpeg-quality; give one of them")
    )
    assert not (tmp_path / "o").exists()  # refused before any work
    assert main([*args, "--pix-fmt", "yuv444p", "--crf", "20"]) == 0
    cap = capsys.readouterr()
    assert "notice: --crf, --pix-fmt apply to videos only, and no input is a video: ignored" in cap.err
    assert "done: 1 restored" in cap.out


ROUNDS = 5


@pytest.mark.slow
def test_two_runs_into_one_folder_never_replace_each_others_outputs(tmp_path: Path, tiny_x2_checkpoint: Path) -> None:
    """Issue 23, item 5: two real processes over the same 20 files, ROUNDS times; every output comes from
    exactly one run (its bytes are that run's model's), and the other run reports it as `exists`."""
    import torch

    from swinir.engine import restore

    torch.manual_seed(1)
    other = swinir.SwinIR(upscale=2, img_size=8, window_size=4, depths=[1], embed_dim=8, num_heads=[2], mlp_ratio=2,
                          upsampler="pixelshuffledirect")  # fmt: skip
    models = [tiny_x2_checkpoint, swinir.save(other, tmp_path / "other.pth")]
    src = tmp_path / "many"
    images = {f"{i:02d}.png": RNG.integers(0, 256, (96, 96, 3)).astype(np.uint8) for i in range(20)}
    for name, img in images.items():
        write_image(src / name, img)
    loaded = [swinir.load(m, device="cpu") for m in models]
    expected = [{name: restore(m, img, precision="auto") for name, img in images.items()} for m in loaded]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    for round_ in range(ROUNDS):
        if out.exists():
            for p in out.iterdir():
                p.unlink()
        cmd = [sys.executable, "-m", "swinir", "restore", str(src), "-o", str(out), "--tile", "0", "--model"]
        procs = [subprocess.Popen([*cmd, str(m)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for m in models]  # fmt: skip
        results = [p.communicate(timeout=300) for p in procs]
        at = re.escape(str(out))
        exists = [set(re.findall(rf"exists: {at}/(\S+): not replaced", err)) for _, err in results]
        failed = [set(re.findall(rf"failed: \S+: {at}/(\S+): ", err)) for _, err in results]
        claimed = [set(images) - exists[i] - failed[i] for i in range(2)]  # what each run reports restored
        assert not claimed[0] & claimed[1], f"round {round_}: both runs report {sorted(claimed[0] & claimed[1])}"
        assert claimed[0] | claimed[1] == set(images), (
            f"round {round_}: nobody wrote {set(images) - claimed[0] - claimed[1]}"
        )
        for i, (proc, (stdout, stderr)) in enumerate(zip(procs, results)):
            assert "failed:" not in stderr and "Traceback" not in stderr, stderr[-2000:]
            done = re.search(r"done: (\d+) restored(?:, (\d+) not replaced \(output exists\))?, 0 failed", stdout)
            assert done is not None, stdout
            assert int(done.group(1)) == len(claimed[i]) and int(done.group(2) or 0) == len(exists[i])
            assert proc.returncode == (1 if exists[i] else 0)
        for name in images:
            winner = 0 if name in claimed[0] else 1
            assert np.array_equal(read_image(out / name).array, expected[winner][name]), (round_, name)
        assert sorted(p.name for p in out.iterdir()) == sorted(images)  # no temporary file left
    assert main(["restore", str(src), "-o", str(out), "--overwrite", "--model", str(models[1])]) == 0
    for name in images:  # --overwrite still replaces
        assert np.array_equal(read_image(out / name).array, expected[1][name])
