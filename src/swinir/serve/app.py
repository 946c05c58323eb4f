"""The ASGI app: the HTTP API (described at /openapi.json) and the page, on FastAPI.

Every error is JSON ``{"error": "<one line>"}``: the app's own refusals, FastAPI's validation errors and
Starlette's (404, 405, a multipart body it will not parse), and a 500; below the app, ``protocol`` gives
the 400/431 that uvicorn would send as text. Job ids are uuid4; no request names a server path (models
are zoo names, results are looked up by job id). ``hosts`` decides which Host and Origin are served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from swinir import zoo
from swinir.errors import SwinIRError
from swinir.serve.hosts import HostPolicy, site_refusal
from swinir.serve.jobs import FINISHED, Job, JobQueue
from swinir.serve.limits import (
    MAX_HEADER_BYTES,
    Limits,
    Upload,
    UploadRefused,
    check_output_size,
    header_limit_message,
    inspect_upload,
)
from swinir.serve.preview import preview_of
from swinir.serve.restore_call import JobOptions, output_size
from swinir.spec import TITLES

TOKEN_COOKIE = "swinir_token"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}


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
    allowed_hosts: tuple[str, ...] = ()  # --allowed-host: more names the Host header may carry


def offered_models(config: ServeConfig) -> list[zoo.ZooEntry]:
    """Built-ins first, then released ones (the zoo's order: SwinIR's, Swin2SR's, HAT's), filtered by --models."""
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
        # False for files the server cannot fetch itself (HAT's, on Google Drive): the page says so
        "downloadable": entry.builtin or entry.downloadable,
        "filename": entry.filename,
        "page": entry.page,
        "architecture": entry.architecture,
        "family": TITLES.get(entry.architecture, entry.architecture),
    }


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> JSONResponse:
    one_line = " ".join(message.split()) or HTTPStatus(status).phrase
    return JSONResponse({"error": one_line, **(extra or {})}, status_code=status, headers=headers)


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


def create_app(config: ServeConfig, queue: JobQueue, hosts: HostPolicy) -> FastAPI:
    app = FastAPI(
        title="swinir serve",
        summary="Restore images with SwinIR models: submit jobs, follow their progress, fetch the results.",
        version="1",
        docs_url=None,  # the interactive docs load from a CDN; the schema itself is at /openapi.json
        redoc_url=None,
    )
    offered = {e.name for e in offered_models(config)}
    _add_guards(app, config, hosts)
    _add_page(app)

    @app.get("/api/models", summary="The models offered: built-ins first, then released ones")
    def list_models() -> dict[str, Any]:
        return {"default": config.default_model, "models": [_model_dict(e) for e in offered_models(config)]}

    @app.get("/api/limits", summary="Upload, pixel and queue limits")
    def limits() -> dict[str, Any]:
        return {**config.limits.to_dict(), "queue_size": queue.capacity, "keep_s": queue.keep_s}

    @app.post(
        "/api/jobs",
        status_code=202,
        summary="Submit one image or several (one job each)",
        description="Files that are refused (not an image, over a limit) are listed in `refused` with their "
        "index, status and reason; the others are queued. Only when none is accepted is the answer an error.",
    )
    async def submit(
        files: Annotated[list[UploadFile], File(description="images: PNG, JPEG, WebP, TIFF or BMP")],
        model: Annotated[str, Form()] = config.default_model,
        tile: Annotated[int, Form(description="tile side in input pixels; 0 = whole image")] = 512,
        overlap: Annotated[int, Form()] = 32,
        ensemble: Annotated[bool, Form()] = False,
        precision: Annotated[
            str, Form(description="auto (bf16 on a CPU that computes it natively, else fp32), fp32, bf16 or fp16")
        ] = "auto",
        outscale: Annotated[float | None, Form(description="final size as a factor of the input's")] = None,
        format: Annotated[str, Form(description="png, jpg, webp, tif, bmp or same")] = "png",
        quality: Annotated[int, Form(description="JPEG/WebP quality")] = 95,
    ) -> dict[str, Any]:
        options = JobOptions(tile, overlap, ensemble, precision, outscale, format, quality)
        name = _check_request(config, offered, model, options, len(files))
        cap = config.limits.max_upload_bytes
        received = [(f.filename or "", await _read_capped(f, cap)) for f in files]
        # decoding checks and file writes run off the event loop, so progress streams keep flowing
        jobs, refused = await run_in_threadpool(_accept, config.limits, queue, name, options, received)
        return {"jobs": [j.to_dict() for j in jobs], "refused": refused}

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

    @app.get("/api/jobs/{job_id}/preview", summary="The upload as an 8-bit PNG a browser can show (TIFF too)")
    def preview(job_id: str) -> FileResponse:
        job = _job(queue, job_id)
        try:
            path = preview_of(job.input_path)
        except (SwinIRError, OSError) as exc:
            raise UploadRefused(404, f"no preview of job {job_id}: {exc}") from None
        return FileResponse(path, media_type="image/png")

    @app.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job")
    def cancel(job_id: str) -> dict[str, Any]:
        return queue.cancel(_job(queue, job_id)).to_dict()

    return app


def _accept(
    limits: Limits, queue: JobQueue, model: str, options: JobOptions, received: list[tuple[str, bytes | None]]
) -> tuple[list[Job], list[dict[str, Any]]]:
    """Queue the files that pass the checks; the others as ``refused`` entries. None passing: the error."""
    scale = zoo.get(model).scale
    uploads: list[Upload] = []
    sizes: list[tuple[int, int]] = []
    refused: list[dict[str, Any]] = []
    for index, (name, data) in enumerate(received):
        try:
            if data is None:
                raise UploadRefused(
                    413, f"{name or 'upload'}: over the upload limit of {limits.max_upload_bytes} bytes"
                )
            upload = inspect_upload(name, data, limits)
            size = check_output_size(upload, output_size(options, upload.height, upload.width, scale), limits)
        except UploadRefused as exc:
            refused.append({"index": index, "filename": name, "status": exc.status, "error": exc.message})
            continue
        uploads.append(upload)
        sizes.append(size)
    if not uploads:
        statuses = {r["status"] for r in refused}
        status = statuses.pop() if len(statuses) == 1 else 422
        raise UploadRefused(status, "; ".join(r["error"] for r in refused), extra={"refused": refused})
    return queue.submit(model, options, uploads, sizes), refused


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


async def _read_capped(upload: UploadFile, cap: int) -> bytes | None:
    """The file's bytes; None when it is over ``cap``."""
    data = await upload.read(cap + 1)
    return None if len(data) > cap else data


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


