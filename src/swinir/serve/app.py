"""The ASGI app: the HTTP API (described at /openapi.json) and the page, on FastAPI.

Every error is JSON ``{"error": "<one line>"}`` with a 4xx status. Job ids are uuid4; no request names a
server path (models are zoo names, results are looked up by job id).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from swinir import zoo
from swinir.serve.jobs import FINISHED, Job, JobQueue
from swinir.serve.limits import Limits, UploadRefused, check_output_size, inspect_upload
from swinir.serve.restore_call import JobOptions, output_size
from swinir.spec import TITLES

TOKEN_COOKIE = "swinir_token"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


@dataclass
class ServeConfig:
    """What `swinir serve` was started with."""

    devices: list[str | None] = field(default_factory=lambda: [None])
    models: list[str] | None = None  # zoo names offered; None = all
    token: str | None = None
    queue_size: int = 8
    workers_per_device: int = 1
    keep_s: float = 3600.0
    limits: Limits = field(default_factory=Limits)
    default_model: str = "builtin-x4"


def offered_models(config: ServeConfig) -> list[zoo.ZooEntry]:
    """Built-ins first, then released ones (the zoo's order: SwinIR's, then Swin2SR's), filtered by --models."""
    entries = zoo.list_entries()
    if config.models is None:
        return entries
    wanted = {zoo.get(name).name for name in config.models}
    return [e for e in entries if e.name in wanted]


def _model_dict(entry: zoo.ZooEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "task": entry.task,
        "scale": entry.scale,
        "level": entry.level,
        "color": entry.color,
        "description": entry.description,
        "builtin": entry.builtin,
        "cached": zoo.is_cached(entry),
        "architecture": entry.architecture,
        "family": TITLES.get(entry.architecture, entry.architecture),
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


def create_app(config: ServeConfig, queue: JobQueue) -> FastAPI:
    app = FastAPI(
        title="swinir serve",
        summary="Restore images with SwinIR models: submit jobs, follow their progress, fetch the results.",
        version="1",
        docs_url=None,  # the interactive docs load from a CDN; the schema itself is at /openapi.json
        redoc_url=None,
    )
    offered = {e.name for e in offered_models(config)}
    _add_guards(app, config)
    _add_page(app)

    @app.get("/api/models", summary="The models offered: built-ins first, then released ones")
    def list_models() -> dict[str, Any]:
        return {"default": config.default_model, "models": [_model_dict(e) for e in offered_models(config)]}

    @app.get("/api/limits", summary="Upload, pixel and queue limits")
    def limits() -> dict[str, Any]:
        return {**config.limits.to_dict(), "queue_size": queue.capacity, "keep_s": queue.keep_s}

    @app.post("/api/jobs", status_code=202, summary="Submit one image or several (one job each)")
    async def submit(
        files: Annotated[list[UploadFile], File(description="images: PNG, JPEG, WebP, TIFF or BMP")],
        model: Annotated[str, Form()] = config.default_model,
        tile: Annotated[int, Form(description="tile side in input pixels; 0 = whole image")] = 512,
        overlap: Annotated[int, Form()] = 32,
        ensemble: Annotated[bool, Form()] = False,
        precision: Annotated[str, Form(description="fp32, bf16 or fp16")] = "fp32",
        outscale: Annotated[float | None, Form(description="final size as a factor of the input's")] = None,
        format: Annotated[str, Form(description="png, jpg, webp, tif, bmp or same")] = "png",
        quality: Annotated[int, Form(description="JPEG/WebP quality")] = 95,
    ) -> dict[str, Any]:
        options = JobOptions(tile, overlap, ensemble, precision, outscale, format, quality)
        name = _check_request(config, offered, model, options, len(files))
        cap = config.limits.max_upload_bytes
        received = [(f.filename or "", await _read_capped(f, cap)) for f in files]
        # decoding checks and file writes run off the event loop, so progress streams keep flowing
        jobs = await run_in_threadpool(_accept, config.limits, queue, name, options, received)
        return {"jobs": [j.to_dict() for j in jobs]}

    @app.get("/api/jobs", summary="All jobs still kept, oldest first")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in queue.list()]}

    @app.get("/api/jobs/{job_id}", summary="A job's state and progress")
    def status(job_id: str) -> dict[str, Any]:
        return _job(queue, job_id).to_dict()

    @app.get("/api/jobs/{job_id}/events", summary="Server-Sent Events: the job's state at each change")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        job = _job(queue, job_id)
        return StreamingResponse(_event_stream(job, request), media_type="text/event-stream")

    @app.get("/api/jobs/{job_id}/result", summary="The restored image, once the job is done")
    def result(job_id: str) -> FileResponse:
        job = _job(queue, job_id)
        if job.state != "done":
            raise UploadRefused(409, f"job {job_id} is {job.state}, there is no result" + _why(job))
        return FileResponse(job.output_path, filename=job.result_name)

    @app.get("/api/jobs/{job_id}/input", summary="The uploaded image, as received")
    def original(job_id: str) -> FileResponse:
        job = _job(queue, job_id)
        return FileResponse(job.input_path, filename=job.filename)

    @app.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job")
    def cancel(job_id: str) -> dict[str, Any]:
        return queue.cancel(_job(queue, job_id)).to_dict()

    return app


