"""The training loop: one ``Trainer`` for every task, in one process or under torchrun (DDP).

Subclasses change the optimisation by overriding ``build_loss`` / ``training_step`` (e.g. a GAN stage adds a
discriminator and its own step) and extend checkpoints through ``extra_state`` / ``load_extra_state``.

Output folder layout::

    config.yaml            the validated configuration of the run
    train.log              human-readable log (appended across resumes)
    metrics.jsonl          every logged value, one JSON record per line
    tensorboard/           losses, learning rate, validation metrics, sample images
    checkpoints/           full training states: iter_NNNNNNN.pt (the last log.keep_checkpoints), latest.pt, best.pt
    models/                released-layout weights {'params', 'params_ema'}: model_NNNNNNN.pth (the last
                           log.keep_models), model_best.pth
    val/                   restored validation samples (PNG) of the latest validation
    curves.png             loss and validation PSNR at the end
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import math
import os
import random
import re
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from swinir import architectures
from swinir.atomic import atomic_path, write_text
from swinir.checkpoint import drop_derived, read_state_dict
from swinir.checkpoint import save as save_weights
from swinir.errors import CheckpointError, ConfigError
from swinir.model.shared import Restorer
from swinir.train import distributed as dist_utils
from swinir.train.budget import Schedule, TimeBudget
from swinir.train.config import Config, ModelConfig
from swinir.train.data import TrainSet, ValImage, input_baseline, load_val_set, make_loader, val_protocol
from swinir.train.ema import EMA
from swinir.train.losses import PixelLoss
from swinir.train.monitor import Monitor, plot_curves, setup_file_log

log = logging.getLogger("swinir.train")

CKPT_VERSION = 1


@dataclass
class TrainResult:
    out_dir: Path
    iteration: int
    best_psnr: float | None
    last_val: dict[str, float] = field(default_factory=dict)
    first_val: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch generator states in a form ``torch.load(weights_only=True)`` accepts."""
    py = random.getstate()
    np_state = np.random.get_state(legacy=True)  # the default
    assert isinstance(np_state, tuple)  # the legacy MT19937 form
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # unannotated in torch
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def lr_factor(it: int, milestones: Sequence[int], gamma: float, warmup: int) -> float:
    """MultiStepLR in closed form (gamma per milestone passed), times an optional linear warm-up."""
    f = gamma ** bisect.bisect_right(milestones, it)
    if warmup > 0 and it < warmup:
        f *= (it + 1) / warmup
    return f


def resolve_init_source(source: str) -> Path:
    p = Path(source).expanduser()
    if p.exists():
        return p
    if os.sep in source or p.suffix in (".pth", ".pt", ".safetensors", ".ckpt"):
        raise ConfigError(f"model.init_from: {source}: no such checkpoint file")
    from swinir import zoo

    return Path(zoo.resolve(source))


def model_from_init(cfg: Config) -> Config:
    """``cfg`` with its model section taken from ``model.init_from``'s weights when ``model.from_init`` is
    set (architecture and every hyperparameter, as detected), else ``cfg`` itself."""
    m = cfg.model
    if not (m.from_init and m.init_from):
        return cfg
    try:
        _, spec = read_state_dict(resolve_init_source(m.init_from))
    except CheckpointError as exc:
        raise ConfigError(f"model.init_from: {exc}") from None
    model = dataclasses.replace(m, **ModelConfig.spec_fields(spec))
    return dataclasses.replace(cfg, model=model)


def init_from_checkpoint(
    model: Restorer, source: str, reset_head: bool | None = None, strict: bool = False
) -> tuple[list[str], list[str]]:
    """Copy tensors of matching name and shape from a checkpoint (EMA weights preferred) into ``model``.

    The scale-specific upsampler (``upsample.*``) is re-initialised when the scales differ (or when
    ``reset_head``). Returns (loaded keys, model keys left at their initialisation)."""
    path = resolve_init_source(source)
    try:
        sd, spec = read_state_dict(path)
    except CheckpointError as exc:
        raise ConfigError(f"model.init_from: {exc}") from None
    if spec.architecture != model.spec.architecture:
        raise ConfigError(
            f"model.init_from: {path} holds {spec.title} weights but model.architecture is "
            f"{model.spec.architecture}; set model.architecture: {spec.architecture}, or model.from_init: true "
            "to take the whole network from the checkpoint"
        )
    if reset_head is None:
        reset_head = spec.upscale != model.upscale or spec.upsampler != model.upsampler
    own = drop_derived(model.state_dict())
    new: dict[str, Tensor] = {}
    for k, v in sd.items():
        if reset_head and k.startswith("upsample."):
            continue
        if k in own and tuple(own[k].shape) == tuple(v.shape):
            new[k] = v.to(own[k].dtype)
    left = [k for k in own if k not in new]
    if strict:
        bad = [k for k in left if not (reset_head and k.startswith("upsample."))]
        if bad:
            raise ConfigError(
                f"model.init_from: {path} lacks {len(bad)} tensors of this model (e.g. {bad[0]}); "
                "set model.init_strict: false to initialise them randomly"
            )
    model.load_state_dict(new, strict=False)
    return sorted(new), left


