"""Video restoration through PyAV, on clips each test makes itself (64x48, a few frames, an audio track)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

import swinir  # noqa: E402
from swinir import video  # noqa: E402
from swinir.engine import restore  # noqa: E402

TB = Fraction(1, 1000)
VFR_PTS = [0, 40, 100, 120, 200, 210, 260]  # variable frame rate, in ms


def make_clip(
    path: Path,
    pts: list[int] = VFR_PTS,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    audio: str | None = "flac",
    rotation: int = 0,
    size: tuple[int, int] = (64, 48),
    color_range: int = 0,
) -> list[np.ndarray]:
    """A clip of smooth random frames (so a codec keeps them recognisable), with audio; the RGB frames."""
    rng = np.random.default_rng(7)
    w, h = size
    frames = []
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.time_base = s.codec_context.time_base = TB
        if rotation:
            s.set_display_rotation(rotation)
        s.codec_context.color_range = color_range
        a = c.add_stream(audio, rate=16000, layout="mono") if audio else None
        for p in pts:
            base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
            img = torch.nn.functional.interpolate(
                torch.from_numpy(base).permute(2, 0, 1)[None], size=(h, w), mode="bilinear"
            )[0].permute(1, 2, 0)
            rgb = img.round().clamp(0, 255).to(torch.uint8).numpy()
            frames.append(rgb)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if color_range:
                f = f.reformat(format=pix_fmt, src_color_range=2, dst_color_range=color_range)
            f.pts, f.time_base = p, TB
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
        if a is not None:
            fmt = "s16" if audio in ("flac", "pcm_alaw") else "fltp"
            n = 1152 if audio == "flac" else 1024
            for i in range(0, 16 * (pts[-1] + 40), n):
                samples = rng.standard_normal((1, n)) * 0.1
                data = (samples * 32767).astype(np.int16) if fmt == "s16" else samples.astype(np.float32)
                af = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, i, Fraction(1, 16000)
                for packet in a.encode(af):
                    c.mux(packet)
            for packet in a.encode():
                c.mux(packet)
    return frames


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], int]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames], frames[0].rotation


def audio_packets(path: Path) -> list[tuple[bytes, float]]:
    with av.open(str(path)) as c:
        return [(bytes(p), float(p.pts * p.time_base)) for p in c.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return swinir.load("builtin-x2", device="cpu")


def frame_restorer(model: torch.nn.Module):
    calls: list[int] = []

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(frames))
        return [restore(model, f) for f in frames]

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_ffv1_output_is_each_frame_restored_as_an_image(tmp_path: Path, model: torch.nn.Module) -> None:
    src, dst = tmp_path / "clip.mkv", tmp_path / "out" / "clip.mkv"
    make_clip(src, rotation=90)
    run = frame_restorer(model)
    opts = video.EncodeOptions(codec="ffv1", pix_fmt="bgr0", segment_frames=3)
    result = video.restore_video(src, dst, run, (128, 96), opts, batch_frames=2)
    assert result.assembled and result.frames == result.restored == len(VFR_PTS)
    assert run.calls == [2, 1, 2, 1, 1]  # batches never cross a segment boundary
    inputs, in_times, _ = decoded(src)
    outputs, out_times, rotation = decoded(dst)
    assert len(outputs) == len(inputs)
    assert out_times == pytest.approx(in_times, abs=1e-9) == [p / 1000 for p in VFR_PTS]
    assert rotation == 90
    for got, frame in zip(outputs, inputs):
        np.testing.assert_array_equal(got, restore(model, frame))
    assert audio_packets(dst) == audio_packets(src)  # copied bit-exactly, same timestamps
    assert not video.parts_dir(dst).exists()


def test_h264_mp4_keeps_timing_audio_and_rotation(tmp_path: Path, model: torch.nn.Module) -> None:
    src, dst = tmp_path / "clip.mp4", tmp_path / "clip_x2.mp4"
    make_clip(src, codec="libx264", pix_fmt="yuv420p", audio="aac", rotation=-90, color_range=2)  # full range
    info = video.probe(src)
    assert info.color_range == 2
    assert (info.width, info.height, info.frames, info.rotation) == (64, 48, len(VFR_PTS), -90)
    assert info.copied == ("audio aac",)
    video.restore_video(src, dst, frame_restorer(model), (128, 96), video.EncodeOptions(segment_frames=4))
    inputs, in_times, _ = decoded(src)
    outputs, out_times, rotation = decoded(dst)
    assert out_times == pytest.approx(in_times, abs=1e-6)
    assert rotation == -90
    out_info = video.probe(dst)
    assert out_info.duration_s == pytest.approx(info.duration_s, abs=0.05)
    assert (out_info.codec, out_info.width, out_info.height, out_info.color_range) == ("h264", 128, 96, 2)
    assert out_info.pix_fmt == "yuvj420p"  # how FFmpeg names full-range 4:2:0
    for got, frame in zip(outputs, inputs):
        want = restore(model, frame).astype(np.float64)
        assert 10 * np.log10(255**2 / np.mean((got - want) ** 2)) > 30  # within x264's loss at crf 18
    assert audio_packets(dst) == audio_packets(src)


def one_run(tmp_path: Path, model: torch.nn.Module, opts: video.EncodeOptions) -> tuple[Path, Path]:
    """The clip, and its restoration by one uninterrupted process."""
    src, whole = tmp_path / "clip.mkv", tmp_path / "whole.mkv"
    make_clip(src)
    video.restore_video(src, whole, frame_restorer(model), (128, 96), opts)
    return src, whole


def test_interrupted_run_resumes_to_the_same_file(tmp_path: Path, model: torch.nn.Module) -> None:
    opts = video.EncodeOptions(codec="ffv1", segment_frames=2)
    src, whole = one_run(tmp_path, model, opts)

    dst = tmp_path / "resumed.mkv"
    done = []

    def dies_after_three(frames: list[np.ndarray]) -> list[np.ndarray]:
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(1)
        return [restore(model, f) for f in frames]

    with pytest.raises(KeyboardInterrupt):
        video.restore_video(src, dst, dies_after_three, (128, 96), opts)
    assert not dst.exists()
    assert len(list(video.parts_dir(dst).glob("seg-*.seg"))) == 1  # frames 0-1 done; frame 2's segment dropped
    assert not [p for p in video.parts_dir(dst).iterdir() if not p.name.startswith("seg-")]  # no temp files
    again = frame_restorer(model)
    result = video.restore_video(src, dst, again, (128, 96), opts, resume=True)
    assert result.reused == 2 and result.restored == len(VFR_PTS) - 2 and sum(again.calls) == result.restored
    assert dst.read_bytes() == whole.read_bytes()


def test_ranks_share_segments_and_write_the_same_file(tmp_path: Path, model: torch.nn.Module) -> None:
    opts = video.EncodeOptions(codec="libx264", segment_frames=2)
    src, whole = one_run(tmp_path, model, opts)
    dst = tmp_path / "shared.mkv"
    r1 = video.restore_video(src, dst, frame_restorer(model), (128, 96), opts, rank=1, world=2)
    assert not r1.assembled and r1.restored == 3 and not dst.exists()  # segments 1 and 3 of 0..3
    r0 = video.restore_video(src, dst, frame_restorer(model), (128, 96), opts, rank=0, world=2)
    assert r0.assembled and r0.restored == 4
    assert dst.read_bytes() == whole.read_bytes()


def test_ten_bit_source_gives_ten_bit_output(tmp_path: Path) -> None:
    src, dst = tmp_path / "deep.mkv", tmp_path / "deep_out.mkv"
    make_clip(src, pts=[0, 40, 80], pix_fmt="yuv420p10le", audio=None)
    seen: list[np.dtype] = []

    def identity(frames: list[np.ndarray]) -> list[np.ndarray]:
        seen.extend(f.dtype for f in frames)
        return frames

    video.restore_video(src, dst, identity, (64, 48), video.EncodeOptions(codec="libx265", crf=4))
    assert seen == [np.dtype(np.uint16)] * 3
    info = video.probe(dst)
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("hevc", "yuv420p10le", 10)
    (a, _, _), (b, _, _) = decoded(src), decoded(dst)
    assert 10 * np.log10(255**2 / np.mean((a[0].astype(float) - b[0]) ** 2)) > 30  # 4:2:0 chroma twice
    with av.open(str(dst)) as c:
        luma = next(c.decode(video=0)).to_ndarray()[:48]  # yuv420p10le: Y plane first
    assert luma.dtype == np.uint16 and luma.max() > 255 and np.any(luma % 4)  # ten bits used, not 8 shifted


@pytest.mark.parametrize("mode, size", [("pad", (66, 50)), ("crop", (64, 48))])
def test_odd_size_for_420_is_padded_or_cropped_and_said(tmp_path: Path, mode: str, size: tuple[int, int]) -> None:
    src, dst = tmp_path / "clip.mkv", tmp_path / f"{mode}.mkv"
    make_clip(src, pts=[0, 40], audio=None)
    grow = lambda frames: [np.pad(f, ((0, 1), (0, 1), (0, 0)), mode="edge") for f in frames]
    lines: list[str] = []
    opts = video.EncodeOptions(codec="ffv1", pix_fmt="yuv420p", odd_size=mode)
    result = video.restore_video(src, dst, grow, (65, 49), opts, say=lines.append)
    assert lines and "65x49 is odd for yuv420p" in lines[0] and f"{size[0]}x{size[1]}" in lines[0]
    assert result.notes == [lines[0].removeprefix("notice: ")]
    info = video.probe(dst)
    assert (info.width, info.height) == size


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, swinir.SwinIRError)
    return text


def test_bad_files_get_one_line_errors_and_no_output(tmp_path: Path) -> None:
    identity = lambda frames: frames
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video at all" * 100)
    with pytest.raises(video.VideoError) as exc:
        video.restore_video(garbage, tmp_path / "o1.mp4", identity, (64, 48))
    assert "corrupt or truncated" in one_line(exc)

    clip = tmp_path / "clip.mp4"
    make_clip(clip, codec="libx264", pix_fmt="yuv420p", audio="aac")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(video.VideoError) as exc:
        video.restore_video(cut, tmp_path / "o2.mp4", identity, (64, 48))
    assert "corrupt or truncated" in one_line(exc)

    sound = tmp_path / "sound.mka"
    with av.open(str(sound), "w", format="matroska") as c:
        a = c.add_stream("flac", rate=16000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)
    with pytest.raises(video.VideoError) as exc:
        video.restore_video(sound, tmp_path / "o3.mp4", identity, (64, 48))
    assert "no video stream" in one_line(exc) and "audio" in str(exc.value)

    with pytest.raises(video.VideoError) as exc:
        video.restore_video(clip, tmp_path / "o4.gif", identity, (64, 48))
    assert ".mp4, .mkv" in one_line(exc)
    with pytest.raises(video.VideoError) as exc:
        video.restore_video(
            clip, tmp_path / "o5.mp4", identity, (64, 48), video.EncodeOptions(codec="ffv1", pix_fmt="nv12")
        )
    assert "cannot write pixel format nv12" in one_line(exc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "cut.mp4", "garbage.mp4", "sound.mka"]


def test_companion_stream_the_container_cannot_hold_is_refused_before_work(tmp_path: Path) -> None:
    src = tmp_path / "clip.nut"
    make_clip(src, pts=[0, 40], audio="pcm_alaw")
    calls: list[int] = []
    with pytest.raises(video.VideoError) as exc:
        video.restore_video(src, tmp_path / "out.mp4", lambda f: calls.append(1) or f, (64, 48))
    assert "audio" in one_line(exc) and ".mkv" in str(exc.value) and not calls


def test_cli_restores_a_video_beside_a_folder_of_frames(
    tmp_path: Path, model: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    from swinir.cli import main
    from swinir.io import read_image, write_image

    clip, frames = tmp_path / "clip.mkv", tmp_path / "frames"
    inputs = make_clip(clip, pts=VFR_PTS[:4])
    frames.mkdir()
    write_image(frames / "f0.png", inputs[0])
    out = tmp_path / "out"
    args = ["restore", str(clip), str(frames), "-o", str(out), "--model", "builtin-x2", "--tile", "0"]
    args += ["--codec", "ffv1", "--pix-fmt", "bgr0", "--segment-frames", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "video: " in err and "4 frames, assembled" in err
    restored, times, _ = decoded(out / "clip.mkv")
    assert times == [p / 1000 for p in VFR_PTS[:4]]
    np.testing.assert_array_equal(restored[0], restore(model, inputs[0], precision="auto"))  # the default
    np.testing.assert_array_equal(read_image(out / "f0.png").array, restored[0])  # the frame as an image
    assert audio_packets(out / "clip.mkv") == audio_packets(clip)

    before = (out / "clip.mkv").read_bytes()
    assert main(args) == 1  # the output exists: refused, untouched
    assert "exists" in capsys.readouterr().err and (out / "clip.mkv").read_bytes() == before
    assert main([*args, "--skip-existing"]) == 0

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["restore", str(bad), "-o", str(out), "--model", "builtin-x2"]) == 1
    line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("failed:")]
    assert len(line) == 1 and "corrupt or truncated" in line[0]
    assert not (out / "bad.mp4").exists()


def test_cli_restores_videos_inside_folders_and_fails_both_of_a_clashing_pair(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23, item 7: a folder of only videos said "no images found"; two videos for one output wrote the
    first and failed the second. Issue 24: a video-only run printed an empty image bar (``restore: 0img``)."""
    from swinir.cli import main

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("one.mkv", "two.nut"):
        make_clip(folder / name, pts=VFR_PTS[:2], audio=None)
    out = tmp_path / "out"
    model = ["--model", str(tiny_x2_checkpoint), "--codec", "ffv1", "--pix-fmt", "bgr0"]
    assert main(["restore", str(folder), "-o", str(out), *model]) == 0
    cap = capsys.readouterr()
    assert "no images" not in cap.err and "0img" not in cap.err
    assert "done: 2 restored, 0 failed" in cap.out
    for name in ("one.mkv", "two.nut"):
        frames, _, _ = decoded(out / name)
        assert len(frames) == 2 and frames[0].shape == (96, 128, 3)

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    make_clip(tmp_path / "x" / "a.mkv", pts=VFR_PTS[:2], audio=None)
    make_clip(tmp_path / "y" / "a.mkv", pts=VFR_PTS[:2], audio=None)
    pair = [str(tmp_path / "x" / "a.mkv"), str(tmp_path / "y" / "a.mkv")]
    out2 = tmp_path / "out2"
    assert main(["restore", *pair, str(folder / "one.mkv"), "-o", str(out2), *model]) == 1
    cap = capsys.readouterr()
    assert f"failed: {pair[0]}, {pair[1]}: all would be written to {out2 / 'a.mkv'}" in cap.err
    assert "done: 1 restored, 2 failed" in cap.out
    assert sorted(p.name for p in out2.iterdir()) == ["one.mkv"]  # neither of the pair was written


