"""What a run reports: ``train.log``, ``metrics.jsonl`` (every logged value), TensorBoard, and a PNG of
the loss and PSNR curves. Only the main process writes; the others get a silent ``Monitor``."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from swinir.atomic import atomic_path, write_text

log = logging.getLogger("swinir.train")


def setup_file_log(out_dir: Path, enabled: bool) -> logging.Handler | None:
    """Send the ``swinir.train`` logger to ``out_dir/train.log`` (appending across resumes)."""
    log.setLevel(logging.INFO)
    if not enabled:
        return None
    handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    return handler


class Monitor:
    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True, start_iter: int = 0) -> None:
        self.out_dir = out_dir
        self.enabled = enabled
        self.writer = None
        self.jsonl = out_dir / "metrics.jsonl"
        if enabled:
            if start_iter:
                self._truncate_after(start_iter)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_iter or None)
                except ImportError:  # the [train] extra
                    log.warning(
                        "tensorboard is not installed (pip install 'swinir[train]'); TensorBoard logging is off"
                    )

    def _truncate_after(self, it: int) -> None:
        """On resume, drop records written after the checkpoint, so the history has no duplicates."""
        if not self.jsonl.exists():
            return
        keep = [line for line in self.jsonl.read_text().splitlines() if line.strip() and _iter_of(line) <= it]
        write_text(self.jsonl, "".join(line + "\n" for line in keep))

    def scalars(self, it: int, values: Mapping[str, float], kind: str = "train") -> None:
        if not self.enabled:
            return
        rec: dict[str, Any] = {"iter": it, "kind": kind, "time": round(time.time(), 3)}
        rec.update({k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()})
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{kind}/{k}", float(v), it)

    def image(self, it: int, tag: str, img: np.ndarray) -> None:
        """HxWxC uint8."""
        if self.enabled and self.writer is not None:
            x = img if img.shape[2] == 3 else np.repeat(img, 3, axis=2)
            self.writer.add_image(tag, x, it, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _iter_of(line: str) -> int:
    try:
        return int(json.loads(line).get("iter", 0))
    except (ValueError, AttributeError):
        return 0


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def plot_curves(jsonl: Path, png: Path, title: str = "") -> Path | None:
    """Loss (log scale) and validation PSNR against iterations, written atomically."""
    recs = read_metrics(jsonl)
    train = [r for r in recs if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in recs if r.get("kind") == "val" and r.get("psnr") is not None]
    if not train and not val:
        return None
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'swinir[train]'): no %s", png.name)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        axes[0].plot([r["iter"] for r in train], [r["loss"] for r in train], lw=1)
        axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("training loss")
    axes[0].grid(alpha=0.3)
    if val:
        axes[1].plot([r["iter"] for r in val], [r["psnr"] for r in val], "o-", label="model")
        base = [r for r in val if r.get("psnr_input") is not None]
        if base:
            axes[1].axhline(base[-1]["psnr_input"], color="gray", ls="--", label="input (bicubic / degraded)")
        axes[1].legend()
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("validation PSNR (dB)")
    axes[1].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(png, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return png