def _http_message(request: Request, exc: StarletteHTTPException) -> str:
    path = request.url.path
    if exc.status_code == 404:
        return f"nothing at {path} (the API is described at /openapi.json)"
    if exc.status_code == 405:
        return f"{request.method} is not allowed on {path}; use {', '.join(_methods_of(request))}"
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 400:
        return f"the request body could not be read: {detail}"
    return detail


def _methods_of(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's own Allow names only the first route's)."""
    found: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            found |= route.methods
    return sorted(found)


def _add_guards(app: FastAPI, config: ServeConfig, hosts: HostPolicy) -> None:
    @app.exception_handler(UploadRefused)
    async def refused(request: Request, exc: UploadRefused) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers, exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(request))
        return _error(exc.status_code, _http_message(request, exc), headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "; ".join(parts))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        # h11 enforces the limit only on headers that arrive in pieces; the same limit, exactly, here
        header_bytes = sum(len(k) + len(v) + 4 for k, v in request.scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            return _error(431, header_limit_message())
        host = request.headers.get("host")
        why = hosts.host_refusal(host) or hosts.origin_refusal(request.headers.get("origin"), host or "")
        why = why or site_refusal(
            request.method,
            request.url.path,
            request.headers.get("sec-fetch-site"),
            request.headers.get("sec-fetch-mode"),
        )
        if why:
            return _error(403, why)
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

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((static / "favicon.svg").read_bytes(), media_type=STATIC_FILES["favicon.svg"])

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in STATIC_FILES:
            raise UploadRefused(404, f"no such file {name!r}")
        return Response((static / name).read_bytes(), media_type=STATIC_FILES[name])