def test_video_output_size_is_checked_before_any_frame(
    tmp_path: Path, tiny_x2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swinir.cli import main

    clip = tmp_path / "clip.mkv"
    make_clip(clip, pts=VFR_PTS[:2], audio=None)
    out = tmp_path / "out"
    args = ["restore", str(clip), "-o", str(out), "--model", str(tiny_x2_checkpoint), "--width", "1000000000"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"failed: {clip}: the result would be 1000000000x750000000" in err
    assert "over the output limit of 400 MP (refused before any compute); --output-limit MP" in err
    assert not out.exists() or not list(out.iterdir())  # no segment, no parts folder
    with pytest.raises(swinir.pipeline.LimitError, match="over the input limit of 0.001 MP") as ei:
        video.restore_clip(
            swinir.load(tiny_x2_checkpoint), clip, out / "x.mkv", limits=swinir.pipeline.PixelLimits(1000)
        )
    assert ei.value.field == "input_pixels"


def test_an_output_published_meanwhile_is_not_replaced(tmp_path: Path, tiny_x2_checkpoint: Path) -> None:
    from swinir.errors import OutputExistsError

    clip = tmp_path / "clip.mkv"
    make_clip(clip, pts=VFR_PTS[:2], audio=None)
    dst = tmp_path / "out.mkv"
    model = swinir.load(tiny_x2_checkpoint)

    def publish_first(frames: list[np.ndarray]) -> list[np.ndarray]:
        if not dst.exists():
            dst.write_bytes(b"another run's result")  # while this run restores its frames
        return [restore(model, f) for f in frames]

    with pytest.raises(OutputExistsError, match="another run published it meanwhile"):
        video.restore_video(clip, dst, publish_first, (128, 96), video.EncodeOptions("ffv1"), replace=False)
    assert dst.read_bytes() == b"another run's result"
    with pytest.raises(OutputExistsError):
        video.restore_video(clip, dst, publish_first, (128, 96), replace=False)
    video.restore_video(clip, dst, publish_first, (128, 96), video.EncodeOptions("ffv1"))  # replace=True replaces
    assert len(decoded(dst)[0]) == 2
