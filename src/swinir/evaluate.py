"""The paper's evaluation protocol as a library (used by ``swinir eval`` and by training validation).

Figures are only comparable with the paper's tables when every step matches the released test script,
so each one is reproduced on purpose:

* images are read with OpenCV (BGR), degraded in BGR layout, then handed to the model as RGB floats;
* classical / lightweight SR: LR from ``--lr`` (``NAMEx{scale}.ext``) or MATLAB bicubic (uint8 mode) of
  the HR cropped to a multiple of the scale; the ground truth is HR cropped to LR size x scale;
* the model input is padded as the architecture's test script pads it (``swinir.architectures``): SwinIR's
  and Swin2SR's by mirror-flip concatenation, always adding ``(h // window + 1) * window - h`` rows (and
  the same for columns), even when ``h`` is already a multiple of the window; HAT's (``hat_model.py``)
  by reflection at the right and bottom up to the next multiple of its window (16), nothing when already
  a multiple;
* compressed-input SR (Swin2SR's ``main_test_swin2sr.py --task compressed_sr``): the LR is a JPEG,
  ``NAME.jpg`` from ``--lr`` or the MATLAB-bicubic LR compressed with OpenCV at quality ``jpeg``; scored as
  classical SR;
* the output is cropped to ``H*scale x W*scale``, clamped to [0, 1], scaled by 255 and rounded to uint8;
* metrics: PSNR/SSIM on RGB and Y with ``crop_border = scale`` for SR, border 0 otherwise;
* denoising: ``np.random.seed(0)`` then ``N(0, sigma/255)`` added to the float image, no clipping;
* JPEG: OpenCV quality ``q``; the gray task compresses the rounded BT.601 Y of a colour image; PSNR-B too.

Real-world SR has no ground truth: outputs (and sheets) are saved, nothing is scored.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from swinir import metrics
from swinir.atomic import write_bytes
from swinir.degrade import add_gaussian_noise_test, imresize, jpeg_compress, jpeg_gray_from_color
from swinir.errors import ImageWriteError, SwinIRError
from swinir.io import SwinIRNotice, list_images, read_like_release, write_image
from swinir.model.shared import pad_like_release
from swinir.options import OptionsError, RestoreOptions
from swinir.tasks import DENOISE_TASKS, EVAL_TASKS, GRAY_TASKS, JPEG_TASKS, SR_TASKS, eval_task

TASKS = EVAL_TASKS

__all__ = [
    "TASKS",
    "SR_TASKS",
    "Protocol",
    "Sample",
    "Scores",
    "ImageResult",
    "EvalReport",
    "BICUBIC",
    "list_images",
    "load_sample",
    "load_samples",
    "pad_like_release",
    "restore_sample",
    "to_uint8",
    "score",
    "evaluate",
    "evaluate_samples",
    "comparison_sheet",
    "task_for_model",
]

OUTPUT_SUFFIX = "SwinIR"  # saved results are NAME_SwinIR.png, as the released test script names them
BICUBIC = "bicubic"  # the MATLAB-bicubic upsampling baseline, usable wherever a model is expected

Model = torch.nn.Module | str


# ------------------------------------------------------------------------------------------ protocol
@dataclass(frozen=True)
class Protocol:
    """Which task and degradation level; everything else follows from the paper's test script."""

    task: str
    scale: int = 1
    noise: float | None = None  # sigma on 0..255 (denoising)
    jpeg: int | None = None  # quality (JPEG artifact removal)

    def __post_init__(self) -> None:
        if self.task == "compressed_sr" and self.jpeg is not None and not 0 <= self.jpeg <= 100:
            raise OptionsError("jpeg", f"the JPEG quality must be 0..100, got {self.jpeg}")
        if self.task not in TASKS:
            raise SwinIRError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.task in SR_TASKS and self.scale < 2:
            raise OptionsError("scale", f"task {self.task} needs a scale of 2 or more")
        if self.task not in SR_TASKS and self.scale != 1:
            raise OptionsError("scale", f"task {self.task} does not upscale; its scale is 1, not {self.scale}")
        if self.task in DENOISE_TASKS and (self.noise is None or self.noise < 0):
            raise OptionsError("noise", f"task {self.task} needs a noise level sigma >= 0 (15, 25 or 50 in the paper)")
        if self.task in JPEG_TASKS and (self.jpeg is None or not 0 <= self.jpeg <= 100):
            raise OptionsError("jpeg", f"task {self.task} needs a JPEG quality 0..100 (10, 20, 30 or 40 in the paper)")

    @property
    def border(self) -> int:
        """Pixels cropped from each side before scoring: the scale for SR, none otherwise."""
        return self.scale if self.task in SR_TASKS else 0

    @property
    def channels(self) -> int:
        return 1 if self.task in GRAY_TASKS else 3

    @property
    def has_ground_truth(self) -> bool:
        return self.task != "real_sr"

    @property
    def is_jpeg(self) -> bool:
        return self.task in JPEG_TASKS

    def describe(self) -> str:
        if self.task in DENOISE_TASKS:
            extra = f" sigma={self.noise:g}"
        elif self.is_jpeg:
            extra = f" q={self.jpeg}"
        else:
            extra = ""
        scale = f" x{self.scale}" if self.task in SR_TASKS else ""
        return f"{self.task}{scale}{extra}"


