"""`swinir serve`: a real server process on 127.0.0.1 (a free port), real HTTP requests, built-in models."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

from swinir import zoo  # noqa: E402
from test_zoo import SMALL_X2, STANDIN, ZooServer, small_checkpoint, zoo_server  # noqa: E402, F401  (fixtures)

SRC = str(Path(__file__).resolve().parents[1] / "src")


class ServeProcess:
    """`python -m swinir serve --port 0 ...` in a child process with its own TMPDIR; stopped with SIGINT."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        full_env.update(env or {})
        cmd = [sys.executable, "-m", "swinir", "serve", "--port", "0", "--device", "cpu", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
        self.first_line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "open http://" not in self.first_line:
            self.proc.kill()
            rest = self.proc.stdout.read() if self.proc.stdout else ""
            raise RuntimeError(f"server did not start: {self.first_line}{rest}")
        self.url = self.first_line.split("open ", 1)[1].split()[0].split("?")[0].rstrip("/")

    def api(self, path: str) -> str:
        return self.url + path

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kb / 1024

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    srv = ServeProcess(tmp_path_factory.mktemp("serve"), "--models", "builtin-x2,builtin-x4,builtin-denoise")
    yield srv
    srv.stop()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.kron(rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)), np.ones((4, 4, 1)))[:h, :w]
    return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


def submit(srv: ServeProcess, files: list[tuple[str, bytes]], **form: object) -> requests.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return requests.post(srv.api("/api/jobs"), files=parts, data={k: str(v) for k, v in form.items()}, timeout=60)


def wait_done(srv: ServeProcess, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = requests.get(srv.api(f"/api/jobs/{job_id}"), timeout=10).json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {job}")


def cli_restore(src: Path, outdir: Path, model: str, args: list[str]) -> Path:
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "swinir", "restore", str(src), "-o", str(outdir), "--model", model, "--device", "cpu"]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (out,) = outdir.iterdir()
    return out


# -- endpoints --------------------------------------------------------------------------------------------


def test_models_list_builtins_first_with_task_scale_and_cache_state(server: ServeProcess) -> None:
    body = requests.get(server.api("/api/models"), timeout=10).json()
    names = [m["name"] for m in body["models"]]
    assert names == ["builtin-x4", "builtin-x2", "builtin-denoise"]  # the zoo's order, filtered by --models
    x2 = body["models"][1]
    assert (x2["task"], x2["scale"], x2["builtin"], x2["cached"]) == ("lightweight_sr", 2, True, True)
    assert x2["description"] and body["default"] == "builtin-x4"


def test_all_released_models_are_listed_after_the_builtins(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, env={"SWINIR_CACHE": str(tmp_path / "empty-cache")})
    try:
        models = requests.get(srv.api("/api/models"), timeout=10).json()["models"]
    finally:
        srv.stop()
    builtin = [m["builtin"] for m in models]
    assert builtin == sorted(builtin, reverse=True) and builtin.count(True) == 3
    released = [m for m in models if not m["builtin"]]
    assert len(released) >= 27 and not any(m["cached"] for m in released)
    assert {m["task"] for m in released} >= {"classical_sr", "lightweight_sr", "real_sr", "denoise", "jpeg"}


