"""Jobs and the bounded queue that feeds one worker thread per device.

A submission is taken whole or not at all: when the queued jobs plus the new ones would pass the
capacity, the request gets 429 with Retry-After and nothing already queued is touched. Each job lives in
its own folder under the server's work folder (input, then the result, both written atomically); a
sweeper deletes finished jobs after ``keep_s``, and closing the queue deletes the work folder.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinir.atomic import write_bytes
from swinir.errors import SwinIRError
from swinir.precision import choose as choose_precision
from swinir.serve.limits import Upload, UploadRefused
from swinir.serve.restore_call import JobOptions, load_model, output_suffix, restore_to_file

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
_MODELS_PER_WORKER = 3


class JobCancelled(Exception):
    """Raised from the progress callback to stop a running job."""


@dataclass
class Job:
    id: str
    model: str
    options: JobOptions
    filename: str
    folder: Path
    input_path: Path
    output_path: Path
    width: int
    height: int
    out_width: int
    out_height: int
    state: str = "queued"
    phase: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    tiles_done: int = 0
    tiles_total: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    precision: str = ""  # what ran, and why when auto chose it (swinir.precision.Choice.describe)
    version: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    tiles_started: float | None = None

    def touch(self, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self, k, v)
        self.version += 1

    @property
    def result_name(self) -> str:
        return Path(self.filename).stem + self.output_path.suffix

    def eta_s(self) -> float | None:
        if self.state != "running" or not self.tiles_done or not self.tiles_started:
            return None
        rate = self.tiles_done / max(time.monotonic() - self.tiles_started, 1e-6)
        return round((self.tiles_total - self.tiles_done) / rate, 2)

    def to_dict(self) -> dict[str, Any]:
        end = self.finished or time.time()
        return {
            "id": self.id,
            "state": self.state,
            "phase": self.phase,
            "model": self.model,
            "options": self.options.to_dict(),
            "filename": self.filename,
            "input": {"width": self.width, "height": self.height},
            "output": {"width": self.out_width, "height": self.out_height, "name": self.result_name},
            "progress": {
                "tiles_done": self.tiles_done,
                "tiles_total": self.tiles_total,
                "fraction": round(self.tiles_done / self.tiles_total, 4) if self.tiles_total else 0.0,
                "eta_s": self.eta_s(),
            },
            "download": {"bytes_done": self.bytes_done, "bytes_total": self.bytes_total},
            "error": self.error,
            "notices": self.notices,
            "precision": self.precision,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(end - (self.started or end), 3),
            "version": self.version,
        }


class JobQueue:
    """The jobs of one server: submit, look up, cancel; worker threads run them in order."""

    def __init__(self, devices: list[str | None], capacity: int, workers_per_device: int, keep_s: float) -> None:
        self.capacity = capacity
        self.keep_s = keep_s
        self.workdir = Path(tempfile.mkdtemp(prefix="swinir-serve-"))
        self.jobs: dict[str, Job] = {}
        self.pending: deque[Job] = deque()
        self.cond = threading.Condition()
        self.closing = False
        self.durations: deque[float] = deque(maxlen=20)
        self.workers = [
            threading.Thread(target=self._work, args=(dev,), name=f"swinir-worker-{dev}-{i}", daemon=True)
            for dev in devices
            for i in range(workers_per_device)
        ]
        self.sweeper = threading.Thread(target=self._sweep_loop, name="swinir-sweeper", daemon=True)
        for t in [*self.workers, self.sweeper]:
            t.start()

    # -- submitting ----------------------------------------------------------------------------------
    def retry_after_s(self) -> int:
        """Seconds until a queue slot is likely free: recent job time x queued jobs / workers."""
        mean = sum(self.durations) / len(self.durations) if self.durations else 1.0
        return max(1, math.ceil(mean * max(1, len(self.pending)) / max(1, len(self.workers))))

    def submit(self, model: str, options: JobOptions, uploads: list[Upload], sizes: list[tuple[int, int]]) -> list[Job]:
        """Queue one job per upload, all or none (429 when they do not fit)."""
        with self.cond:
            if self.closing:
                raise UploadRefused(503, "the server is shutting down")
            free = self.capacity - len(self.pending)
            if len(uploads) > free:
                wait = self.retry_after_s()
                raise UploadRefused(
                    429,
                    f"the queue is full ({len(self.pending)} of {self.capacity} waiting, {len(uploads)} submitted); "
                    f"retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
            jobs = [self._new_job(model, options, up, size) for up, size in zip(uploads, sizes)]
            for job in jobs:
                self.jobs[job.id] = job
                self.pending.append(job)
            self.cond.notify_all()
        return jobs

    def _new_job(self, model: str, options: JobOptions, upload: Upload, size: tuple[int, int]) -> Job:
        job_id = str(uuid.uuid4())
        folder = self.workdir / job_id
        folder.mkdir()
        src = folder / f"input{upload.extension}"
        write_bytes(src, upload.data)
        dst = folder / f"result{output_suffix(src, options)}"
        name = Path(upload.name.replace("\\", "/")).name or f"image{upload.extension}"
        return Job(job_id, model, options, name, folder, src, dst, upload.width, upload.height, *size)

    # -- looking up and cancelling --------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job: Job) -> Job:
        with self.cond:
            if job.state == "queued":
                self.pending.remove(job)
                self._finish(job, "cancelled", None)
            elif job.state == "running":
                job.cancel.set()
        return job

    def list(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: j.created)

    # -- running --------------------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self.cond:
            while not self.pending and not self.closing:
                self.cond.wait(0.5)
            if self.closing:
                return None
            job = self.pending.popleft()
            job.touch(state="running", phase="loading model", started=time.time())
            return job

    def _work(self, device: str | None) -> None:
        models: OrderedDict[str, Any] = OrderedDict()
        while (job := self._next()) is not None:
            try:
                model = self._model(models, job, device)
                job.touch(phase="restoring", precision=choose_precision(job.options.precision, model).describe())
                job.notices = restore_to_file(
                    model, job.input_path, job.output_path, job.options, device, self._tile_callback(job)
                )
                self._finish(job, "done", None)
            except JobCancelled:
                self._finish(job, "cancelled", None)
            except SwinIRError as exc:
                self._finish(job, "failed", self._one_line(job, exc))
            except MemoryError:
                self._finish(job, "failed", "out of memory; use a smaller tile")
            except Exception as exc:  # a worker must outlive any one job
                self._finish(job, "failed", f"{type(exc).__name__}: {self._one_line(job, exc)[:300]}")

    def _model(self, models: OrderedDict[str, Any], job: Job, device: str | None) -> Any:
        if job.model in models:
            models.move_to_end(job.model)
            return models[job.model]

        def on_bytes(done: int, total: int | None) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            job.touch(phase="downloading model", bytes_done=done, bytes_total=total)

        model = load_model(job.model, device, on_bytes)
        if job.cancel.is_set():
            raise JobCancelled
        models[job.model] = model
        while len(models) > _MODELS_PER_WORKER:
            models.popitem(last=False)
        return model

    @staticmethod
    def _tile_callback(job: Job) -> Any:
        def on_tile(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            job.touch(tiles_done=done, tiles_total=total)

        job.tiles_started = time.monotonic()
        return on_tile

    @staticmethod
    def _one_line(job: Job, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text.replace(str(job.input_path), job.filename).replace(str(job.folder), "")

    def _finish(self, job: Job, state: str, error: str | None) -> None:
        if state != "done":
            job.output_path.unlink(missing_ok=True)
        elif job.started is not None:
            self.durations.append(time.time() - job.started)
        job.touch(state=state, phase=state, error=error, finished=time.time())

    # -- cleaning up ----------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Delete finished jobs older than ``keep_s``; how many went."""
        cutoff = time.time() - self.keep_s
        with self.cond:
            old = [j for j in self.jobs.values() if j.state in FINISHED and (j.finished or 0) < cutoff]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
        return len(old)

    def _sweep_loop(self) -> None:
        period = min(max(self.keep_s / 4, 0.2), 30.0)
        while not self.closing:
            time.sleep(period)
            self.sweep()

    def close(self, timeout_s: float = 10.0) -> None:
        """Cancel everything, wait for the workers, delete the work folder."""
        with self.cond:
            self.closing = True
            for job in list(self.pending):
                self._finish(job, "cancelled", None)
            self.pending.clear()
            for job in self.jobs.values():
                job.cancel.set()
            self.cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for t in self.workers:
            t.join(max(0.0, deadline - time.monotonic()))
        shutil.rmtree(self.workdir, ignore_errors=True)