def task_for_model(model: Model) -> str | None:
    """The eval task a network was built for (gray/color resolved from its channels), or None."""
    if isinstance(model, str):
        return None
    spec = getattr(model, "spec", None)
    if spec is None:
        return None
    return eval_task(spec.task, spec.in_chans)


# ------------------------------------------------------------------------------------------ samples
@dataclass
class Sample:
    """One test image: the model input and the ground truth, channels-last RGB (or HxWx1 gray).

    ``lq`` is float32 in [0, 1] (unclipped for denoising); ``gt`` is uint8 or None (real-world SR).
    """

    name: str
    lq: np.ndarray
    gt: np.ndarray | None
    lq_path: Path | None = None
    gt_path: Path | None = None

    def lq_uint8(self) -> np.ndarray:
        """The input as a viewable uint8 image (noise clipped)."""
        return np.clip(np.round(self.lq * 255.0), 0, 255).astype(np.uint8)


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """HxWx3 BGR -> RGB, HxW -> HxWx1."""
    if img.ndim == 2:
        return img[:, :, None]
    return np.ascontiguousarray(img[:, :, ::-1])


def _find_lr(lr_dir: Path, name: str, ext: str, scale: int) -> Path:
    for cand in (lr_dir / f"{name}x{scale}{ext}", lr_dir / f"{name}{ext}"):
        if cand.is_file():
            return cand
    hits = sorted(lr_dir.glob(f"{name}x{scale}.*")) or sorted(lr_dir.glob(f"{name}.*"))
    if hits:
        return hits[0]
    raise OptionsError(
        "lr_dir",
        f"no LR image for {name} in {lr_dir} (expected {name}x{scale}{ext}); check the LR folder and the scale, "
        "or give no LR folder to make LR by MATLAB bicubic",
    )