# --------------------------------------------------------------------------------------------------
# trainer
# --------------------------------------------------------------------------------------------------
class Trainer:
    """Builds everything from a ``Config`` and runs ``fit()``; ``out_dir`` receives all outputs."""

    def __init__(
        self,
        cfg: Config,
        out_dir: str | os.PathLike[str],
        resume: bool = False,
        dist: dist_utils.DistInfo | None = None,
        progress: bool | None = None,
    ) -> None:
        cfg = model_from_init(cfg)
        self.cfg = cfg
        self.out = Path(out_dir)
        self.dist = dist if dist is not None else dist_utils.from_env()
        self.main = self.dist.main
        self.progress = cfg.log.progress if progress is None else progress
        self._stop = False
        self._check_out_dir(resume)
        self.device = dist_utils.setup(self.dist, cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._log_handler = setup_file_log(self.out, self.main)
        self.iteration = 0
        self.best_psnr = -math.inf
        self.first_val: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        self.train_seconds = 0.0  # time spent in the training loop, summed over resumes (for time_limit)
        # what the loop runs; a time_limit re-plan replaces it (the config is never changed)
        self.schedule = Schedule(cfg.train.iterations, tuple(cfg.train.milestones))
        # time_limit runs: the original schedule whose proportions re-planning keeps
        self.plan: Schedule | None = None

        self.model = self.build_model().to(self.device)
        self.ema = EMA(self.model, cfg.train.ema_decay, cfg.train.ema_warmup) if cfg.train.ema_decay > 0 else None
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.loss_fn = self.build_loss().to(self.device)
        self.optimizer = self.build_optimizer()
        t = cfg.train
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")

        self._build_data()
        if resume:
            latest = self.out / "checkpoints" / "latest.pt"
            if latest.exists():
                self.load_checkpoint(latest)
            elif self.main:
                log.info("no checkpoint in %s: starting from scratch", latest.parent)
        self._check_same_iteration()
        self.monitor = Monitor(self.out, self.main, cfg.log.tensorboard, start_iter=self.iteration)
        if self.main:
            write_text(self.out / "config.yaml", cfg.to_yaml())

    def lr_factor(self, it: int) -> float:
        """The learning-rate multiplier at ``it`` under the current schedule (read at every step)."""
        t = self.cfg.train
        return lr_factor(it, self.schedule.milestones, t.gamma, t.warmup_iters)

    def restore_lr(self, optimizer: torch.optim.Optimizer, scheduler: Any, lr: float) -> None:
        """On resume, the learning rate follows the current config (lr or milestones may have been edited)."""
        scheduler.base_lrs = [lr for _ in optimizer.param_groups]
        scheduler.last_epoch = self.iteration
        for g in optimizer.param_groups:
            g["initial_lr"] = lr
            g["lr"] = lr * self.lr_factor(self.iteration)

    def _build_data(self) -> None:
        cfg = self.cfg
        self.train_set = TrainSet(cfg.data, cfg.scale, cfg.model.in_chans, seed=cfg.train.seed)
        self.val_set: list[ValImage] = (
            load_val_set(cfg.val, cfg.scale, cfg.model.in_chans) if self.main and cfg.val.hr else []
        )
        self._val_inputs: dict[str, tuple[float, float]] = {}
        self.val_protocol = val_protocol(cfg.val, cfg.scale, cfg.model.in_chans) if self.val_set else None

    def _check_same_iteration(self) -> None:
        """Every process must resume from the same checkpoint (multi-node runs need a shared --out)."""
        if not self.dist.enabled:
            return
        t = torch.tensor([self.iteration, -self.iteration], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        hi, lo = int(t[0]), -int(t[1])
        if hi != lo:
            raise CheckpointError(
                f"processes start at different iterations ({lo}..{hi}): {self.out} must be a "
                "folder shared by all nodes so that every process resumes from the same latest.pt"
            )

    # -- construction (overridable) -------------------------------------------------------------------
    def _check_out_dir(self, resume: bool) -> None:
        if not resume and (self.out / "checkpoints" / "latest.pt").exists():
            raise ConfigError(
                f"{self.out} already holds a training run; add --resume to continue it, or choose another --out folder"
            )

    def build_model(self) -> Restorer:
        m = self.cfg.model
        try:
            model = architectures.build(m.spec())
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"model: {exc}") from None
        if m.init_from:
            loaded, left = init_from_checkpoint(model, m.init_from, m.init_reset_head, m.init_strict)
            if self.main:
                log.info(
                    "initialised %d tensors from %s; %d left at random init%s",
                    len(loaded),
                    m.init_from,
                    len(left),
                    f" (e.g. {', '.join(left[:3])})" if left else "",
                )
        model.set_grad_checkpointing(m.grad_checkpointing)
        return model

    def build_loss(self) -> nn.Module:
        return PixelLoss([t.term() for t in self.cfg.train.loss])

    def build_optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=t.lr, betas=(t.betas[0], t.betas[1]), weight_decay=t.weight_decay)

    # -- one step ----------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def training_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Forward, loss, backward, optimiser, scheduler and EMA for one batch; returns detached losses."""
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.net(lq)
        loss, parts = self.loss_fn(out, gt)
        self.scaler.scale(loss).backward()
        logs = (
            {"loss": loss.detach(), **{f"loss_{k}": v for k, v in parts.items()}}
            if len(parts) > 1
            else {"loss": loss.detach()}
        )
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return logs

    # -- validation ----------------------------------------------------------------------------------
    def val_settings(self) -> tuple[int, bool]:
        """(border, Y channel): by default the paper's border (the scale for SR, 0 otherwise), Y for SR."""
        v = self.cfg.val
        sr = self.cfg.scale > 1
        y = v.y_channel if v.y_channel is not None else sr
        border = v.crop_border if v.crop_border is not None else (self.cfg.scale if sr else 0)
        return border, y and self.cfg.model.in_chans == 3

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the (EMA) model on the validation set, run and scored as ``swinir eval`` does
        (``swinir.evaluate``), and the PSNR of the un-restored input (bicubic / degraded) for reference."""
        from swinir.evaluate import restore_sample

        if not self.val_set:
            return {}
        net = self.ema.module if (self.ema is not None and self.cfg.val.use_ema) else self.model
        was_training = net.training
        net.eval()
        border, y = self.val_settings()
        protocol = self.val_protocol
        scores: list[tuple[float, float, float]] = []
        samples_dir = self.out / "val"
        for i, img in enumerate(self.val_set):
            out8 = restore_sample(net, img.lq, self.cfg.scale, device=self.device)
            if img.name not in self._val_inputs:
                base = input_baseline(img, self.cfg.scale)
                self._val_inputs[img.name] = _psnr_ssim(base, img.gt, protocol, border, y)
            p_in, _ = self._val_inputs[img.name]
            p_out, s_out = _psnr_ssim(out8, img.gt, protocol, border, y)
            scores.append((p_out, s_out, p_in))
            if i < self.cfg.val.sample_images:
                self.monitor.image(self.iteration, f"val/{img.name}", out8)
                _write_png(samples_dir / f"{img.name}.png", out8)
        net.train(was_training)
        arr = np.array(scores, dtype=np.float64)
        return {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()), "psnr_input": float(arr[:, 2].mean())}

    def _run_validation(self) -> None:
        if not self.main or not self.val_set:
            return
        t0 = time.time()
        res = self.validate()
        self.last_val = dict(res, iter=self.iteration)  # the summary names the iteration it ran at
        if not self.first_val:
            self.first_val = dict(res, iter=self.iteration)
        self.monitor.scalars(self.iteration, res, kind="val")
        border, y = self.val_settings()
        log.info(
            "val @%d: PSNR %.3f dB, SSIM %.4f (input %.3f dB; %s, border %d) in %.1fs",
            self.iteration,
            res["psnr"],
            res["ssim"],
            res["psnr_input"],
            "Y" if y else "RGB",
            border,
            time.time() - t0,
        )
        if res["psnr"] > self.best_psnr and self.iteration > 0:
            self.best_psnr = res["psnr"]
            self.save_checkpoint(best=True)

    # -- checkpoints -----------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """Subclasses add their own state (e.g. a discriminator) here."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CKPT_VERSION,
            "iteration": self.iteration,
            "samples_seen": self.iteration * self.cfg.data.batch_size,  # the sampler position
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_psnr": self.best_psnr,
            "first_val": self.first_val,
            "train_seconds": self.train_seconds,
            "plan": self.plan.to_list() if self.plan is not None else None,
            "rng": rng_state(),
            "world": self.dist.world,
            "config": self.cfg.to_dict(),
            "spec": self.model.spec.to_dict(),
            "extra": self.extra_state(),
        }

    def export_weights(self, path: Path) -> Path:
        """The released layout: ``{'params': ..., 'params_ema': ...}`` with the derived buffers (+ our spec),
        loadable by ``swinir.load`` and strictly by the original test script."""
        extra = {"params_ema": self.ema.module.state_dict()} if self.ema is not None else {}
        return save_weights(self.model, path, key="params", extra=extra)

    def save_checkpoint(self, best: bool = False) -> None:
        if not self.main:
            return
        state = self.state_dict()
        ck = self.out / "checkpoints"
        if best:
            atomic_torch_save(state, ck / "best.pt")
            self.export_weights(self.out / "models" / "model_best.pth")
            log.info("new best PSNR %.3f dB at iteration %d: saved checkpoints/best.pt", self.best_psnr, self.iteration)
            return
        name = f"iter_{self.iteration:07d}.pt"
        atomic_torch_save(state, ck / name)
        atomic_torch_save(state, ck / "latest.pt")
        self.export_weights(self.out / "models" / f"model_{self.iteration:07d}.pth")
        keep = self.cfg.log.keep_checkpoints
        if keep > 0:
            old = sorted(ck.glob("iter_*.pt"))[:-keep]
            for f in old:
                f.unlink(missing_ok=True)
        self.prune_models()
        log.info("saved checkpoint %s", ck / name)

    def prune_models(self) -> None:
        """Keep the last ``log.keep_models`` numbered ``models/*_NNNNNNN.pth`` (and ``model_best.pth``): a
        time-limited run of a tiny model once left 92 of them."""
        keep = self.cfg.log.keep_models
        if keep <= 0:
            return
        numbered: dict[int, list[Path]] = {}
        for f in (self.out / "models").glob("*_*.pth"):
            m = re.fullmatch(r"[a-z_]+_(\d+)\.pth", f.name)  # model_0000100.pth, net_d_0000100.pth (GAN)
            if m:
                numbered.setdefault(int(m.group(1)), []).append(f)
        for it in sorted(numbered)[:-keep]:
            for f in numbered[it]:
                f.unlink(missing_ok=True)

    @property
    def checkpoint_every(self) -> int:
        """``log.checkpoint_every``, scaled as the iterations are when a time limit re-plans the run."""
        every = self.cfg.log.checkpoint_every
        if self.plan is None or self.plan.iterations == self.schedule.iterations:
            return every
        return max(1, round(every * self.schedule.iterations / self.plan.iterations))

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"{path}: cannot read this training checkpoint ({str(exc).splitlines()[0][:160]}); "
                "use an earlier iter_*.pt by copying it to latest.pt"
            ) from None
        try:
            self.model.load_state_dict(state["model"], strict=False)
            if self.ema is not None and state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: does not match this configuration ({str(exc).splitlines()[0][:200]}); "
                "resume with the config the run was started with"
            ) from None
        self.iteration = int(state["iteration"])
        self.best_psnr = float(state.get("best_psnr", -math.inf))
        self.first_val = dict(state.get("first_val") or {})
        self.train_seconds = float(state.get("train_seconds", 0.0))
        plan = state.get("plan")
        self.plan = Schedule.from_list(plan) if plan else None
        if self.cfg.train.time_limit and self.train_seconds < self.cfg.train.time_limit:
            self.schedule = self.schedule.resumed(self.plan, self.iteration)
        set_rng_state(state["rng"])
        self.load_extra_state(state.get("extra") or {})
        self.restore_lr(self.optimizer, self.scheduler, self.cfg.train.lr)
        if self.main:
            log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- the loop -------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[dict[str, Tensor]]:
        loader = make_loader(
            self.train_set,
            self.cfg.data.batch_size,
            self.cfg.data.num_workers,
            self.dist.rank,
            self.dist.world,
            start_iter=self.iteration,
            pin_memory=self.device.type == "cuda",
        )
        return iter(loader)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True

    def _replan(self, total: int, rate: float, left: float) -> None:
        """Run ``total`` iterations, the milestones not yet passed moved to keep their place in the plan."""
        if self.plan is None:
            self.plan = self.schedule
        if self.dist.enabled:  # every process must stop at the same iteration: take the slowest plan
            v = torch.tensor([total], dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(v, op=torch.distributed.ReduceOp.MIN)
            total = int(v.item())
        old, self.schedule = self.schedule, self.schedule.fitted(self.plan, total, self.iteration)
        if self.main:
            log.info(
                "time limit %.0fs: %.2f it/s, %.0fs left -> %d iterations (were %d), milestones %s (were %s)",
                self.cfg.train.time_limit,
                rate,
                left,
                self.schedule.iterations,
                old.iterations,
                list(self.schedule.milestones),
                list(old.milestones),
            )
            write_text(self.out / "config.yaml", self.planned_config().to_yaml())  # resume follows the new plan

    def planned_config(self) -> Config:
        """The config with the current schedule: what a resume reads from the run's ``config.yaml``."""
        s = self.schedule
        train_cfg = dataclasses.replace(self.cfg.train, iterations=s.iterations, milestones=list(s.milestones))
        return dataclasses.replace(self.cfg, train=train_cfg)

    def _budget_step(self, budget: TimeBudget, it: int, now: float) -> bool:
        """After each step: re-plan when due; True when the budget is spent. In DDP, rank 0's clock decides,
        at logging steps only (a collective)."""
        if not budget.measuring(it, now):
            return False
        due, over = budget.due(it, now), budget.over(self.train_seconds)
        if self.dist.enabled:
            if it % self.cfg.log.every:
                return False
            v = torch.tensor([int(due), int(over)], dtype=torch.int64, device=self.device)
            torch.distributed.broadcast(v, src=0)
            due, over = bool(v[0]), bool(v[1])
        if due and not over:
            rate, left = budget.rate(it, now), budget.left(self.train_seconds)
            self._replan(budget.plan(it, now, self.train_seconds), rate, left)
        return over

    def fit(self) -> TrainResult:
        t_start = time.time()
        self._log_start()
        old_handlers = self._catch_signals()
        bar = None
        try:
            if self.iteration == 0 and self.val_set:
                self._run_validation()  # the "before training" reference
            if self.iteration >= self.schedule.iterations:
                return self._finish(t_start)
            if self.main and self.progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=self.schedule.iterations,
                    initial=self.iteration,
                    unit="it",
                    dynamic_ncols=True,
                    desc=self.cfg.name,
                    smoothing=0.05,
                )
            self._loop(bar)
            if self._stop:
                log.info("stopped by a signal at iteration %d", self.iteration)
                self.save_checkpoint()
                return self._finish(t_start, interrupted=True)
            if self.val_set and self.iteration > 0:
                self._run_validation()
            self.save_checkpoint()
            return self._finish(t_start)
        finally:
            if bar is not None:
                bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)

    def _log_start(self) -> None:
        if not self.main:
            return
        cfg = self.cfg
        log.info(
            "run %s: %s, %.3fM parameters, %d training images (epoch %d samples), batch %d on %d "
            "process(es), device %s, amp %s",
            cfg.name,
            self.model.spec.describe(),
            sum(p.numel() for p in self.model.parameters()) / 1e6,
            len(self.train_set.records),
            self.train_set.epoch_length,
            cfg.data.batch_size,
            self.dist.world,
            self.device,
            cfg.train.amp,
        )

    def _catch_signals(self) -> dict[int, Any]:
        """SIGINT/SIGTERM stop the loop after the current step (and save); returns the old handlers."""
        old: dict[int, Any] = {}
        if not self.dist.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError):  # not the main thread
                    old[sig] = signal.signal(sig, self._on_signal)
        return old

    def _loop(self, bar: Any) -> None:
        """Steps until the schedule's end, the time budget or a signal; logs, validates, checkpoints."""
        cfg = self.cfg
        budget = TimeBudget(cfg.train.time_limit, self.iteration) if cfg.train.time_limit else None
        batches = self._batches()
        window = LogWindow()
        loop_t0, spent0 = time.time(), self.train_seconds
        total = self.schedule.iterations
        while self.iteration < total and not self._stop:
            logs = self.training_step(next(batches))
            self.iteration += 1
            it, now = self.iteration, time.time()
            self.train_seconds = spent0 + (now - loop_t0)
            over = budget is not None and self._budget_step(budget, it, now)
            if self.schedule.iterations != total:  # re-planned
                total = max(self.schedule.iterations, it)
                if bar is not None:
                    bar.total = total
                    bar.refresh()
            if over and it < total:
                if self.main:
                    log.info("time limit %.0fs reached at iteration %d of %d", cfg.train.time_limit, it, total)
                total = it
            window.add(logs)
            if bar is not None:
                bar.update(1)
            if it % cfg.log.every == 0 or it == total:
                self._log_train(window.take(), total, bar)
            if cfg.val.every and it % cfg.val.every == 0 and it != total:
                self._run_validation()
                dist_utils.barrier(self.dist)
            if it % self.checkpoint_every == 0 and it != total:
                self.save_checkpoint()

    def _log_train(self, vals: dict[str, float], total: int, bar: Any) -> None:
        vals = self._reduce_logs(vals)
        vals["lr"] = self.optimizer.param_groups[0]["lr"]
        if not self.main:
            return
        it = self.iteration
        self.monitor.scalars(it, vals, kind="train")
        if bar is not None:
            bar.set_postfix(loss=f"{vals['loss']:.4g}", lr=f"{vals['lr']:.2g}")
        log.info("iter %d/%d: loss %.5f, lr %.3g, %.2f it/s", it, total, vals["loss"], vals["lr"], vals["it_per_s"])

    def _reduce_logs(self, vals: dict[str, float]) -> dict[str, float]:
        """Average logged values over processes (each holds the loss of its share of the batch)."""
        if not self.dist.enabled:
            return vals
        keys = sorted(vals)
        t = torch.tensor([vals[k] for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        t /= self.dist.world
        return dict(zip(keys, t.tolist()))

    def _finish(self, t_start: float, interrupted: bool = False) -> TrainResult:
        dist_utils.barrier(self.dist)
        seconds = time.time() - t_start
        if self.main:
            self.monitor.flush()
            if self.cfg.log.plot:
                png = plot_curves(self.out / "metrics.jsonl", self.out / "curves.png", self.cfg.name)
                if png:
                    log.info("curves: %s", png)
            log.info(
                "finished at iteration %d in %.1fs; best PSNR %s",
                self.iteration,
                seconds,
                f"{self.best_psnr:.3f} dB" if math.isfinite(self.best_psnr) else "n/a",
            )
        return TrainResult(
            self.out,
            self.iteration,
            self.best_psnr if math.isfinite(self.best_psnr) else None,
            dict(self.last_val),
            dict(self.first_val),
            interrupted,
            seconds,
        )

    def close(self) -> None:
        self.monitor.close()
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


class LogWindow:
    """Logged values summed between logging steps, on the device: a float() per step would wait for the GPU."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.steps = 0
        self.t0 = time.time()

    def add(self, logs: dict[str, Tensor]) -> None:
        for k, v in logs.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.steps += 1

    def take(self) -> dict[str, float]:
        """Means since the last ``take`` and the step rate (``it_per_s``); starts a new window."""
        out = {k: float(v) / self.steps for k, v in self.sums.items()}
        out["it_per_s"] = self.steps / max(time.time() - self.t0, 1e-9)
        self.sums, self.steps, self.t0 = {}, 0, time.time()
        return out


def _psnr_ssim(out: np.ndarray, gt: np.ndarray, protocol: Any, border: int, y: bool) -> tuple[float, float]:
    """PSNR and SSIM on Y or RGB: ``swinir.evaluate.score`` (the release's exact channel order) when the
    validation follows a paper protocol, ``swinir.metrics`` otherwise."""
    if protocol is not None and protocol.border == border:
        from swinir.evaluate import score

        sc = score(out, gt, protocol)
        if y and sc.psnr_y is not None:
            return sc.psnr_y, float(sc.ssim_y)  # type: ignore[arg-type]
        return sc.psnr, sc.ssim
    from swinir.metrics import psnr, ssim

    return psnr(out, gt, border, y), ssim(out, gt, border, y)


def _write_png(path: Path, img: np.ndarray) -> None:
    bgr = img[:, :, ::-1] if img.shape[2] == 3 else img[:, :, 0]
    with atomic_path(path, suffix=".tmp.png") as tmp:
        cv2.imwrite(str(tmp), np.ascontiguousarray(bgr))
