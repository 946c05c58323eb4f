"""Run a SwinIR model over an image of any size: tiling with feathered blending, self-ensemble, precision.

Memory: the image stays on the CPU in its own dtype; one tile (or ``batch_size`` tiles) at a time goes to the
device. Results are accumulated in CPU float32 around the current tile only; regions that no later tile
touches are converted to the output dtype at once, and only the overlap rows are carried from one row of
tiles to the next. So, beyond the input and the output themselves, memory is about one tile plus
``overlap`` rows of the output width: flat as the image grows.

Tiles start on multiples of the window size, so their attention windows line up with those of an untiled
run and tiling only costs context near tile borders. In each overlap, the outer quarter next to a tile's
border is taken from the neighbour alone (the border pixels are the ones that lack context) and the middle
half cross-fades with complementary raised-cosine weights that sum to one: no seams, unlike a box average.
"""

from __future__ import annotations

import textwrap
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swinir.capture import CapturedForward, resolve_capture
from swinir.device import resolve_device
from swinir.errors import SwinIRError
from swinir.finish import apply_strength_tensor, resize_tensor
from swinir.fit import TileOutOfMemory, auto_tile, is_oom, smaller_tile
from swinir.io import BT601, SwinIRNotice, max_value
from swinir.model.progress import reporting
from swinir.options import RestoreOptions
from swinir.precision import choose as choose_precision
from swinir.precision import fallbacks as precision_fallbacks
from swinir.tiling import plan_axis, round_tile

__all__ = [
    "restore",
    "RestoreOptions",
    "TileProgress",
    "PartProgress",
    "plan_axis",
    "axis_weights",
    "resolve_precision",
    "ENSEMBLE_TRANSFORMS",
    "PRECISIONS",
    "FLOAT_RANGE_TOLERANCE",
]

Forward = nn.Module | CapturedForward  # what a tile runs through
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, Tensor)

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}
# (rot90 count, horizontal flip) for the x8 self-ensemble
ENSEMBLE_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple((k, f) for k in range(4) for f in (False, True))
# Float inputs must lie in [0, 1] up to this much: bicubic resampling of a [0, 1] image overshoots by a few
# percent at sharp edges, while a 0..255 image or a [-1, 1] one is off by far more (and restores to garbage).
FLOAT_RANGE_TOLERANCE = 0.05
# rows of a result are narrowed into the output array this many bytes at a time (``_numpy_flush``): within
# the last-level cache, and few enough pieces that each parallel step still pays on a busy machine (2 MB
# pieces of a 6400x4800 output: 0.08 s quiet, 0.3-1.8 s beside another job; 8 MB 0.11 s and 0.3-0.5 s)
FLUSH_CHUNK_BYTES = 8 << 20
TileProgress = Callable[[int, int], None]  # (tiles done, tiles in this image), called after each batch of tiles
# (tiles done, with the running batch's part as a fraction, tiles in this image): as the model's blocks,
# residual groups and upsampler steps finish on a CPU (swinir.model.progress), and after each batch of tiles
PartProgress = Callable[[float, int], None]
# (row spans, column spans) of the input that the tiles cover, as laid for an image (again after a halving)
TilePlan = Callable[[Sequence[tuple[int, int]], Sequence[tuple[int, int]]], None]


def _notice(message: str) -> None:
    warnings.warn(message, SwinIRNotice, stacklevel=4)


# ---------------------------------------------------------------------------------------------------
# tile layout and blending weights
# ---------------------------------------------------------------------------------------------------
def _ramp(n: int) -> np.ndarray:
    """Rising weights over an overlap of n samples: 0 over the first quarter, a raised cosine over the
    middle half, 1 over the last quarter. ``_ramp(n) + _ramp(n)[::-1] == 1``.

    The outer quarters drop each tile's own border pixels, the ones that lack context, instead of only
    down-weighting them; the raised cosine keeps the hand-over smooth.
    """
    m = n // 4
    r = n - 2 * m
    k = (np.arange(r, dtype=np.float64) + 0.5) / r
    return np.concatenate([np.zeros(m), np.sin(0.5 * np.pi * k) ** 2, np.ones(m)])