def load_sample(
    path: str | os.PathLike[str], protocol: Protocol, lr_dir: str | os.PathLike[str] | None = None
) -> Sample:
    """Read one image and apply the task's degradation exactly as the released test does."""
    path = Path(path)
    name = path.stem
    task = protocol.task
    if task in ("classical_sr", "lightweight_sr", "compressed_sr"):
        s = protocol.scale
        hr = read_like_release(path, "color")
        if lr_dir is not None:
            lr_path = _find_lr(Path(lr_dir), name, ".jpg" if task == "compressed_sr" else path.suffix, s)
            lr = read_like_release(lr_path, "color")
        else:
            lr_path = None
            h, w = hr.shape[:2]
            if h < s or w < s:
                raise SwinIRError(f"{path} ({w}x{h}) is smaller than the scale {s}")
            lr = imresize(hr[: h - h % s, : w - w % s], 1.0 / s, mode="uint8")
            if task == "compressed_sr":
                if protocol.jpeg is None:
                    raise OptionsError(
                        "jpeg", "compressed_sr needs the JPEG LR folder, or a JPEG quality to compress the bicubic LR"
                    )
                lr = jpeg_compress(lr, int(protocol.jpeg), color_order="bgr")
        lh, lw = lr.shape[:2]
        if hr.shape[0] < lh * s or hr.shape[1] < lw * s:
            raise OptionsError(
                "scale",
                f"LR {lr_path} ({lw}x{lh}) times {s} exceeds HR {path} "
                f"({hr.shape[1]}x{hr.shape[0]}); wrong scale or LR folder?",
            )
        gt = hr[: lh * s, : lw * s]
        return Sample(name, _bgr_to_rgb(lr).astype(np.float32) / 255.0, _bgr_to_rgb(gt), lr_path, path)
    if task == "real_sr":
        lq = read_like_release(path, "color")
        return Sample(name, _bgr_to_rgb(lq).astype(np.float32) / 255.0, None, path, None)
    if task == "gray_dn":
        gt = read_like_release(path, "gray")
        assert protocol.noise is not None  # Protocol checks it for denoising tasks
        noisy = add_gaussian_noise_test(gt.astype(np.float32) / 255.0, float(protocol.noise))
        return Sample(name, noisy[:, :, None].astype(np.float32), gt[:, :, None], None, path)
    if task == "color_dn":
        gt = read_like_release(path, "color")
        assert protocol.noise is not None  # Protocol checks it for denoising tasks
        noisy = add_gaussian_noise_test(gt.astype(np.float32) / 255.0, float(protocol.noise))  # BGR layout
        return Sample(name, _bgr_to_rgb(noisy).astype(np.float32), _bgr_to_rgb(gt), None, path)
    if task == "jpeg_car":
        img = read_like_release(path, "unchanged")
        if img.dtype != np.uint8:
            raise SwinIRError(f"{path}: the JPEG task needs 8-bit images, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        assert protocol.jpeg is not None  # Protocol checks it for JPEG tasks
        gt, lq = jpeg_gray_from_color(img, int(protocol.jpeg), color_order="bgr")
        return Sample(name, lq[:, :, None].astype(np.float32) / 255.0, gt[:, :, None], None, path)
    # color_jpeg_car
    gt = read_like_release(path, "color")
    assert protocol.jpeg is not None  # Protocol checks it for JPEG tasks
    lq = jpeg_compress(gt, int(protocol.jpeg), color_order="bgr")
    return Sample(name, _bgr_to_rgb(lq).astype(np.float32) / 255.0, _bgr_to_rgb(gt), None, path)


def load_samples(
    folder: str | os.PathLike[str],
    protocol: Protocol,
    lr_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> list[Sample]:
    """All samples of a folder (sorted by name), e.g. for training validation."""
    files = list_images(folder)[: limit or None]
    return [load_sample(f, protocol, lr_dir) for f in files]


# ------------------------------------------------------------------------------------------ running
def test_padding(model: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """How the authors' test script of ``model``'s architecture pads the input (mirror-flip without a spec)."""
    from swinir import architectures

    spec = getattr(model, "spec", None)
    return architectures.get(spec.architecture).test_padding if spec is not None else pad_like_release


def output_suffix(model: Model) -> str:
    """``NAME_<suffix>.png`` as the architecture's test script names its results (``_SwinIR``, ``_Swin2SR``)."""
    spec = getattr(model, "spec", None)
    return spec.title if spec is not None else OUTPUT_SUFFIX


def to_uint8(output: np.ndarray | torch.Tensor) -> np.ndarray:
    """Clamp to [0, 1], scale by 255 and round (half to even, in float32) as the released script does."""
    if isinstance(output, torch.Tensor):
        output = output.detach().float().cpu().clamp_(0, 1).numpy()
    else:
        output = np.clip(np.asarray(output, dtype=np.float32), 0, 1)
    pixels: np.ndarray = (output * 255.0).round().astype(np.uint8)
    return pixels


def _as_chw_tensor(result: Any, channels: int) -> torch.Tensor:
    """Normalise what ``swinir.engine.restore`` returns (tensor or array, batched or not) to CxHxW."""
    t = result if isinstance(result, torch.Tensor) else torch.as_tensor(np.asarray(result))
    if t.ndim == 4:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] != channels and t.shape[-1] == channels:
        t = t.permute(2, 0, 1)
    return t


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - parameterless module
        return torch.device("cpu")


def restore_sample(
    model: Model,
    lq: np.ndarray,
    scale: int = 1,
    options: RestoreOptions | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Run ``model`` on an HxWxC float input in [0, 1] under the paper's protocol; returns uint8 HxWxC.

    ``model`` may be ``"bicubic"`` (MATLAB bicubic upsampling by ``scale``). ``options`` (or its fields as
    keywords): without tiling and ensemble (and in fp32) the padded image goes straight through the network,
    as in the paper; otherwise the padded image goes through ``swinir.engine.restore``.
    """
    opts = RestoreOptions.build(options, **overrides)
    h, w, c = lq.shape
    if isinstance(model, str):
        if model != BICUBIC:
            raise SwinIRError(f"unknown baseline {model!r}; the only built-in baseline is 'bicubic'")
        lq8 = np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8)
        upsampled: np.ndarray = imresize(lq8[:, :, 0] if c == 1 else lq8, float(scale), mode="uint8")
        return upsampled[:, :, None] if upsampled.ndim == 2 else upsampled
    window = int(getattr(model, "window_size", 8))
    s = int(getattr(model, "upscale", scale) or 1)
    dev = torch.device(opts.device) if opts.device is not None else _model_device(model)
    x = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1))).float().unsqueeze(0)
    x = test_padding(model)(x, window)
    with torch.inference_mode():
        if opts.tile or opts.ensemble or opts.precision != "fp32":
            from swinir.engine import restore as engine_restore

            # the noisy inputs of the denoising protocol are unclipped on purpose
            on_dev = replace(opts, device=dev)
            out = _as_chw_tensor(engine_restore(model, x.to(dev), on_dev, allow_out_of_range=True), c)
        else:
            out = model(x.to(dev))[0]
    out = out[:, : h * s, : w * s]
    hwc: np.ndarray = to_uint8(out).transpose(1, 2, 0)
    return hwc


# ------------------------------------------------------------------------------------------ scoring
@dataclass
class Scores:
    """Metric values of one image (or averages); None where the task does not report it."""

    psnr: float
    ssim: float
    psnr_y: float | None = None
    ssim_y: float | None = None
    psnr_b: float | None = None
    psnr_b_y: float | None = None

    FIELDS = ("psnr", "ssim", "psnr_y", "ssim_y", "psnr_b", "psnr_b_y")

    def to_dict(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in self.FIELDS}


def score(output: np.ndarray, gt: np.ndarray, protocol: Protocol) -> Scores:
    """Metrics of one RGB (or HxWx1) uint8 output against its ground truth, per the task.

    Computed on BGR-ordered copies so that channel sums run in the released code's order.
    """
    if output.shape != gt.shape:
        raise SwinIRError(f"output {output.shape} and ground truth {gt.shape} differ in shape")
    b = protocol.border
    if output.shape[2] == 1:
        o, g = output[:, :, 0], gt[:, :, 0]
    else:
        o, g = output[:, :, ::-1], gt[:, :, ::-1]
    kw: dict[str, Any] = {"color_order": "bgr"}
    sc = Scores(psnr=metrics.psnr(o, g, b, **kw), ssim=metrics.ssim(o, g, b, **kw))
    if o.ndim == 3:
        sc.psnr_y = metrics.psnr(o, g, b, True, **kw)
        sc.ssim_y = metrics.ssim(o, g, b, True, **kw)
    if protocol.is_jpeg:
        sc.psnr_b = metrics.psnr_b(o, g, b, **kw)
        if o.ndim == 3:
            sc.psnr_b_y = metrics.psnr_b(o, g, b, True, **kw)
    return sc


@dataclass
class ImageResult:
    name: str
    scores: Scores | None
    input_psnr: float | None  # degraded input vs ground truth (denoising / JPEG), on the float input
    seconds: float
    shape: tuple[int, ...]  # output H, W, C
    output_path: str | None = None
    sheet_path: str | None = None

    def row(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        d.update(self.scores.to_dict() if self.scores else {k: None for k in Scores.FIELDS})
        d.update(
            input_psnr=self.input_psnr,
            seconds=self.seconds,
            height=self.shape[0],
            width=self.shape[1],
            output=self.output_path,
            sheet=self.sheet_path,
        )
        return d


@dataclass
class EvalReport:
    """Per-image results and averages of one evaluation run."""

    protocol: Protocol
    model: str
    images: list[ImageResult] = field(default_factory=list)
    hr_dir: str | None = None
    lr_dir: str | None = None
    tile: int | str | None = None  # as RestoreOptions.tile: pixels, "auto" or none
    ensemble: bool = False
    precision: str = "fp32"

    def average(self) -> Scores | None:
        scored = [r.scores for r in self.images if r.scores is not None]
        if not scored:
            return None
        vals: dict[str, float | None] = {}
        for k in Scores.FIELDS:
            xs = [getattr(s, k) for s in scored]
            vals[k] = None if any(x is None for x in xs) else float(sum(xs) / len(xs))
        return Scores(**vals)  # type: ignore[arg-type]

    def average_input_psnr(self) -> float | None:
        xs = [r.input_psnr for r in self.images if r.input_psnr is not None]
        return float(sum(xs) / len(xs)) if xs and len(xs) == len(self.images) else None

    def to_dict(self) -> dict[str, Any]:
        avg = self.average()
        return {
            "task": self.protocol.task,
            "protocol": asdict(self.protocol),
            "border": self.protocol.border,
            "model": self.model,
            "hr": self.hr_dir,
            "lr": self.lr_dir,
            "tile": self.tile,
            "ensemble": self.ensemble,
            "precision": self.precision,
            "count": len(self.images),
            "images": [r.row() for r in self.images],
            "average": None if avg is None else {**avg.to_dict(), "input_psnr": self.average_input_psnr()},
            "seconds": float(sum(r.seconds for r in self.images)),
        }

    # -- text -------------------------------------------------------------------------------------
    def _columns(self) -> list[str]:
        if not self.protocol.has_ground_truth:
            return []
        cols = ["psnr", "ssim"]
        if self.protocol.channels == 3:
            cols += ["psnr_y", "ssim_y"]
        if self.protocol.is_jpeg:
            cols += ["psnr_b"] + (["psnr_b_y"] if self.protocol.channels == 3 else [])
        return cols

    def table(self) -> str:
        """Per-image table, then the averages in the paper's ``PSNR/SSIM`` style."""
        cols = self._columns()
        heads = {
            "psnr": "PSNR",
            "ssim": "SSIM",
            "psnr_y": "PSNR_Y",
            "ssim_y": "SSIM_Y",
            "psnr_b": "PSNR_B",
            "psnr_b_y": "PSNR_B_Y",
        }
        show_in = any(r.input_psnr is not None for r in self.images)
        width = max([len("image")] + [len(r.name) for r in self.images])
        lines = [f"{self.protocol.describe()}  model={self.model}  border={self.protocol.border}"]
        head = f"{'image':<{width}}  {'size':>9}" + "".join(f"  {heads[c]:>8}" for c in cols)
        head += ("  " + f"{'input':>8}" if show_in else "") + f"  {'time':>7}"
        lines += [head, "-" * len(head)]
        for r in self.images:
            line = f"{r.name:<{width}}  {f'{r.shape[1]}x{r.shape[0]}':>9}"
            for c in cols:
                v = getattr(r.scores, c) if r.scores else None
                line += f"  {_fmt(c, v):>8}"
            if show_in:
                line += f"  {_fmt('psnr', r.input_psnr):>8}"
            lines.append(line + f"  {r.seconds:6.2f}s")
        avg = self.average()
        if avg is not None:
            lines.append("-" * len(head))
            lines.append(
                f"-- Average PSNR/SSIM(RGB): {avg.psnr:.2f} dB; {avg.ssim:.4f}"
                if self.protocol.channels == 3
                else f"-- Average PSNR/SSIM: {avg.psnr:.2f} dB; {avg.ssim:.4f}"
            )
            if avg.psnr_y is not None and avg.ssim_y is not None:
                lines.append(f"-- Average PSNR_Y/SSIM_Y: {avg.psnr_y:.2f} dB; {avg.ssim_y:.4f}")
            if avg.psnr_b is not None:
                lines.append(f"-- Average PSNRB: {avg.psnr_b:.2f} dB")
            if avg.psnr_b_y is not None:
                lines.append(f"-- Average PSNRB_Y: {avg.psnr_b_y:.2f} dB")
            ain = self.average_input_psnr()
            if ain is not None:
                lines.append(f"-- Average input PSNR: {ain:.2f} dB")
            sr = self.protocol.task in SR_TASKS
            if sr and avg.psnr_y is not None and avg.ssim_y is not None:
                paper, space = f"{avg.psnr_y:.2f}/{avg.ssim_y:.4f}", "Y"
            else:
                paper, space = f"{avg.psnr:.2f}/{avg.ssim:.4f}", "RGB" if self.protocol.channels == 3 else "gray"
            if avg.psnr_b is not None:
                paper += f"/{avg.psnr_b:.2f}"
            lines.append(f"-- Paper format ({space}): {paper}")
        else:
            lines.append(f"-- {len(self.images)} images restored (no ground truth for {self.protocol.task})")
        return "\n".join(lines)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        text = json.dumps(self.to_dict(), indent=1, default=_json_default)
        return _atomic_write(Path(path), text.encode())

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        buf = io.StringIO()
        rows = [r.row() for r in self.images]
        fields = list(rows[0].keys()) if rows else ["name"]
        wr = csv.DictWriter(buf, fieldnames=fields)
        wr.writeheader()
        for row in rows:
            wr.writerow({k: _csv_value(v) for k, v in row.items()})
        avg = self.average()
        if avg is not None:
            wr.writerow(
                {
                    "name": "average",
                    **{k: _csv_value(v) for k, v in avg.to_dict().items()},
                    "input_psnr": _csv_value(self.average_input_psnr()),
                    "seconds": _csv_value(sum(r.seconds for r in self.images)),
                }
            )
        return _atomic_write(Path(path), buf.getvalue().encode())


def _fmt(col: str, v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.4f}" if col.startswith("ssim") else f"{v:.2f}"


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else v


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _atomic_write(path: Path, data: bytes) -> Path:
    try:
        return write_bytes(path, data)
    except OSError as exc:
        raise ImageWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------------------------------ sheets
def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """Panel with a black caption band on top (cv2.putText)."""
    band = np.zeros((22, panel.shape[1], 3), np.uint8)
    scale = 0.5 if panel.shape[1] >= 120 else 0.35
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, panel], 0)


def comparison_sheet(
    panels: Sequence[tuple[str, np.ndarray]],
    crop: int | tuple[int, int, int] | None = 256,
    gap: int = 4,
) -> np.ndarray:
    """Side-by-side RGB sheet of labelled panels, e.g. LR | output | HR.

    Panels smaller than the largest (the LR) are enlarged by pixel repetition to its size so that the
    same region lines up. ``crop``: a side length for a centred square crop, ``(top, left, size)`` in
    the largest panel's pixels, or None for whole images.
    """
    if not panels:
        raise SwinIRError("a comparison sheet needs at least one image")
    rgb = [
        (
            lbl,
            np.repeat(p, 3, 2)
            if p.ndim == 3 and p.shape[2] == 1
            else np.repeat(p[:, :, None], 3, 2)
            if p.ndim == 2
            else p,
        )
        for lbl, p in panels
    ]
    th = max(p.shape[0] for _, p in rgb)
    tw = max(p.shape[1] for _, p in rgb)
    big = []
    for lbl, p in rgb:
        if p.shape[:2] != (th, tw):
            fy, fx = max(1, round(th / p.shape[0])), max(1, round(tw / p.shape[1]))
            p = np.repeat(np.repeat(p, fy, 0), fx, 1)[:th, :tw]
            if p.shape[:2] != (th, tw):  # not an integer ratio: pad with black
                p = np.pad(p, ((0, th - p.shape[0]), (0, tw - p.shape[1]), (0, 0)))
        big.append((lbl, p))
    if crop is not None:
        if isinstance(crop, int):
            size = min(crop, th, tw)
            top, left = (th - size) // 2, (tw - size) // 2
        else:
            top, left, size = crop
            if top < 0 or left < 0 or top + size > th or left + size > tw:
                raise SwinIRError(
                    f"crop {top},{left},{size} (top,left,size) does not fit in the {tw}x{th} image: "
                    f"it needs top + size <= {th} and left + size <= {tw}"
                )
        big = [(lbl, p[top : top + size, left : left + size]) for lbl, p in big]
    cols = [_label(np.ascontiguousarray(p), lbl) for lbl, p in big]
    spacer = np.full((cols[0].shape[0], gap, 3), 255, np.uint8)
    out: list[np.ndarray] = []
    for i, c in enumerate(cols):
        if i:
            out.append(spacer)
        out.append(c)
    return np.concatenate(out, 1)


# ------------------------------------------------------------------------------------------ driver
def _input_psnr(sample: Sample, protocol: Protocol) -> float | None:
    """PSNR of the degraded input itself (denoising/JPEG), on the unclipped float input."""
    if sample.gt is None or protocol.task in SR_TASKS:
        return None
    lq = sample.lq.astype(np.float64) * 255.0
    return metrics.psnr(lq, sample.gt.astype(np.float64), protocol.border)


def evaluate_samples(
    model: Model,
    samples: Iterable[Sample],
    protocol: Protocol,
    *,
    model_name: str | None = None,
    options: RestoreOptions | None = None,
    save_dir: str | os.PathLike[str] | None = None,
    sheet: bool = False,
    suffix: str = "",
    progress: bool = False,
    total: int | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
) -> EvalReport:
    """Restore and score prepared samples (training validation uses this with ``progress=False``)."""
    _check_model(model, protocol)
    suffix = suffix or output_suffix(model)
    name = model_name or (model if isinstance(model, str) else type(model).__name__)
    opts = options if options is not None else RestoreOptions()
    report = EvalReport(protocol, str(name), tile=opts.tile, ensemble=opts.ensemble, precision=opts.precision)
    out_dir = Path(save_dir) if save_dir is not None else None
    if total is None and hasattr(samples, "__len__"):
        total = len(samples)  # type: ignore[arg-type]
    training_model = model if isinstance(model, torch.nn.Module) and model.training else None
    if training_model is not None:
        training_model.eval()  # validation during training: restored to train mode below
    bar = _progress_bar(f"eval {protocol.describe()}", total) if progress else None
    try:
        for sample in samples:
            t0 = time.perf_counter()
            out = restore_sample(model, sample.lq, protocol.scale, opts)
            seconds = time.perf_counter() - t0
            sc = score(out, sample.gt, protocol) if sample.gt is not None else None
            res = ImageResult(sample.name, sc, _input_psnr(sample, protocol), seconds, tuple(out.shape))
            if out_dir is not None:
                _save_result(res, sample, out, out_dir, suffix, sheet)
            report.images.append(res)
            if on_result is not None:
                on_result(res)
            if bar is not None:
                bar.update(1)
                if sc is not None:
                    bar.set_postfix_str(f"{sample.name} {sc.psnr:.2f} dB")
    finally:
        if bar is not None:
            bar.close()
        if training_model is not None:
            training_model.train()
    return report


def _progress_bar(desc: str, total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)


def _save_result(res: ImageResult, sample: Sample, out: np.ndarray, out_dir: Path, suffix: str, sheet: bool) -> None:
    """Write the restored image (and its input | output | ground truth sheet); paths go into ``res``."""
    res.output_path = str(write_image(out_dir / f"{sample.name}_{suffix}.png", out))
    if sheet:
        panels = [("input", sample.lq_uint8()), ("output", out)]
        if sample.gt is not None:
            panels.append(("ground truth", sample.gt))
        crop = 256 if sample.gt is not None else None
        res.sheet_path = str(
            write_image(out_dir / "sheets" / f"{sample.name}_sheet.png", comparison_sheet(panels, crop=crop))
        )


def evaluate(
    model: Model,
    hr_dir: str | os.PathLike[str],
    protocol: Protocol,
    *,
    lr_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    model_name: str | None = None,
    options: RestoreOptions | None = None,
    save_dir: str | os.PathLike[str] | None = None,
    sheet: bool = False,
    progress: bool = True,
    on_result: Callable[[ImageResult], None] | None = None,
) -> EvalReport:
    """Evaluate ``model`` on every image of ``hr_dir`` under ``protocol`` (see the module docstring).

    For ``real_sr`` the folder holds the low-quality inputs (``lr_dir`` takes precedence if given).
    """
    _check_model(model, protocol)
    if protocol.task == "real_sr":
        folder, lr_arg = (lr_dir if lr_dir is not None else hr_dir), None
    else:
        folder, lr_arg = hr_dir, lr_dir
    if folder is None:
        raise OptionsError("hr_dir", "give the image folder (the LR folder for real_sr)")
    if lr_arg is not None and not Path(lr_arg).is_dir():
        raise SwinIRError(f"LR folder {lr_arg} does not exist or is not a folder")
    _check_save_dir(save_dir, [folder, lr_arg])
    files = _without_earlier_outputs(list_images(folder))[: limit or None]
    if lr_arg is not None:  # fail before any work if an LR partner is missing
        for f in files:
            _find_lr(Path(lr_arg), f.stem, f.suffix, protocol.scale)
    samples = (load_sample(f, protocol, lr_arg) for f in files)
    report = evaluate_samples(
        model,
        samples,
        protocol,
        model_name=model_name,
        options=options,
        save_dir=save_dir,
        sheet=sheet,
        progress=progress,
        total=len(files),
        on_result=on_result,
    )
    report.hr_dir = str(hr_dir) if hr_dir is not None else None
    report.lr_dir = str(lr_dir) if lr_dir is not None else None
    return report


def _without_earlier_outputs(files: list[Path]) -> list[Path]:
    """The folder's images less the results an earlier run saved there (``NAME_SwinIR.png`` beside ``NAME``),
    which would otherwise be scored as ground truth of their own (46.98 dB instead of 40.50 on one test)."""
    from swinir.restore_plan import earlier_outputs
    from swinir.spec import TITLES

    found = {title: earlier_outputs(files, f"_{title}") for title in TITLES.values()}
    earlier = {f for fs in found.values() for f in fs}
    if earlier:
        kinds = ", ".join(f"*_{title}.png" for title, fs in found.items() if fs)
        warnings.warn(
            f"{len(earlier)} earlier output(s) ({kinds} beside their source) in {files[0].parent} "
            "left out of the test images",
            SwinIRNotice,
            stacklevel=3,
        )
    return [f for f in files if f not in earlier]


def _check_save_dir(save_dir: str | os.PathLike[str] | None, inputs: Sequence[object]) -> None:
    """Restored images saved among the test images would be read as test images by the next run
    (Set5 x2 then scored 46.98 dB against its own outputs instead of 40.50): refuse that folder."""
    if save_dir is None:
        return
    target = Path(save_dir).resolve()
    for folder in inputs:
        if folder is not None and Path(str(folder)).resolve() == target:
            raise SwinIRError(
                f"{save_dir} holds the test images: restored images saved there would be read as test "
                "images by the next run; save them to another folder"
            )


def _check_model(model: Model, protocol: Protocol) -> None:
    """Refuse a model that cannot do the task, with a one-line reason."""
    if isinstance(model, str):
        if model != BICUBIC:
            raise SwinIRError(f"unknown baseline {model!r}; the only built-in baseline is 'bicubic'")
        if protocol.task not in SR_TASKS:
            raise SwinIRError(f"the bicubic baseline only applies to SR tasks, not {protocol.task}")
        return
    in_ch = int(getattr(model, "in_chans", protocol.channels))
    if in_ch != protocol.channels:
        kind = "gray" if in_ch == 1 else "color"
        raise OptionsError(
            "task",
            f"the model takes {kind} ({in_ch}-channel) input but task {protocol.task} "
            f"needs {protocol.channels}-channel images; pick the matching task or model",
        )
    s = int(getattr(model, "upscale", 1) or 1)
    want = protocol.scale if protocol.task in SR_TASKS else 1
    if s != want:
        raise OptionsError("scale", f"the model upscales x{s} but the protocol asks for x{want}; fix the scale or task")
