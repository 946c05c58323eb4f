"""Restore videos frame by frame through PyAV (FFmpeg in a pip wheel; no ``ffmpeg`` binary needed).

Frames stream: decoded, restored in batches, encoded as they go, so memory holds a batch of frames and the
encoder's look-ahead whatever the length (``benchmarks/video.py`` prints peak RSS for two clip lengths).
The output is written in segments of ``segment_frames`` frames, each its own small file beside the
destination (``.NAME.parts/``), encoded from the source's own timestamps (variable frame rate kept). The
final file is remuxed from the segments plus the source's audio and subtitle packets (copied, never
re-encoded) and replaces the destination atomically. An interrupted run keeps its finished segments; run
again with ``resume`` and only the missing ones are restored. Under ``torchrun`` each rank restores the
segments ``k % world == rank``; whichever rank sees the last one land assembles, and because every segment
is encoded the same way by whoever makes it, the result is the file one process would write.

Decoding is sequential from the start (frames of segments that are done or belong to another rank are
decoded but not converted or restored): seeking by timestamp is unreliable with variable frame rate, and
decoding costs well under 1% of a SwinIR forward.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import io
import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from swinir.atomic import atomic_path
from swinir.errors import OutputExistsError, SwinIRError

__all__ = [
    "VideoError",
    "VideoInfo",
    "EncodeOptions",
    "VideoResult",
    "VIDEO_EXTENSIONS",
    "CODECS",
    "is_video",
    "video_output_extension",
    "probe",
    "restore_video",
    "output_pix_fmt",
    "encoded_size",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".nut", ".ts", ".mts", ".wmv", ".flv", ".mpg")
# output container per suffix (the formats that take H.264/H.265/FFV1 and copied audio)
_OUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".nut": "nut", ".avi": "avi"}
CODECS = ("libx264", "libx265", "ffv1")
_DEFAULT_CRF = {"libx264": 18, "libx265": 20}
_ENCODER_THREADS = 4  # fixed, so a segment's bytes do not depend on the machine that encoded it


class VideoError(SwinIRError):
    """A video could not be read, restored or written."""


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_output_extension(src: str | os.PathLike[str]) -> str:
    """The restored video's extension: the input's container where it can be written, else ``.mkv``."""
    suffix = Path(src).suffix.lower()
    return suffix if suffix in _OUT_FORMATS else ".mkv"


@dataclass(frozen=True)
class VideoInfo:
    """What the restoration keeps from the source."""

    width: int
    height: int
    frames: int  # from the container when it says, else estimated from duration x rate (0 = unknown)
    frames_exact: bool
    time_base: Fraction
    rate: Fraction | None
    duration_s: float | None
    pix_fmt: str
    codec: str
    bit_depth: int
    color_range: int
    rotation: int
    copied: tuple[str, ...]  # "audio aac", "subtitle mov_text", ... streams copied as they are


@dataclass(frozen=True)
class EncodeOptions:
    """How the restored frames are encoded. ``pix_fmt`` None: 4:2:0 at the source's bit depth (8 or 10)
    for x264/x265, the source's own format for FFV1 where it takes it."""

    codec: str = "libx264"
    crf: int | None = None
    pix_fmt: str | None = None
    odd_size: str = "pad"  # for 4:2:0/4:2:2 outputs: "pad" (repeat the last row/column) or "crop"
    segment_frames: int = 48


@dataclass
class VideoResult:
    output: Path
    frames: int = 0  # frames in the output
    restored: int = 0  # frames restored by this process
    reused: int = 0  # frames of segments a previous run (or another rank) finished
    assembled: bool = False
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# probing
# ---------------------------------------------------------------------------------------------------
def _open(path: Path) -> Any:
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: cannot open as a video, the file is corrupt or truncated ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160]