def _accept(
    limits: Limits, queue: JobQueue, model: str, options: JobOptions, received: list[tuple[str, bytes]]
) -> list[Job]:
    uploads = [inspect_upload(name, data, limits) for name, data in received]
    scale = zoo.get(model).scale
    sizes = [check_output_size(up, output_size(options, up.height, up.width, scale), limits) for up in uploads]
    return queue.submit(model, options, uploads, sizes)


def _why(job: Job) -> str:
    return f" ({job.error})" if job.error else ""


def _job(queue: JobQueue, job_id: str) -> Job:
    job = queue.get(job_id)
    if job is None:
        raise UploadRefused(404, f"no job {job_id} (unknown, or finished more than {queue.keep_s:g} s ago)")
    return job


def _check_request(config: ServeConfig, offered: set[str], model: str, options: JobOptions, n_files: int) -> str:
    if not zoo.is_known(model) or zoo.get(model).name not in offered:
        raise UploadRefused(422, f"unknown model {model!r}; GET /api/models lists the {len(offered)} offered")
    problems = options.problems()
    if problems:
        raise UploadRefused(422, "; ".join(problems))
    if not 1 <= n_files <= config.limits.max_files:
        raise UploadRefused(422, f"send 1 to {config.limits.max_files} files, got {n_files}")
    return zoo.get(model).name


async def _read_capped(upload: UploadFile, cap: int) -> bytes:
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise UploadRefused(413, f"{upload.filename or 'upload'}: over the upload limit of {cap} bytes")
    return data


async def _event_stream(job: Job, request: Request) -> AsyncIterator[str]:
    seen = -1
    idle = 0.0
    while True:
        if job.version != seen:
            seen = job.version
            yield f"data: {json.dumps(job.to_dict())}\n\n"
            idle = 0.0
            if job.state in FINISHED:
                return
        elif idle > 15:  # a comment keeps proxies and the browser from timing out
            yield ": keep-alive\n\n"
            idle = 0.0
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)
        idle += 0.1


def _add_guards(app: FastAPI, config: ServeConfig) -> None:
    @app.exception_handler(UploadRefused)
    async def refused(request: Request, exc: UploadRefused) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "; ".join(parts))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if config.token is not None:
            given = _token_of(request) or ""
            if not hmac.compare_digest(given.encode(), config.token.encode()):
                what = "a wrong token" if given else "no token"
                return _error(401, f"this server needs its token and got {what}: send 'Authorization: Bearer TOKEN'")
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit():
            cap = config.limits.max_upload_bytes * config.limits.max_files + (1 << 20)
            if int(length) > cap:
                return _error(413, f"request of {length} bytes is over the limit of {cap}")
        response: Response = await call_next(request)
        if config.token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict")
        return response


def _add_page(app: FastAPI) -> None:
    static = resources.files("swinir.serve") / "static"

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in STATIC_FILES:
            raise UploadRefused(404, f"no such file {name!r}")
        return Response((static / name).read_bytes(), media_type=STATIC_FILES[name])