def test_openapi_schema_describes_every_endpoint(server: ServeProcess) -> None:
    schema = requests.get(server.api("/openapi.json"), timeout=10).json()
    paths = schema["paths"]
    assert set(paths["/api/jobs"]) == {"get", "post"}
    assert set(paths["/api/jobs/{job_id}"]) == {"get", "delete"}
    for p in ("/api/models", "/api/limits", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/result"):
        assert "get" in paths[p]
    form = json.dumps(paths["/api/jobs"]["post"]["requestBody"])
    for option in ("tile", "overlap", "ensemble", "precision", "outscale", "format", "quality", "model"):
        assert option in form or option in json.dumps(schema["components"])


def test_page_and_its_assets_are_served(server: ServeProcess) -> None:
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower() and "/static/app.js" in page.text
    js = requests.get(server.api("/static/app.js"), timeout=10)
    assert js.status_code == 200 and "EventSource" in js.text
    assert requests.get(server.api("/static/..%2f..%2fapp.py"), timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("builtin-x2", {"tile": 16, "overlap": 8}),  # 2x2 tiles blended
        ("builtin-x4", {"tile": 0, "outscale": 1.5, "format": "jpg", "quality": 90}),
        ("builtin-denoise", {"format": "same", "ensemble": "true"}),
    ],
)
def test_result_is_byte_identical_to_the_cli(server: ServeProcess, tmp_path: Path, model: str, options: dict) -> None:
    from swinir.serve.restore_call import JobOptions

    data = png_bytes(noise_image(16, 20))
    job = submit(server, [("photo.png", data)], model=model, **options).json()["jobs"][0]
    assert job["state"] in ("queued", "running") and len(job["id"]) == 36
    done = wait_done(server, job["id"])
    assert done["state"] == "done", done
    got = requests.get(server.api(f"/api/jobs/{job['id']}/result"), timeout=10)
    assert got.status_code == 200

    src = tmp_path / "photo.png"
    src.write_bytes(data)
    opts = JobOptions(**{**done["options"]})
    want = cli_restore(src, tmp_path / "cli", model, opts.cli_args())
    assert got.content == want.read_bytes()
    assert want.name in got.headers["content-disposition"]
    out = Image.open(io.BytesIO(got.content))
    assert out.size == (done["output"]["width"], done["output"]["height"])
    # the job says what ran: the default auto, resolved as `swinir restore` resolves it for this model
    import swinir
    from swinir.precision import choose

    assert opts.precision == "auto" and done["precision"] == choose("auto", swinir.load(model, device="cpu")).describe()


def test_several_images_in_one_request_make_one_job_each(server: ServeProcess) -> None:
    files = [(f"img{i}.png", png_bytes(noise_image(16, 16, seed=i))) for i in range(3)]
    jobs = submit(server, files, model="builtin-x2").json()["jobs"]
    assert [j["filename"] for j in jobs] == ["img0.png", "img1.png", "img2.png"]
    assert len({j["id"] for j in jobs}) == 3
    results = [wait_done(server, j["id"]) for j in jobs]
    assert all(r["state"] == "done" for r in results)
    listed = {j["id"] for j in requests.get(server.api("/api/jobs"), timeout=10).json()["jobs"]}
    assert {j["id"] for j in jobs} <= listed
    original = requests.get(server.api(f"/api/jobs/{jobs[1]['id']}/input"), timeout=10)
    assert original.content == files[1][1]


def test_events_stream_tile_progress_until_done(server: ServeProcess) -> None:
    job = submit(server, [("big.png", png_bytes(noise_image(64, 64)))], model="builtin-x2", tile=16, overlap=8)
    job_id = job.json()["jobs"][0]["id"]
    states = []
    with requests.get(server.api(f"/api/jobs/{job_id}/events"), stream=True, timeout=120) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                states.append(json.loads(line[6:]))
    assert states[-1]["state"] == "done"
    progress = [s["progress"] for s in states if s["progress"]["tiles_total"]]
    assert progress[-1]["tiles_done"] == progress[-1]["tiles_total"] == 49  # tiles of 16 every 8 px: 7x7 in 64
    done_counts = [p["tiles_done"] for p in progress]
    assert done_counts == sorted(done_counts) and len(set(done_counts)) > 1


# -- errors -------------------------------------------------------------------------------------------------