def _bit_depth(pix_fmt: str) -> int:
    import av

    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:
        return 8


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise VideoError(f"{path}: no video stream in this file (it holds {kinds})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None or not ctx.is_decoder:
        name = getattr(stream.codec_context, "name", None) or "unknown"
        raise VideoError(f"{path}: this build of FFmpeg (PyAV) cannot decode its {name} video; convert it first")
    return stream


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, timing, colour and companion streams of ``path``'s first video stream; decodes one frame."""
    import av

    p = Path(path)
    with _open(p) as container:
        stream = _video_stream(container, p)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or None
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        if duration is None and container.duration:
            duration = container.duration / 1e6
        frames_exact = bool(stream.frames)
        frames = int(stream.frames) if stream.frames else int(round(duration * rate)) if duration and rate else 0
        copied = tuple(
            f"{s.type} {s.codec_context.name if s.codec_context else s.codec_name}" for s in _companions(container)
        )
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{p}: the video cannot be decoded, the file is corrupt or truncated ({_why(exc)})"
            ) from None
        if first is None:
            raise VideoError(f"{p}: the video stream holds no frames (empty or truncated file)")
        return VideoInfo(
            width=first.width,
            height=first.height,
            frames=frames,
            frames_exact=frames_exact,
            time_base=stream.time_base,
            rate=Fraction(rate) if rate else None,
            duration_s=duration,
            pix_fmt=first.format.name,
            codec=ctx.name,
            bit_depth=_bit_depth(first.format.name),
            color_range=int(first.color_range),
            rotation=int(first.rotation or 0),
            copied=copied,
        )


def _companions(container: Any) -> list[Any]:
    return [s for s in container.streams if s.type in ("audio", "subtitle")]


# ---------------------------------------------------------------------------------------------------
# output format
# ---------------------------------------------------------------------------------------------------
def output_pix_fmt(options: EncodeOptions, info: VideoInfo) -> str:
    """The pixel format written: the user's, or the codec's natural one at the source's bit depth."""
    import av

    if options.codec not in CODECS:
        raise VideoError(f"unknown codec {options.codec!r}; use one of {', '.join(CODECS)}")
    try:
        supported = [f.name for f in av.codec.Codec(options.codec, "w").video_formats or ()]
    except Exception:
        raise VideoError(f"this build of PyAV has no {options.codec} encoder; use another --codec") from None
    if options.pix_fmt:
        if options.pix_fmt not in supported:
            raise VideoError(
                f"{options.codec} cannot write pixel format {options.pix_fmt}; it takes {', '.join(supported[:12])} ..."
            )
        return options.pix_fmt
    if options.codec == "ffv1" and info.pix_fmt in supported:
        return info.pix_fmt
    return "yuv420p10le" if info.bit_depth > 8 and "yuv420p10le" in supported else "yuv420p"