def axis_weights(spans: Sequence[tuple[int, int]], scale: int = 1) -> list[np.ndarray]:
    """Per-tile 1-D blending weights in output pixels, normalised so they sum to one at every position.

    Each tile ramps up over its overlap with the previous tile and down over its overlap with the next;
    the two ramps of a shared overlap are complementary.
    """
    raw = []
    for i, (a, b) in enumerate(spans):
        n = (b - a) * scale
        w = np.ones(n, np.float64)
        if i > 0:
            ov = min(n, max(0, (spans[i - 1][1] - a) * scale))
            if ov:
                w[:ov] *= _ramp(ov)
        if i < len(spans) - 1:
            ov = min(n, max(0, (b - spans[i + 1][0]) * scale))
            if ov:
                w[n - ov :] *= _ramp(ov)[::-1]
        raw.append(np.maximum(w, 1e-6))  # never all-zero where tiles pile up (tiny images, huge overlaps)
    total = np.zeros(spans[-1][1] * scale, np.float64)
    for (a, _), w in zip(spans, raw):
        total[a * scale : a * scale + len(w)] += w
    return [(w / total[a * scale : a * scale + len(w)]).astype(np.float32) for (a, _), w in zip(spans, raw)]


# ---------------------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------------------
def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32), with fallbacks + notice."""
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise SwinIRError(f"unknown precision {precision!r}; use fp32, bf16, fp16 or auto")  # pragma: no cover
    dt = PRECISIONS[key]
    if dt == torch.float32:
        return None
    steps = precision_fallbacks("bf16" if dt == torch.bfloat16 else "fp16", device.type)
    for _, why in steps:
        _notice(why)
    if steps:
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[steps[-1][0]]
    return None if dt == torch.float32 else dt


# ---------------------------------------------------------------------------------------------------
# input adapters
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """How the image's channels meet the model's."""

    gray_to_color: bool  # replicate to 3 channels, luma back
    color_to_gray: bool  # luma in, gray out
    out_channels: int


class _Source:
    """A CPU image, channels-last numpy or CHW tensor, handed out as float32 CHW tiles in [0, 1]."""

    def __init__(self, data: np.ndarray | Tensor, to_gray: bool, to_color: bool) -> None:
        self.data = data
        self.to_gray = to_gray
        self.to_color = to_color
        if isinstance(data, np.ndarray):
            self.height, self.width, self.channels = data.shape
            self.scale = np.float32(1.0 / max_value(data.dtype)) if data.dtype.kind != "f" else None
        else:
            self.channels, self.height, self.width = data.shape
            self.scale = 1.0 / 255.0 if data.dtype == torch.uint8 else None

    def tile(self, y0: int, y1: int, x0: int, x1: int) -> Tensor:
        if isinstance(self.data, np.ndarray):
            a = self.data[y0:y1, x0:x1].astype(np.float32)  # copy of the tile only
            if self.scale is not None:
                a *= self.scale
            t = torch.from_numpy(a).permute(2, 0, 1)
        else:
            t = self.data[:, y0:y1, x0:x1].to(torch.float32)
            if self.scale is not None:
                t = t * self.scale
        if self.to_gray:
            w = torch.tensor(BT601, dtype=t.dtype).view(3, 1, 1)
            t = (t * w).sum(0, keepdim=True)
        elif self.to_color:
            t = t.expand(3, -1, -1)
        return t.contiguous()


Flush = Callable[[int, int, int, int, Tensor], None]  # (row0, row1, col0, col1, values CHW) -> output


class _Blender:
    """CPU float32 accumulator for tiles added in row-major order; final regions leave at once.

    Within a row of tiles, columns left of the current tile are final; of those, rows above the next
    tile row are handed to ``flush`` and the rest (the vertical overlap) is carried to the next row. So
    memory is about one tile plus ``overlap`` rows of the output width, whatever the image height.
    """

    def __init__(self, channels: int, width: int, rows: Sequence[tuple[int, int]], flush: Flush) -> None:
        self.c, self.width, self.rows, self.flush = channels, width, rows, flush
        self.carry: Tensor | None = None  # rows [carry_top, carry_top + carry.shape[1]) x full width
        self.carry_top = 0

    def begin_row(self, i: int) -> None:
        self.y0, self.y1 = self.rows[i]
        self.split = self.rows[i + 1][0] if i + 1 < len(self.rows) else self.y1  # rows above are final
        self.next_carry = torch.zeros(self.c, self.y1 - self.split, self.width)
        self.win = torch.zeros(self.c, self.y1 - self.y0, 0)
        self.c0 = 0

    def _advance(self, x: int) -> None:
        """Columns left of ``x`` are final in this row of tiles."""
        n = x - self.c0
        if n <= 0:
            return
        done = self.win[:, :, :n]
        k = self.split - self.y0
        if k > 0:
            self.flush(self.y0, self.split, self.c0, x, done[:, :k])
        self.next_carry[:, :, self.c0 : x] = done[:, k:]
        self.win = self.win[:, :, n:]
        self.c0 = x

    def _extend(self, x: int) -> None:
        c1 = self.c0 + self.win.shape[2]
        if x <= c1:
            return
        grown = torch.zeros(self.c, self.y1 - self.y0, x - self.c0)
        grown[:, :, : c1 - self.c0] = self.win
        if self.carry is not None:  # what earlier rows left in these rows
            h = self.carry.shape[1]
            grown[:, :h, c1 - self.c0 :] = self.carry[:, :, c1:x]
        self.win = grown

    def add(self, x0: int, values: Tensor, weight: Tensor) -> None:
        """Adds ``values * weight`` (the tile's output and its blending weights) at column ``x0``."""
        x1 = x0 + values.shape[2]
        self._advance(x0)
        self._extend(x1)
        self.win[:, :, x0 - self.c0 : x1 - self.c0].addcmul_(values, weight)

    def end_row(self) -> None:
        self._extend(self.width)
        self._advance(self.width)
        self.carry, self.carry_top = self.next_carry, self.split


# ---------------------------------------------------------------------------------------------------
# model execution
# ---------------------------------------------------------------------------------------------------
def _model_info(model: nn.Module) -> tuple[int, int, int, int]:
    scale = int(getattr(model, "upscale", getattr(model, "scale", 1)) or 1)
    in_ch = int(getattr(model, "in_chans", 3))
    out_ch = int(getattr(model, "num_out_ch", None) or in_ch)
    window = int(getattr(model, "window_size", 1) or 1)
    return scale, in_ch, out_ch, window


def _param(model: Forward) -> Tensor | None:
    return next(iter(model.parameters()), None)


def _forward(model: Forward, x: Tensor, amp: torch.dtype | None) -> Tensor:
    if amp is None:
        p = _param(model)
        if p is not None and p.dtype != x.dtype:
            x = x.to(p.dtype)
        return model(x).float()
    with torch.autocast(device_type=x.device.type, dtype=amp):
        return model(x).float()


def _run(model: Forward, x: Tensor, ensemble: bool, amp: torch.dtype | None) -> Tensor:
    """Model output for a batch, averaged over the 8 flips/rotations when ``ensemble``."""
    if not ensemble:
        return _forward(model, x, amp)
    acc: Tensor | None = None
    for k, flip in ENSEMBLE_TRANSFORMS:
        xi = torch.rot90(x, k, (-2, -1))
        if flip:
            xi = xi.flip(-1)
        y = _forward(model, xi.contiguous(), amp)
        if flip:
            y = y.flip(-1)
        y = torch.rot90(y, -k, (-2, -1))
        acc = y if acc is None else acc.add_(y)
    assert acc is not None
    return acc.div_(len(ENSEMBLE_TRANSFORMS))


_CAPTURED: weakref.WeakKeyDictionary[nn.Module, CapturedForward | None] = weakref.WeakKeyDictionary()


def _captured(model: nn.Module, mode: str, device: torch.device) -> CapturedForward | None:
    """The model's captured forward for ``mode``, kept with the model so later images of the same tile shape
    replay the graphs of earlier ones (a folder of photos, the frames of a video). A model whose capture
    failed is kept as None: it runs eager from then on, said once, not re-captured for every image."""
    resolved = resolve_capture(mode, device)
    if resolved == "off":
        return None
    if model in _CAPTURED and _CAPTURED[model] is None:
        return None
    cached = _CAPTURED.get(model)
    if cached is None or cached.mode != resolved:
        cached = _CAPTURED[model] = CapturedForward(model, resolved)
    return cached


@dataclass
class _RunState:
    amp: torch.dtype | None
    requested: str = "fp32"
    captured: CapturedForward | None = None  # the model's forward, captured per tile shape
    recomputed: int = 0
    tiles: int = 0


class _GroupsToTiles:
    """The model's progress fractions (0..1 per forward) as fractional tile counts for ``on_progress``.

    A batch runs one forward per ensemble pass (and again in fp32 after a non-finite reduced-precision
    output); a fraction that does not grow starts the next forward. The count stays within the batch."""

    def __init__(self, report: PartProgress, total: int, passes: int) -> None:
        self.report, self.total, self.passes = report, total, passes
        self.before, self.tiles, self.forwards, self.last = 0, 0, 0, 0.0

    def batch(self, before: int, tiles: int) -> _GroupsToTiles:
        self.before, self.tiles, self.forwards, self.last = before, tiles, 0, 0.0
        return self

    def __call__(self, fraction: float) -> None:
        if fraction <= self.last:
            self.forwards += 1
        self.last = fraction
        part = min(1.0, (self.forwards + fraction) / self.passes)
        self.report(self.before + self.tiles * part, self.total)


def _finite(y: Tensor) -> bool:
    """Whether every value is finite: one sum, since a NaN or an infinity carries through it; value by value
    only when the sum is not finite (finite values can overflow it). On a 6400x4800 output the sum took
    0.02 s and ``isfinite(y).all()`` 0.6 s."""
    return bool(torch.isfinite(y.sum())) or bool(torch.isfinite(y).all())


def _run_safe(model: nn.Module, x: Tensor, ensemble: bool, st: _RunState) -> Tensor:
    try:
        y = _run(st.captured or model, x, ensemble, st.amp)
    except Exception as exc:
        if st.captured is not None and not is_oom(exc):
            _notice(f"capturing the forward failed on {x.device} ({str(exc).splitlines()[0][:120]}): running eager")
            st.captured = _CAPTURED[model] = None
            return _run_safe(model, x, ensemble, st)
        if is_oom(exc):
            raise TileOutOfMemory((x.shape[-2], x.shape[-1]), x.shape[0], x.device) from None
        if st.amp is None or not isinstance(exc, RuntimeError):
            raise
        _notice(
            f"{str(st.amp).replace('torch.', '')} failed on {x.device} "
            f"({textwrap.shorten(str(exc).splitlines()[0], 160, placeholder=' ...')}): falling back to fp32"
        )
        st.amp = None
        y = _run(model, x, ensemble, None)
    if not _finite(y):
        if st.amp is not None:
            st.recomputed += x.shape[0]
            y = _run(model, x, ensemble, None)
        if not _finite(y):
            raise SwinIRError(
                "the model's output is NaN or infinite even in fp32 (are the checkpoint's weights finite?); "
                "nothing was produced for this image"
            )
    return y


def _batches(spans: Sequence[tuple[int, int]], size: int) -> Iterator[list[int]]:
    """Indices of consecutive spans of equal length, at most ``size`` at a time (one stacked batch)."""
    group: list[int] = []
    for i, (a, b) in enumerate(spans):
        g0 = spans[group[0]] if group else None
        if group and (len(group) == size or b - a != g0[1] - g0[0]):  # type: ignore[index]
            yield group
            group = []
        group.append(i)
    if group:
        yield group


# ---------------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------------
def _plan_for(channels: int, in_ch: int, out_ch: int) -> _Plan:
    to_color = channels == 1 and in_ch == 3
    to_gray = channels == 3 and in_ch == 1
    if channels != in_ch and not (to_color or to_gray):
        raise SwinIRError(f"the image has {channels} channels but the model takes {in_ch}")
    if to_color:
        _notice("gray image given to a color model: replicated to 3 channels, result converted back to gray")
    if to_gray:
        _notice("color image given to a gray model: converted to gray (BT.601 luma); the result is gray")
    result_ch = 1 if to_color or to_gray else out_ch
    return _Plan(to_color, to_gray, result_ch)


def _split_alpha(channels: int, in_ch: int) -> bool:
    return channels in (2, 4) and channels != in_ch


@dataclass
class _Context:
    """What every tile of one ``restore`` call shares."""

    model: nn.Module
    options: RestoreOptions
    amp: torch.dtype | None
    device: torch.device
    scale: int
    window: int
    progress: bool
    on_tile: TileProgress | None
    on_progress: PartProgress | None = None
    on_plan: TilePlan | None = None


def _place(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """The device to run on (the model is moved there, in place)."""
    p = _param(model)
    if device is None:
        dev = p.device if p is not None and p.device.type != "cpu" else resolve_device(None)
    else:
        dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if p is not None and p.device != dev:
        model.to(dev)
    return dev


def _check_float_range(low: float, high: float) -> None:
    tol = FLOAT_RANGE_TOLERANCE
    if low < -tol or high > 1 + tol:
        raise SwinIRError(
            f"float images must hold values in [0, 1]; this one spans [{low:.4g}, {high:.4g}] "
            "(divide 8-bit data by 255, or pass the uint8/uint16 array itself)"
        )


def restore(
    model: nn.Module,
    image: ArrayOrTensor,
    options: RestoreOptions | None = None,
    *,
    progress: bool = False,
    on_tile: TileProgress | None = None,
    on_progress: PartProgress | None = None,
    on_plan: TilePlan | None = None,
    allow_out_of_range: bool = False,
    **overrides: Any,
) -> ArrayOrTensor:
    """Restore ``image`` with ``model``; the result has the input's type, dtype and layout.

    ``image``: numpy HxW or HxWxC (uint8, uint16 or float in [0, 1]) or a tensor CHW / NCHW (uint8 or float
    in [0, 1]). Integer results are rounded and clipped; float results are the raw model output (not
    clipped). A trailing alpha channel (RGBA, gray+alpha) is upscaled separately (bicubic) and kept.
    Gray images on color models and color images on gray models are converted, with a notice.

    ``options``: a ``RestoreOptions`` (tile, overlap, ensemble, precision, device, batch_size, outscale);
    its fields may also be given as keywords (``restore(model, img, tile=256)``), which override ``options``.
    Tiles that come out non-finite in reduced precision are recomputed in fp32, with a notice; an output
    that is non-finite even in fp32 raises ``SwinIRError``. The model is moved to the device (in place).
    ``progress``: a tqdm bar of tiles; ``on_tile(done, total)`` is called after each batch of tiles.
    ``on_progress(done, total)``: the same count with fractions of the running batch, reported by the
    model's blocks, residual groups and upsampler steps on a CPU, where one large tile takes seconds
    (eager forwards only). ``on_plan(rows, columns)``: the input's row and column spans of the tiles, once
    they are laid (``--tile auto`` measured, or the tile given), again if an out-of-memory error halves them.
    ``allow_out_of_range``: accept float inputs outside [0, 1] (the unclipped noisy inputs of the
    denoising protocol); otherwise they raise, since a 0..255 float image restores to garbage.
    """
    opts = RestoreOptions.build(options, **overrides)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (e.g. from swinir.load), got {type(model).__name__}")
    if not isinstance(image, (np.ndarray, Tensor)):
        raise TypeError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")
    dev = _place(model, opts.device)
    scale, _, _, window = _model_info(model)
    chosen = choose_precision(opts.precision, model, dev).name
    amp = resolve_precision(chosen, dev)
    ctx = _Context(model, opts, amp, dev, scale, window, progress, on_tile, on_progress, on_plan)
    was_training = model.training
    model.eval()
    try:
        if isinstance(image, np.ndarray):
            return _restore_numpy(ctx, image, allow_out_of_range)
        return _restore_tensor(ctx, image, allow_out_of_range)
    finally:
        if was_training:
            model.train()


def _check_numpy(image: np.ndarray, allow_out_of_range: bool) -> None:
    if image.ndim not in (2, 3):
        raise SwinIRError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16) and image.dtype.kind != "f":
        raise SwinIRError(f"unsupported image dtype {image.dtype}; use uint8, uint16 or float in [0, 1]")
    if image.dtype.kind == "f" and image.size:
        if not np.isfinite(image).all():
            raise SwinIRError("the image contains NaN or infinite values")
        if not allow_out_of_range:
            _check_float_range(float(image.min()), float(image.max()))


def _numpy_flush(out: np.ndarray, result_ch: int) -> Flush:
    maxv = max_value(out.dtype)

    integer = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}.get(out.dtype)

    def flush(r0: int, r1: int, c0: int, c1: int, values: Tensor) -> None:
        dst = torch.from_numpy(out[r0:r1, c0:c1, :result_ch])
        # a few MB of rows at a time, so that each step reads what the last one wrote from cache: scaled,
        # rounded half to even, clipped and narrowed in channel-first order on PyTorch's threads, then one
        # strided copy of the narrow values (a 6400x4800 output: 0.11 s, against 0.28 s in one piece and
        # 1.2 s through NumPy, the same bits)
        step = max(1, FLUSH_CHUNK_BYTES // max(1, values.shape[0] * values.shape[2] * values.element_size()))
        for r in range(0, values.shape[1], step):
            part = values[:, r : r + step]
            if integer is not None:
                part = part.mul(maxv).round_().clamp_(0, maxv).to(integer)
            dst[r : r + step].copy_(part.permute(1, 2, 0))

    return flush


def _restore_numpy(ctx: _Context, image: np.ndarray, allow_out_of_range: bool) -> np.ndarray:
    from swinir.finish import apply_strength
    from swinir.io import from_float, resize, to_float

    _check_numpy(image, allow_out_of_range)
    _, in_ch, out_ch, _ = _model_info(ctx.model)
    squeeze = image.ndim == 2
    img = image[..., None] if squeeze else image
    final_h, final_w = ctx.options.output_size(img.shape[0], img.shape[1], ctx.scale)
    alpha = None
    if _split_alpha(img.shape[2], in_ch):
        img, alpha = img[..., :-1], img[..., -1]
    plan = _plan_for(img.shape[2], in_ch, out_ch)
    ho, wo = img.shape[0] * ctx.scale, img.shape[1] * ctx.scale
    result_ch = plan.out_channels
    float_pass = ctx.options.changes_result  # resize and mix in float, then round once
    out = np.empty((ho, wo, result_ch + (alpha is not None)), dtype=np.float32 if float_pass else image.dtype)
    src = _Source(img, plan.color_to_gray, plan.gray_to_color)
    _tiled_fitting(ctx, src, plan, _numpy_flush(out, result_ch))
    if alpha is not None:
        a = to_float(np.ascontiguousarray(alpha)) if float_pass else np.ascontiguousarray(alpha)
        out[..., result_ch] = resize(a, ho, wo)
    if float_pass:
        out = resize(out, final_h, final_w)  # area down, bicubic up
        apply_strength(out[..., :result_ch], img, ctx.options.strength)
        out = from_float(out, image.dtype)
    if out.ndim == 3 and out.shape[2] == 1 and (squeeze or plan.color_to_gray):
        return out[..., 0]
    return out


def _check_tensor(image: Tensor, allow_out_of_range: bool) -> None:
    if image.dim() not in (2, 3, 4):
        raise SwinIRError(f"expected a CHW or NCHW tensor, got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.dtype.is_floating_point:
        raise SwinIRError(f"unsupported tensor dtype {image.dtype}; use float in [0, 1] or uint8")
    if image.dtype.is_floating_point and image.numel():
        if not bool(torch.isfinite(image).all()):
            raise SwinIRError("the image contains NaN or infinite values")
        if not allow_out_of_range:
            _check_float_range(float(image.min()), float(image.max()))


def _to_dtype(values: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.uint8:
        return values.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return values.to(dtype)


def _restore_tensor(ctx: _Context, image: Tensor, allow_out_of_range: bool) -> Tensor:
    _check_tensor(image, allow_out_of_range)
    _, in_ch, out_ch, _ = _model_info(ctx.model)
    batch = image.reshape(1, 1, *image.shape) if image.dim() == 2 else image[None] if image.dim() == 3 else image
    n, c, h, w = batch.shape
    final_h, final_w = ctx.options.output_size(h, w, ctx.scale)
    has_alpha = _split_alpha(c, in_ch)
    color_c = c - 1 if has_alpha else c
    plan = _plan_for(color_c, in_ch, out_ch)
    result_ch = plan.out_channels
    ho, wo = h * ctx.scale, w * ctx.scale
    resized = (final_h, final_w) != (ho, wo) or ctx.options.strength < 1.0
    out = torch.empty(n, result_ch + has_alpha, final_h, final_w, dtype=image.dtype)  # outside inference mode
    for i in range(n):
        cpu = batch[i].detach().to("cpu")
        # the model's size is written straight into the result; an outscale goes through one float image
        dst = torch.empty(result_ch + has_alpha, ho, wo) if resized else out[i]

        def flush(r0: int, r1: int, c0: int, c1: int, values: Tensor, dst: Tensor = dst) -> None:
            dst[:result_ch, r0:r1, c0:c1] = values if resized else _to_dtype(values, image.dtype)

        _tiled_fitting(ctx, _Source(cpu[:color_c], plan.color_to_gray, plan.gray_to_color), plan, flush)
        if has_alpha:
            a = cpu[color_c:].to(torch.float32)[None]
            a = a / 255.0 if image.dtype == torch.uint8 else a
            a = F.interpolate(a, size=(ho, wo), mode="bicubic", align_corners=False)[0]
            dst[result_ch:] = a if resized else _to_dtype(a, image.dtype)
        if resized:
            final = resize_tensor(dst[None], final_h, final_w)[0]
            final[:result_ch] = apply_strength_tensor(final[:result_ch], cpu[:color_c], ctx.options.strength)
            out[i] = _to_dtype(final, image.dtype)
    if image.dim() == 2:
        out = out[0, 0]
    elif image.dim() == 3:
        out = out[0]
    return out.to(image.device)


def _spans(ctx: _Context, height: int, width: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    tile = ctx.options.tile
    if tile == "auto":
        tile = auto_tile(
            ctx.model, ctx.device, height, width, ctx.amp, ctx.options.batch_size, overlap=ctx.options.overlap
        )
    if not tile:
        return [(0, height)], [(0, width)]
    t, o = round_tile(int(tile), int(ctx.options.overlap), ctx.window)
    return plan_axis(height, t, o, ctx.window), plan_axis(width, t, o, ctx.window)


def _tiled_fitting(ctx: _Context, src: _Source, plan: _Plan, flush: Flush) -> None:
    """``_tiled``, and after an out-of-memory error the same image again with half the tile, until it fits
    (said once, with the tile that fitted) or the tile is two windows (then a one-line error)."""
    first_failure: tuple[int, int] | None = None
    tile = ctx.options.tile
    while True:
        try:
            _tiled(ctx, src, plan, flush)
            break
        except Exception as exc:
            if not is_oom(exc):
                raise
            failed = exc.tile_hw if isinstance(exc, TileOutOfMemory) else (src.height, src.width)
        first_failure = first_failure or failed
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
        current = max(failed) if tile == "auto" or not tile else int(tile)
        tile = smaller_tile(current, src.height, src.width, ctx.window)
        if tile is None:
            raise SwinIRError(
                f"out of memory on {ctx.device} even for the smallest tile ({current} pixels); "
                "free memory on the device, use bf16 or another device"
            )
        ctx = replace(ctx, options=replace(ctx.options, tile=tile, overlap=min(ctx.options.overlap, tile // 4)))
    if first_failure is not None:
        h, w = first_failure
        _notice(f"out of memory on {ctx.device} with a {h}x{w} tile: halved until tile {tile} fitted")


@torch.inference_mode()
def _tiled(ctx: _Context, src: _Source, plan: _Plan, flush: Flush) -> None:
    from tqdm import tqdm

    ys, xs = _spans(ctx, src.height, src.width)
    if ctx.on_plan is not None:
        ctx.on_plan(ys, xs)
    scale = ctx.scale
    wy, wx = axis_weights(ys, scale), axis_weights(xs, scale)
    blender = _Blender(plan.out_channels, src.width * scale, [(a * scale, b * scale) for a, b in ys], flush)
    st = _RunState(ctx.amp, str(ctx.amp).replace("torch.", ""), _captured(ctx.model, ctx.options.capture, ctx.device))
    luma = torch.tensor(BT601).view(1, 3, 1, 1)
    total = len(ys) * len(xs)
    passes = len(ENSEMBLE_TRANSFORMS) if ctx.options.ensemble else 1
    on_cpu = ctx.on_progress is not None and ctx.device.type == "cpu"  # elsewhere the forward runs ahead
    groups = _GroupsToTiles(ctx.on_progress, total, passes) if on_cpu and ctx.on_progress else None
    bar = tqdm(total=total, desc="tiles", unit="tile", leave=False, disable=not ctx.progress)
    whole = total == 1  # one tile: its output is the image, no weights and no accumulator
    try:
        for i, ((y0, y1), wyi) in enumerate(zip(ys, wy)):
            blender.begin_row(i)
            wyt = torch.from_numpy(wyi)
            for group in _batches(xs, ctx.options.batch_size):
                x = torch.stack([src.tile(y0, y1, *xs[j]) for j in group]).to(ctx.device, non_blocking=True)
                with reporting(groups.batch(st.tiles, len(group)) if groups is not None else None):
                    y = _run_safe(ctx.model, x, ctx.options.ensemble, st).cpu()
                if plan.gray_to_color:
                    y = (y * luma).sum(1, keepdim=True)
                for k, j in enumerate(group):
                    if whole:
                        flush(0, y.shape[-2], 0, y.shape[-1], y[k])
                        continue
                    weight = wyt[:, None] * torch.from_numpy(wx[j])[None, :]
                    blender.add(xs[j][0] * scale, y[k], weight)
                st.tiles += len(group)
                bar.update(len(group))
                if ctx.on_tile is not None:
                    ctx.on_tile(st.tiles, total)
                if ctx.on_progress is not None:
                    ctx.on_progress(float(st.tiles), total)
            if not whole:
                blender.end_row()
    finally:
        bar.close()
    if st.recomputed:
        _notice(f"{st.recomputed} of {st.tiles} tile(s) overflowed in {st.requested} and were recomputed in fp32")