def _bomb_png(width: int, height: int) -> bytes:
    """A real decompression bomb: a valid gray PNG of zeros, a few KB that decode to width*height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * ((width + 1) * height), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "form", "status", "words"),
    [
        ([("notes.png", b"hello, this is text")], {}, 415, "not an image"),
        ([("cut.png", png_bytes(noise_image(32, 32))[:300])], {}, 422, "truncated"),
        ([("bomb.png", _bomb_png(6000, 6000))], {}, 413, "pixels"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"model": "nonesuch"}, 422, "unknown model"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"model": "classical-x4"}, 422, "unknown model"),  # not offered
        ([("x.png", png_bytes(noise_image(8, 8)))], {"tile": -1}, 422, "tile must be >= 0"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"tile": "big"}, 422, "tile"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"precision": "fp64"}, 422, "precision"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"format": "gif"}, 422, "format"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"tile": 16, "overlap": 16}, 422, "overlap"),
        ([("x.png", png_bytes(noise_image(8, 8)))], {"outscale": 100}, 422, "outscale"),
        ([("x.png", _gif_bytes())], {}, 415, "GIF images are not supported"),  # the content decides
    ],
)
def test_bad_requests_get_a_clear_4xx(server: ServeProcess, files: list, form: dict, status: int, words: str) -> None:
    before = len(requests.get(server.api("/api/jobs"), timeout=10).json()["jobs"])
    resp = submit(server, files, **form)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error
    assert len(requests.get(server.api("/api/jobs"), timeout=10).json()["jobs"]) == before  # nothing queued


def test_bad_files_among_good_ones_are_reported_and_the_good_ones_run(server: ServeProcess) -> None:
    files = [
        ("a.png", png_bytes(noise_image(12, 12, seed=1))),
        ("notes.png", b"hello, this is text"),
        ("b.png", png_bytes(noise_image(12, 16, seed=2))),
        ("cut.png", png_bytes(noise_image(32, 32))[:300]),
    ]
    resp = submit(server, files, model="builtin-x2")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [j["filename"] for j in body["jobs"]] == ["a.png", "b.png"]
    refused = body["refused"]
    assert [(r["index"], r["filename"], r["status"]) for r in refused] == [(1, "notes.png", 415), (3, "cut.png", 422)]
    assert "not an image" in refused[0]["error"] and "truncated" in refused[1]["error"]
    assert all(wait_done(server, j["id"])["state"] == "done" for j in body["jobs"])


def test_when_every_file_is_refused_the_error_names_each(server: ServeProcess) -> None:
    before = len(requests.get(server.api("/api/jobs"), timeout=10).json()["jobs"])
    resp = submit(server, [("notes.png", b"hello, this is text"), ("bomb.png", _bomb_png(6000, 6000))])
    assert resp.status_code == 422  # two different reasons (415, 413)
    body = resp.json()
    assert "notes.png: not an image" in body["error"] and "bomb.png:" in body["error"] and "\n" not in body["error"]
    assert [(r["index"], r["status"]) for r in body["refused"]] == [(0, 415), (1, 413)]
    assert len(requests.get(server.api("/api/jobs"), timeout=10).json()["jobs"]) == before


def _exif_rotated_jpeg(h: int, w: int) -> bytes:
    """A JPEG stored h x w whose EXIF says "rotate 90 degrees clockwise" (orientation 6): shown w x h."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(noise_image(h, w)).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["tiff16", "tiff8-gray", "exif-rotated-jpeg", "png-alpha"])