def encoded_size(width: int, height: int, pix_fmt: str, odd_size: str) -> tuple[int, int]:
    """(width, height) after padding or cropping to the chroma subsampling of ``pix_fmt``."""
    import av

    fmt = av.VideoFormat(pix_fmt, 64, 64)
    step_x, step_y = 64 // fmt.chroma_width(), 64 // fmt.chroma_height()
    if odd_size == "crop":
        return max(step_x, width - width % step_x), max(step_y, height - height % step_y)
    if odd_size == "pad":
        return width + (-width) % step_x, height + (-height) % step_y
    raise VideoError(f"odd_size must be 'pad' or 'crop', got {odd_size!r}")


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop or pad (edge repeat) to width x height."""
    out = frame[:height, :width]
    ph, pw = height - out.shape[0], width - out.shape[1]
    if ph or pw:
        out = np.pad(out, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(out)


def _container_format(dst: Path) -> str:
    fmt = _OUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dst}: cannot write video as {dst.suffix or 'no extension'}; use .mp4, .mkv, .mov or .nut")
    return fmt


def _check_container(src: Path, dst: Path, codec: str) -> None:
    """Refuse before any work when the output container cannot hold the video codec or a copied stream."""
    import av

    fmt = _container_format(dst)
    with av.open(io.BytesIO(), "w", format=fmt) as probe_out:
        if codec not in probe_out.supported_codecs:
            raise VideoError(f"{dst}: a {fmt} file cannot hold {codec} video; use .mkv")
    with _open(src) as container:
        buf = io.BytesIO()
        out = av.open(buf, "w", format=fmt)
        try:
            for s in _companions(container):
                try:
                    out.add_stream_from_template(s)
                except Exception as exc:
                    raise VideoError(
                        f"{dst}: a {fmt} file cannot hold the source's {s.type} stream "
                        f"({s.codec_context.name if s.codec_context else '?'}, {_why(exc)}); use .mkv"
                    ) from None
            if out.streams:
                try:
                    out.start_encoding()
                except av.error.FFmpegError as exc:
                    names = ", ".join(f"{s.type} {s.codec_context.name}" for s in _companions(container))
                    raise VideoError(
                        f"{dst}: a {fmt} file cannot hold the source's {names} without re-encoding ({_why(exc)}); "
                        "use .mkv"
                    ) from None
        finally:
            with contextlib.suppress(Exception):
                out.close()


# ---------------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Decoded:
    index: int
    pts: int
    frame: Any  # av.VideoFrame, converted to an array only when it will be restored


def _frames(src: Path, info: VideoInfo) -> Iterator[_Decoded]:
    """Every frame in presentation order with a strictly increasing pts; a clear error on corrupt data."""
    import av

    step = max(1, round(1 / (info.rate * info.time_base))) if info.rate else 1
    last: int | None = None
    index = 0
    with _open(src) as container:
        stream = _video_stream(container, src)
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else (0 if last is None else last + step)
                if last is not None and pts <= last:
                    pts = last + 1  # repeated timestamps would be refused by the encoder
                last = pts
                yield _Decoded(index, pts, frame)
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{src}: decoding failed after {index} frame(s), the file is corrupt or truncated ({_why(exc)})"
            ) from None
    if info.frames_exact and index < info.frames:
        raise VideoError(f"{src}: only {index} of {info.frames} frames could be decoded; the file is truncated")


def to_array(frame: Any, bit_depth: int) -> np.ndarray:
    """RGB HxWx3, uint8 (8-bit sources) or uint16 (deeper), full range, the source's colour matrix."""
    fmt = "rgb24" if bit_depth <= 8 else "rgb48le"
    kwargs: dict[str, Any] = {"dst_color_range": 2}
    if frame.format.name.startswith(("yuv", "nv")):
        kwargs["src_color_range"] = int(frame.color_range) or 1
        if int(frame.colorspace) in (1, 5, 9):
            kwargs["src_colorspace"] = int(frame.colorspace)
    return np.asarray(frame.to_ndarray(format=fmt, **kwargs))


# ---------------------------------------------------------------------------------------------------
# segments
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """Everything a segment's bytes depend on; its hash names the segment files."""

    source: str
    source_size: int
    source_mtime_ns: int
    fingerprint: str  # the model and restore options, from the caller
    codec: str
    crf: int | None
    pix_fmt: str
    width: int
    height: int
    odd_size: str
    segment_frames: int
    color_range: int

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def parts_dir(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.parts"


def _segment_path(parts: Path, key: str, k: int) -> Path:
    return parts / f"seg-{key}-{k:06d}.seg"


def _add_encoder(container: Any, layout: _Layout, info: VideoInfo) -> Any:
    """The video stream and its encoder, set up identically for segments and for the final file (so the
    encoder's global header, e.g. H.264's avcC, is the same in both)."""
    import av

    options = {}
    crf = layout.crf if layout.crf is not None else _DEFAULT_CRF.get(layout.codec)
    if crf is not None:
        options["crf"] = str(crf)
    if layout.codec == "libx265":
        options["x265-params"] = "log-level=error"
    stream = container.add_stream(layout.codec, rate=info.rate or 25, options=options)
    stream.width, stream.height, stream.pix_fmt = layout.width, layout.height, layout.pix_fmt
    stream.time_base = info.time_base
    ctx = stream.codec_context
    ctx.time_base = info.time_base
    ctx.thread_count = _ENCODER_THREADS
    ctx.color_range = layout.color_range
    ctx.flags |= av.codec.context.Flags.bitexact
    return stream


_MAGIC = b"SWINIR-SEGMENT-1\n"
_PACKET = struct.Struct("<qqqBI")  # pts, dts, duration, keyframe, size


class _SegmentWriter:
    """One segment: encoded packets with their exact timestamps, in a small file of our own (a container
    would shift or round them: NUT rewrote x264's B-frame timestamps, Matroska rounds to 1 ms). The file
    replaces the segment only when complete."""

    def __init__(self, path: Path, layout: _Layout, info: VideoInfo) -> None:
        import av

        self._atomic = atomic_path(path, suffix=".seg")
        self._file = self._atomic.__enter__().open("wb")
        self._file.write(_MAGIC)
        self._host = av.open(io.BytesIO(), "w", format="nut")  # owns the encoder; its bytes are not kept
        self.stream = _add_encoder(self._host, layout, info)
        self.layout = layout
        self.range = layout.color_range or 1
        self.count = 0

    def add(self, array: np.ndarray, pts: int) -> None:
        import av

        src_fmt = "rgb24" if array.dtype == np.uint8 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(array, format=src_fmt)
        yuv = self.layout.pix_fmt.startswith(("yuv", "nv"))
        frame = frame.reformat(format=self.layout.pix_fmt, src_color_range=2, dst_color_range=self.range if yuv else 2)
        frame.pts = pts
        frame.time_base = self.stream.time_base
        self._write(self.stream.encode(frame))

    def _write(self, packets: Sequence[Any]) -> None:
        for packet in packets:
            data = bytes(packet)
            dts = packet.dts if packet.dts is not None else packet.pts
            self._file.write(_PACKET.pack(packet.pts, dts, packet.duration or 0, int(packet.is_keyframe), len(data)))
            self._file.write(data)
            self.count += 1

    def close(self) -> None:
        self._write(self.stream.encode(None))
        self._file.close()
        self._host.close()
        self._atomic.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._file.close()
        with contextlib.suppress(Exception):
            self._host.close()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)


def _read_segment(path: Path) -> Iterator[tuple[int, int, int, bool, bytes]]:
    with path.open("rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise VideoError(f"{path}: not a segment of this version; delete {path.parent} and run again")
        while head := f.read(_PACKET.size):
            if len(head) < _PACKET.size:
                raise VideoError(f"{path}: segment is truncated; delete it and run again with resume")
            pts, dts, duration, key, size = _PACKET.unpack(head)
            data = f.read(size)
            if len(data) < size:
                raise VideoError(f"{path}: segment is truncated; delete it and run again with resume")
            yield pts, dts, duration, bool(key), data


# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
RestoreFrames = Callable[[list[np.ndarray]], Sequence[np.ndarray]]


@dataclass
class _Job:
    """One video's run in this process."""

    source: Path
    info: VideoInfo
    layout: _Layout
    parts: Path
    key: str
    out_size: tuple[int, int]  # (width, height) the restore function returns
    resume: bool
    rank: int
    world: int
    result: VideoResult


def restore_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    restore_frames: RestoreFrames,
    out_size: tuple[int, int],
    options: EncodeOptions | None = None,
    *,
    fingerprint: str = "",
    batch_frames: int = 1,
    resume: bool = False,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    replace: bool = True,
) -> VideoResult:
    """Restore ``src`` into ``dst`` with ``restore_frames`` (a list of RGB uint8/uint16 HxWx3 frames in, the
    same number of restored frames of ``out_size`` = (width, height) out).

    ``fingerprint`` names the model and restore settings: segments made with another fingerprint are not
    reused. ``resume``: keep the finished segments of an interrupted run with the same settings.
    ``rank``/``world``: share the segments between processes (torchrun). ``replace=False``: an existing
    ``dst`` is left alone, before any work and at the final publish (another run may write it meanwhile),
    with ``OutputExistsError``.
    """
    options = options or EncodeOptions()
    source, out = Path(src), Path(dst)
    say = say or (lambda line: None)
    if not replace and (out.exists() or out.is_symlink()):
        raise OutputExistsError(out)
    if options.segment_frames < 1 or batch_frames < 1:
        raise VideoError("segment_frames and batch_frames must be >= 1")
    info = probe(source)
    pix_fmt = output_pix_fmt(options, info)
    _check_container(source, out, options.codec)
    width, height = encoded_size(out_size[0], out_size[1], pix_fmt, options.odd_size)
    result = VideoResult(out)
    if (width, height) != tuple(out_size):
        verb = "padded (last row/column repeated)" if options.odd_size == "pad" else "cropped"
        result.notes.append(
            f"{source.name}: {out_size[0]}x{out_size[1]} is odd for {pix_fmt}: {verb} to {width}x{height}"
        )
        say(f"notice: {result.notes[-1]}")
    st = source.stat()
    layout = _Layout(
        str(source.resolve()), st.st_size, st.st_mtime_ns, fingerprint, options.codec, options.crf, pix_fmt,
        width, height, options.odd_size, options.segment_frames, info.color_range,
    )  # fmt: skip
    parts, key = parts_dir(out), layout.key()
    job = _Job(source, info, layout, parts, key, (int(out_size[0]), int(out_size[1])), resume, rank, world, result)
    _SegmentRun(job, restore_frames, batch_frames, progress).run()
    total = result.frames
    segments = [_segment_path(parts, key, k) for k in range(-(-total // options.segment_frames))]
    if all(p.exists() for p in segments) and _claim_assembly(parts, key, world):
        _assemble(source, out, segments, layout, info, replace)
        shutil.rmtree(parts, ignore_errors=True)
        result.assembled = True
    return result


class _SegmentRun:
    """Feeds decoded frames into this process's segments: batches to ``restore_frames``, one encoder open
    at a time, the others' (or finished) segments passed over."""

    def __init__(self, job: _Job, restore_frames: RestoreFrames, batch_frames: int, progress: bool) -> None:
        from tqdm import tqdm

        self.job, self.restore_frames, self.batch_frames = job, restore_frames, batch_frames
        self.writer: _SegmentWriter | None = None
        self.batch: list[_Decoded] = []
        self.current, self.mine = -1, False
        name = job.source.name
        self.bar = tqdm(total=job.info.frames or None, desc=name, unit="frame", leave=False, disable=not progress)

    def _run_batch(self) -> None:
        job = self.job
        restored = self.restore_frames([to_array(d.frame, job.info.bit_depth) for d in self.batch])
        if len(restored) != len(self.batch):
            raise VideoError(f"the restore function returned {len(restored)} frames for {len(self.batch)}")
        for d, r in zip(self.batch, restored):
            if r.shape != (job.out_size[1], job.out_size[0], 3):
                raise VideoError(f"restored frames must be {job.out_size[1]}x{job.out_size[0]}x3, got {r.shape}")
            assert self.writer is not None
            self.writer.add(_fit(r, job.layout.width, job.layout.height), d.pts)
        job.result.restored += len(self.batch)
        self.bar.update(len(self.batch))
        self.batch.clear()

    def _end_segment(self) -> None:
        if self.batch:
            self._run_batch()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def feed(self, d: _Decoded) -> None:
        job = self.job
        k = d.index // job.layout.segment_frames
        if k != self.current:
            self._end_segment()
            self.current = k
            path = _segment_path(job.parts, job.key, k)
            self.mine = k % job.world == job.rank and not (job.resume and path.exists())
            if self.mine:
                job.parts.mkdir(parents=True, exist_ok=True)
                self.writer = _SegmentWriter(path, job.layout, job.info)
        job.result.frames += 1
        if not self.mine:
            job.result.reused += 1 if _segment_path(job.parts, job.key, k).exists() else 0
            self.bar.update(1)
            return
        self.batch.append(d)
        if len(self.batch) >= self.batch_frames:
            self._run_batch()

    def run(self) -> None:
        try:
            for d in _frames(self.job.source, self.job.info):
                self.feed(d)
            self._end_segment()
        except BaseException as exc:
            if self.writer is not None:
                self.writer.abort(exc)
            raise
        finally:
            self.bar.close()


def _claim_assembly(parts: Path, key: str, world: int) -> bool:
    """One process assembles: alone, always; under torchrun the first to create this run's lock file."""
    if world < 2:
        return True
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "") + os.environ.get("TORCHELASTIC_RESTART_COUNT", "")
    lock = parts / f"assemble-{key}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


# ---------------------------------------------------------------------------------------------------
# assembly
# ---------------------------------------------------------------------------------------------------
def _packets(container: Any, streams: Any, order: int) -> Iterator[tuple[Fraction, int, int, Any]]:
    """(time, order, sequence, packet) for the heap merge; flush packets (no data) dropped."""
    for i, packet in enumerate(container.demux(streams)):
        if packet.size == 0 or packet.dts is None:
            continue
        yield Fraction(packet.dts) * packet.time_base, order, i, packet


def _segment_packets(segments: Sequence[Path], out_stream: Any) -> Iterator[tuple[Fraction, int, int, Any]]:
    """The segments' packets in order, dts made strictly increasing across segment joins (with variable
    frame rate, each segment's B-frame delay differs)."""
    import av

    seq = 0
    last_dts: int | None = None
    tb = out_stream.time_base
    for path in segments:
        for pts, dts, duration, key, data in _read_segment(path):
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
            last_dts = dts
            packet = av.Packet(data)
            packet.pts, packet.dts, packet.time_base = pts, dts, tb
            if duration:
                packet.duration = duration
            packet.is_keyframe = key
            packet.stream = out_stream
            seq += 1
            yield Fraction(dts) * tb, 0, seq, packet


def _assemble(
    source: Path, dst: Path, segments: Sequence[Path], layout: _Layout, info: VideoInfo, replace: bool = True
) -> None:
    import av

    fmt = _container_format(dst)
    try:
        with _open(source) as src, atomic_path(dst, suffix=dst.suffix, replace=replace) as tmp:
            out = av.open(str(tmp), "w", format=fmt, options={"fflags": "+bitexact"})
            try:
                video = _add_encoder(out, layout, info)
                if info.rotation:
                    video.set_display_rotation(info.rotation)
                companions = _companions(src)
                targets = {s.index: out.add_stream_from_template(s) for s in companions}
                out.start_encoding()
                streams: list[Iterator[tuple[Fraction, int, int, Any]]] = [_segment_packets(segments, video)]
                if companions:
                    streams.append(_retarget(_packets(src, companions, 1), targets))
                for _, _, _, packet in heapq.merge(*streams, key=lambda item: item[:3]):
                    out.mux(packet)
            finally:
                out.close()
    except FileExistsError:
        raise OutputExistsError(dst, "exists (another run published it meanwhile); not replaced") from None


def _retarget(
    items: Iterator[tuple[Fraction, int, int, Any]], targets: dict[int, Any]
) -> Iterator[tuple[Fraction, int, int, Any]]:
    for item in items:
        item[3].stream = targets[item[3].stream.index]
        yield item


# ---------------------------------------------------------------------------------------------------
# with a model
# ---------------------------------------------------------------------------------------------------
def model_fingerprint(model: Any, options: Any = None) -> str:
    """A digest of the weights and the restore options: segments made by anything else are not reused."""
    import torch

    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    if options is not None:
        opts = options.to_dict() if hasattr(options, "to_dict") else dict(options)
        opts.pop("device", None)  # the device changes nothing in the result beyond rounding noise
        h.update(json.dumps(opts, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def restore_clip(
    model: Any,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    options: Any = None,
    encode: EncodeOptions | None = None,
    limits: Any = None,
    **run: Any,
) -> VideoResult:
    """Restore the video ``src`` into ``dst`` with ``model`` and ``options`` (a ``RestoreOptions``: tiling,
    precision, strength, output size), each frame as ``swinir.restore`` restores an image. ``limits``: a
    ``swinir.pipeline.PixelLimits`` for the frame and the restored frame, checked before any frame is
    decoded (default: the pipeline's). ``run``: the keywords of ``restore_video`` (resume, rank, world,
    progress, say, batch_frames, replace)."""
    from swinir.engine import restore
    from swinir.options import RestoreOptions
    from swinir.pipeline import PixelLimits, model_scale

    opts = RestoreOptions.build(options)
    limits = PixelLimits() if limits is None else limits
    info = probe(src)
    limits.check_input(src, info.height, info.width)
    out_h, out_w = opts.output_size(info.height, info.width, model_scale(model))
    limits.check_output(src, out_h, out_w)

    def restore_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
        return [restore(model, frame, opts) for frame in frames]

    fingerprint = model_fingerprint(model, opts)
    return restore_video(src, dst, restore_frames, (out_w, out_h), encode, fingerprint=fingerprint, **run)