def test_every_input_has_a_png_preview_as_the_restore_reads_it(server: ServeProcess, tmp_path: Path, kind: str) -> None:
    from swinir.io import read_image, to_8bit, write_image

    src = tmp_path / f"in-{kind}"
    if kind == "tiff16":
        rgb16 = noise_image(14, 18).astype(np.uint16) * 256 + np.arange(18, dtype=np.uint16)[:, None]
        src = write_image(src.with_suffix(".tif"), rgb16)
    elif kind == "tiff8-gray":
        src = write_image(src.with_suffix(".tif"), noise_image(14, 18)[..., 0])
    elif kind == "exif-rotated-jpeg":
        src = src.with_suffix(".jpg")
        src.write_bytes(_exif_rotated_jpeg(14, 18))
    else:
        rgba = np.dstack([noise_image(14, 18), np.linspace(0, 255, 14 * 18).reshape(14, 18).astype(np.uint8)])
        src = src.with_suffix(".png")
        src.write_bytes(png_bytes(rgba))
    want = read_image(src)
    job = submit(server, [(src.name, src.read_bytes())], model="builtin-x2").json()["jobs"][0]
    assert (job["input"]["width"], job["input"]["height"]) == (want.width, want.height)  # upright, as restored
    assert (job["output"]["width"], job["output"]["height"]) == (2 * want.width, 2 * want.height)

    got = requests.get(server.api(f"/api/jobs/{job['id']}/preview"), timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    preview = Image.open(io.BytesIO(got.content))
    assert preview.format == "PNG" and preview.size == (want.width, want.height)
    pixels = np.asarray(preview)
    assert pixels.dtype == np.uint8
    if want.alpha is not None:
        assert np.array_equal(pixels[..., -1], to_8bit(want.alpha))
        pixels = pixels[..., :-1]
    assert np.array_equal(pixels.squeeze(), to_8bit(want.array))
    done = wait_done(server, job["id"])
    assert done["state"] == "done"
    result = Image.open(io.BytesIO(requests.get(server.api(f"/api/jobs/{job['id']}/result"), timeout=10).content))
    assert result.size == (done["output"]["width"], done["output"]["height"])  # what the page lays out


def test_the_page_has_a_favicon(server: ServeProcess) -> None:
    page = requests.get(server.url + "/", timeout=10).text
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    for path in ("/static/favicon.svg", "/favicon.ico"):
        icon = requests.get(server.api(path), timeout=10)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.lstrip().startswith("<svg")


def test_pillows_own_bomb_guard_is_also_a_413(server: ServeProcess) -> None:
    resp = submit(server, [("huge.png", _bomb_png(20000, 10000))])  # 200 MP: past Pillow's own limit
    assert resp.status_code == 413 and "decompression bomb" in resp.json()["error"]


def test_no_request_names_a_server_path_or_guesses_a_job(server: ServeProcess) -> None:
    for path in ("/api/jobs/../../etc/passwd", "/api/jobs/%2e%2e%2fetc%2fpasswd/result", "/api/jobs/1/result"):
        resp = requests.get(server.api(path), timeout=10)
        assert resp.status_code == 404
    resp = submit(server, [("x.png", png_bytes(noise_image(8, 8)))], model="/etc/passwd")
    assert resp.status_code == 422


def test_limits_upload_input_and_output_pixels(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--max-upload-mb", "0.01", "--max-input-mp", "0.002", "--max-output-mp", "0.01")
    try:
        limits = requests.get(srv.api("/api/limits"), timeout=10).json()
        assert limits["max_input_pixels"] == 2000 and limits["queue_size"] == 8
        big = png_bytes(np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))  # ~19 KB
        resp = submit(srv, [("big.png", big)], model="builtin-x2")
        assert resp.status_code == 413 and "upload limit" in resp.json()["error"]
        resp = submit(srv, [("wide.png", png_bytes(noise_image(40, 60)))], model="builtin-x2")  # 2400 px
        assert resp.status_code == 413 and "input limit" in resp.json()["error"]
        resp = submit(srv, [("ok.png", png_bytes(noise_image(40, 40)))], model="builtin-x4")  # 160x160 out
        assert resp.status_code == 413 and "output limit" in resp.json()["error"]
        resp = submit(srv, [("ok.png", png_bytes(noise_image(40, 40)))], model="builtin-x4", outscale=2)
        assert resp.status_code == 202
        # in one request, a file over a limit is refused alone
        resp = submit(srv, [("big.png", big), ("ok.png", png_bytes(noise_image(20, 20)))], model="builtin-x2")
        assert resp.status_code == 202 and [j["filename"] for j in resp.json()["jobs"]] == ["ok.png"]
        (refused,) = resp.json()["refused"]
        assert (refused["index"], refused["status"]) == (0, 413) and "upload limit" in refused["error"]
    finally:
        srv.stop()


def test_a_full_queue_answers_429_and_loses_nothing(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--queue", "2", "--models", "builtin-x4")
    try:
        slow = png_bytes(noise_image(64, 64))
        first = submit(srv, [("a.png", slow)], tile=16, overlap=8, ensemble="true").json()["jobs"][0]
        deadline = time.monotonic() + 60
        while requests.get(srv.api(f"/api/jobs/{first['id']}"), timeout=10).json()["state"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        queued = [submit(srv, [(f"q{i}.png", png_bytes(noise_image(8, 8)))]).json()["jobs"][0] for i in range(2)]
        full = submit(srv, [("late.png", png_bytes(noise_image(8, 8)))])
        assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
        assert "queue is full" in full.json()["error"]
        two = submit(srv, [("a.png", slow), ("b.png", slow)])
        assert two.status_code == 429  # all or nothing
        requests.delete(srv.api(f"/api/jobs/{first['id']}"), timeout=10)
        assert all(wait_done(srv, j["id"])["state"] == "done" for j in queued)
        assert len(requests.get(srv.api("/api/jobs"), timeout=10).json()["jobs"]) == 3
    finally:
        srv.stop()


def test_cancel_a_queued_and_a_running_job(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--models", "builtin-x4")
    try:
        running = submit(srv, [("a.png", png_bytes(noise_image(64, 64)))], tile=16, overlap=8, ensemble="true")
        queued = submit(srv, [("b.png", png_bytes(noise_image(8, 8)))])
        run_id, queued_id = running.json()["jobs"][0]["id"], queued.json()["jobs"][0]["id"]
        assert requests.delete(srv.api(f"/api/jobs/{queued_id}"), timeout=10).json()["state"] == "cancelled"
        deadline = time.monotonic() + 60
        while requests.get(srv.api(f"/api/jobs/{run_id}"), timeout=10).json()["progress"]["tiles_done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        requests.delete(srv.api(f"/api/jobs/{run_id}"), timeout=10)
        job = wait_done(srv, run_id)
        assert job["state"] == "cancelled" and job["progress"]["tiles_done"] < job["progress"]["tiles_total"]
        resp = requests.get(srv.api(f"/api/jobs/{run_id}/result"), timeout=10)
        assert resp.status_code == 409 and "cancelled" in resp.json()["error"]
        # the worker goes on with the next job
        after = submit(srv, [("c.png", png_bytes(noise_image(8, 8)))]).json()["jobs"][0]
        assert wait_done(srv, after["id"])["state"] == "done"
    finally:
        srv.stop()
    assert not list(tmp_path.glob("swinir-serve-*"))  # stopping deleted the work folder


def test_results_expire_after_keep_and_the_work_folder_goes_with_the_server(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--keep", "0.5", "--models", "builtin-x2")
    try:
        job = submit(srv, [("a.png", png_bytes(noise_image(8, 8)))]).json()["jobs"][0]
        assert wait_done(srv, job["id"])["state"] == "done"
        (work,) = tmp_path.glob("swinir-serve-*")
        deadline = time.monotonic() + 20
        while requests.get(srv.api(f"/api/jobs/{job['id']}"), timeout=10).status_code != 404:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the sweep drops the record first (no request can reach the files any more), then deletes them
        while list(work.iterdir()):
            assert time.monotonic() < deadline, list(work.iterdir())
            time.sleep(0.05)
    finally:
        assert srv.stop() in (0, 130)
    assert not list(tmp_path.glob("swinir-serve-*"))


# -- token and binding ------------------------------------------------------------------------------------


def test_a_token_is_required_on_every_request(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--token", "s3cret", "--models", "builtin-x2")
    try:
        assert "?token=s3cret" in srv.first_line
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            for path in ("/", "/api/models", "/openapi.json"):
                resp = requests.get(srv.api(path), headers=headers, timeout=10)
                assert resp.status_code == 401 and "token" in resp.json()["error"]
        resp = requests.post(srv.api("/api/jobs"), files=[("files", ("a.png", png_bytes(noise_image(8, 8))))])
        assert resp.status_code == 401
        ok = requests.get(srv.api("/api/models"), headers={"Authorization": "Bearer s3cret"}, timeout=10)
        assert ok.status_code == 200
        page = requests.get(srv.url + "/?token=s3cret", timeout=10)  # the printed URL: sets a cookie for the page
        assert page.status_code == 200 and page.cookies.get("swinir_token") == "s3cret"
    finally:
        srv.stop()


def test_binding_beyond_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("SWINIR_TOKEN", None)
    cmd = [sys.executable, "-m", "swinir", "serve", "--host", "0.0.0.0", "--port", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: refusing to bind 0.0.0.0") and "--token" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_device_refuses_to_start() -> None:
    cmd = [sys.executable, "-m", "swinir", "serve", "--port", "0", "--device", "gpu9"]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: --device gpu9:") and "Traceback" not in done.stderr


# -- released models --------------------------------------------------------------------------------------


def test_a_released_model_downloads_on_first_use_with_progress(
    zoo_server: ZooServer, small_checkpoint: tuple, tmp_path: Path
) -> None:
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, small_checkpoint[1])
    srv = ServeProcess(tmp_path / "srv", "--models", STANDIN)  # inherits $SWINIR_CACHE and the zoo URL
    try:
        (listed,) = requests.get(srv.api("/api/models"), timeout=10).json()["models"]
        assert listed["name"] == STANDIN and not listed["cached"]
        job = submit(srv, [("a.png", png_bytes(noise_image(8, 8)))], model=STANDIN).json()["jobs"][0]
        seen = []
        with requests.get(srv.api(f"/api/jobs/{job['id']}/events"), stream=True, timeout=120) as resp:
            for line in resp.iter_lines(decode_unicode=True):
                if line and line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
        assert seen[-1]["state"] == "done", seen[-1]
        size = len(small_checkpoint[1])
        assert seen[-1]["download"] == {"bytes_done": size, "bytes_total": size}
        assert any(s["phase"] == "downloading model" for s in seen) or seen[-1]["download"]["bytes_done"] == size
        assert (tmp_path / "cache" / entry.filename).read_bytes() == small_checkpoint[1]
        assert requests.get(srv.api("/api/models"), timeout=10).json()["models"][0]["cached"]
        assert len(zoo_server.requests) == 1
    finally:
        srv.stop()


def test_offline_a_released_model_fails_with_the_clis_message(tmp_path: Path) -> None:
    env = {"SWINIR_CACHE": str(tmp_path / "cache"), zoo.URL_ENV: "http://127.0.0.1:9/release"}
    srv = ServeProcess(tmp_path / "srv", "--models", "classical-x2", env=env)
    try:
        job = submit(srv, [("a.png", png_bytes(noise_image(8, 8)))], model="classical-x2").json()["jobs"][0]
        failed = wait_done(srv, job["id"])
    finally:
        srv.stop()
    dest = tmp_path / "cache" / zoo.get("classical-x2").filename
    assert failed["state"] == "failed"
    assert failed["error"].startswith("could not download classical-x2 from http://127.0.0.1:9/release/")
    assert f"put it at {dest}" in failed["error"]
    (tmp_path / "x.png").write_bytes(png_bytes(noise_image(8, 8)))
    cli = subprocess.run(
        [sys.executable, "-m", "swinir", "restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]
        + ["--model", "classical-x2"],
        env={**os.environ, **env, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed["error"] in cli.stderr


def test_a_hat_model_needs_its_file_put_into_the_cache(tmp_path: Path) -> None:
    """HAT's files have no direct download: the list says so, a job fails with where to get the file and
    where to put it (the CLI's words), and once the file is there the same job runs."""
    import torch

    from swinir.model.hat import HAT

    cache = tmp_path / "cache"
    env = {"SWINIR_CACHE": str(cache), zoo.URL_ENV: ""}
    srv = ServeProcess(tmp_path / "srv", "--models", "hat-classical-x2", env=env)
    dest = cache / "HAT_SRx2.pth"
    try:
        (listed,) = requests.get(srv.api("/api/models"), timeout=10).json()["models"]
        assert (listed["name"], listed["cached"], listed["downloadable"]) == ("hat-classical-x2", False, False)
        assert (listed["filename"], listed["page"], listed["family"]) == ("HAT_SRx2.pth", zoo.HAT_PAGE, "HAT")
        image = [("a.png", png_bytes(noise_image(8, 8)))]
        failed = wait_done(srv, submit(srv, image, model="hat-classical-x2").json()["jobs"][0]["id"])
        assert failed["state"] == "failed"
        assert failed["error"].startswith(
            f"hat-classical-x2 (HAT_SRx2.pth) has no direct download: get it from {zoo.HAT_PAGE}"
        )
        assert f"put it at {dest}" in failed["error"] and not cache.exists()
        torch.manual_seed(0)  # the released width and window (a cached file is checked against them), one block
        model = HAT(upscale=2, embed_dim=180, depths=[1], num_heads=[6], window_size=16, img_size=32, mlp_ratio=2)
        cache.mkdir()
        torch.save({"params_ema": model.state_dict()}, dest)
        done = wait_done(srv, submit(srv, image, model="hat-classical-x2").json()["jobs"][0]["id"])
        assert done["state"] == "done", done
        assert requests.get(srv.api("/api/models"), timeout=10).json()["models"][0]["cached"]
    finally:
        srv.stop()
