"""`swinir serve` against requests a hostile web page or client can make: Host (DNS rebinding), Origin and
Sec-Fetch-Site (cross-site), oversized headers, malformed bodies, and the one error shape for all of them.

Every request goes to a real server process on 127.0.0.1 through http.client or a raw socket, so the test
sets Host and the other headers exactly as a browser or an attacker would.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from test_serve import SRC, ServeProcess, noise_image, png_bytes, wait_done  # noqa: E402

BOUNDARY = "swinirtestboundary"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body)

    def error(self) -> str:
        """The answer's one-line error (asserting the documented shape)."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.headers, self.body[:200])
        body = self.json()
        assert set(body) <= {"error", "refused"} and isinstance(body["error"], str), body
        assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
        return str(body["error"])


def call(
    srv: ServeProcess,
    method: str,
    path: str,
    host: str | None = "default",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """One request with exactly these headers (``host=None``: no Host header at all)."""
    port = int(srv.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{port}" if host == "default" else host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for filename, data in files:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body


def port_of(srv: ServeProcess) -> int:
    return int(srv.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    srv = ServeProcess(tmp_path_factory.mktemp("guard"), "--models", "builtin-x2", "--allowed-host", "photos.lan")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def job_id(server: ServeProcess) -> str:
    headers, body = multipart([("secret.png", png_bytes(noise_image(8, 8)))], {"model": "builtin-x2"})
    answer = call(server, "POST", "/api/jobs", headers=headers, body=body)
    assert answer.status == 202, answer.body
    job = answer.json()["jobs"][0]
    assert wait_done(server, job["id"])["state"] == "done"
    return str(job["id"])


def _job_count(srv: ServeProcess) -> int:
    return len(call(srv, "GET", "/api/jobs").json()["jobs"])


# -- Host -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:{port}",  # DNS rebinding: the attacker's name, resolved to 127.0.0.1
        "attacker.example",
        "localhost.attacker.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "localhost:{other}",  # the right name at another port
        "127.0.0.1:{other}",
        "10.1.2.3:{port}",  # an address this loopback server is not bound to
        "localhost.:{port}",
        "",
    ],
)
def test_a_host_that_does_not_name_this_server_is_refused_on_every_route(
    server: ServeProcess, job_id: str, host: str
) -> None:
    port = port_of(server)
    value = host.format(port=port, other=port + 1 if port < 65535 else port - 1)
    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job_id}"),
        ("GET", f"/api/jobs/{job_id}/input"),
        ("GET", f"/api/jobs/{job_id}/result"),
        ("GET", f"/api/jobs/{job_id}/preview"),
        ("GET", "/"),
        ("GET", "/api/models"),
        ("DELETE", f"/api/jobs/{job_id}"),
    ]:
        answer = call(server, method, path, host=value)
        assert answer.status == 403, (method, path, answer.body[:200])
        error = answer.error()
        assert "Host" in error and "--allowed-host" in error
        assert job_id.encode() not in answer.body  # nothing of the jobs leaks
    headers, body = multipart([("x.png", png_bytes(noise_image(8, 8)))], {"model": "builtin-x2"})
    before = _job_count(server)
    assert call(server, "POST", "/api/jobs", host=value, headers=headers, body=body).status == 403
    assert _job_count(server) == before


def test_a_request_without_a_host_header_is_refused(server: ServeProcess, job_id: str) -> None:
    raw = _raw_exchange(port_of(server), b"GET /api/jobs HTTP/1.0\r\n\r\n")  # HTTP/1.1 requires Host
    status, _, body = _parse(raw)
    assert status == 403 and "without a Host" in json.loads(body)["error"] and job_id.encode() not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}"])
def test_the_loopback_names_with_the_port_are_served(server: ServeProcess, job_id: str, host: str) -> None:
    answer = call(server, "GET", f"/api/jobs/{job_id}/input", host=host.format(port=port_of(server)))
    assert answer.status == 200 and answer.body.startswith(b"\x89PNG")


@pytest.mark.parametrize("host", ["photos.lan", "photos.lan:{port}", "photos.lan:443", "PHOTOS.LAN:8080"])
def test_allowed_host_adds_a_name_at_any_port(server: ServeProcess, host: str) -> None:
    answer = call(server, "GET", "/api/jobs", host=host.format(port=port_of(server)))
    assert answer.status == 200 and "jobs" in answer.json()


def test_allowed_host_with_a_port_takes_only_that_port(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--models", "builtin-x2", "--allowed-host", "box.lan:9443,proxy.lan")
    try:
        assert call(srv, "GET", "/api/models", host="box.lan:9443").status == 200
        assert call(srv, "GET", "/api/models", host="box.lan:9444").status == 403
        assert call(srv, "GET", "/api/models", host="box.lan").status == 403
        assert call(srv, "GET", "/api/models", host="proxy.lan:1234").status == 200
        assert call(srv, "GET", "/api/models", host="photos.lan").status == 403
    finally:
        srv.stop()


def test_all_interfaces_with_a_token_take_ip_addresses_and_listed_names_only(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, "--host", "0.0.0.0", "--token", "s3cret", "--models", "builtin-x2")
    try:
        port = port_of(srv)
        auth = {"Authorization": "Bearer s3cret"}
        for host in (f"127.0.0.1:{port}", f"192.0.2.7:{port}", f"[2001:db8::1]:{port}", f"localhost:{port}"):
            assert call(srv, "GET", "/api/models", host=host, headers=auth).status == 200, host
        # a name is refused even with the token: a rebound page must not reach even the token check
        answer = call(srv, "GET", "/api/models", host=f"mybox.example:{port}", headers=auth)
        assert answer.status == 403 and "--allowed-host mybox.example" in answer.error()
        assert call(srv, "GET", "/api/models", host=f"192.0.2.7:{port + 1}", headers=auth).status == 403
        assert call(srv, "GET", "/api/models", host=f"192.0.2.7:{port}").status == 401  # the token still counts
    finally:
        srv.stop()


def test_a_bad_allowed_host_value_is_one_line() -> None:
    cmd = [sys.executable, "-m", "swinir", "serve", "--port", "0", "--allowed-host", "http://x/y"]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: --allowed-host 'http://x/y'")
    assert "Traceback" not in done.stderr


# -- Origin and Sec-Fetch-Site ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://evil.example",
        "null",  # a sandboxed frame, a file: page, a redirect
        "http://localhost:{other}",  # another local app: same site, another origin
        "http://127.0.0.1:{other}",
        "http://127.0.0.1:{port}.evil.example",
        "http://attacker.example:{port}",
        "ftp://127.0.0.1:{port}",
        "garbage",
    ],
)
def test_a_foreign_origin_is_refused_on_writes_and_reads(server: ServeProcess, job_id: str, origin: str) -> None:
    port = port_of(server)
    value = origin.format(port=port, other=port + 1 if port < 65535 else port - 1)
    headers, body = multipart([("x.png", png_bytes(noise_image(8, 8)))], {"model": "builtin-x2"})
    before = _job_count(server)
    answer = call(server, "POST", "/api/jobs", headers={**headers, "Origin": value}, body=body)
    assert answer.status == 403 and "Origin" in answer.error()
    assert _job_count(server) == before  # nothing queued
    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job_id}/input"),
        ("GET", f"/api/jobs/{job_id}/result"),
        ("GET", f"/api/jobs/{job_id}/events"),
        ("DELETE", f"/api/jobs/{job_id}"),
        ("OPTIONS", "/api/jobs"),  # a CORS preflight
    ]:
        answer = call(server, method, path, headers={"Origin": value})
        assert answer.status == 403, (method, path, answer.body[:200])
        assert job_id.encode() not in answer.body
    assert call(server, "GET", f"/api/jobs/{job_id}").json()["state"] == "done"  # the DELETE did nothing


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}", "http://photos.lan"])
def test_the_servers_own_origin_may_submit(server: ServeProcess, origin: str) -> None:
    headers, body = multipart([("x.png", png_bytes(noise_image(8, 8)))], {"model": "builtin-x2"})
    value = origin.format(port=port_of(server))
    answer = call(server, "POST", "/api/jobs", headers={**headers, "Origin": value}, body=body)
    assert answer.status == 202, answer.body
    assert wait_done(server, answer.json()["jobs"][0]["id"])["state"] == "done"


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_cross_site_fetch_without_origin_is_refused(server: ServeProcess, job_id: str, site: str) -> None:
    # <img src="http://127.0.0.1:PORT/api/jobs/ID/input"> on another site: no Origin, but Sec-Fetch-Site
    for mode in ("no-cors", "navigate"):
        answer = call(
            server, "GET", f"/api/jobs/{job_id}/input", headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode}
        )
        assert answer.status == 403 and site in answer.error()
    # a link to the page itself from elsewhere still opens it
    page = call(server, "GET", "/", headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"})
    assert page.status == 200 and b"<html" in page.body.lower()
    assert call(server, "GET", "/", headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors"}).status == 403
    for ok in ("same-origin", "none"):
        answer = call(server, "GET", f"/api/jobs/{job_id}/input", headers={"Sec-Fetch-Site": ok})
        assert answer.status == 200


# -- oversized headers and the error shape ------------------------------------------------------------


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send all of ``request`` on a raw socket, then read the whole answer (until the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_oversized_headers_get_431_with_a_body_not_a_reset(server: ServeProcess, size: int) -> None:
    port = port_of(server)
    request = (
        f"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {'a' * size}\r\n\r\n"
    ).encode()
    status, headers, body = _parse(_raw_exchange(port, request))
    assert status == 431 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "headers" in error and "65536" in error
    # the client the issue used (requests) sees the answer too, not "connection reset by peer"
    resp = requests.get(server.api("/api/models"), headers={"Authorization": "Bearer " + "a" * size}, timeout=30)
    assert resp.status_code == 431 and "over the limit" in resp.json()["error"]
    assert requests.get(server.api("/api/models"), timeout=10).status_code == 200  # the server is fine


def test_headers_just_under_the_limit_are_served(server: ServeProcess) -> None:
    resp = requests.get(server.api("/api/models"), headers={"X-Padding": "a" * 60_000}, timeout=30)
    assert resp.status_code == 200


def test_a_request_that_is_not_http_gets_a_json_400(server: ServeProcess) -> None:
    status, headers, body = _parse(_raw_exchange(port_of(server), b"HELLO THERE \x00\x01\r\n\r\n"))
    assert status == 400 and headers["content-type"] == "application/json"
    assert "invalid HTTP request" in json.loads(body)["error"]


def _many_parts(n: int, as_files: bool) -> tuple[dict[str, str], bytes]:
    if as_files:
        return multipart([(f"a{i}.png", b"x") for i in range(n)])
    return multipart([], {f"f{i}": "x" for i in range(n)})


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "words"),
    [
        ("GET", "/nope", {}, None, 404, "nothing at /nope"),
        ("GET", "/api/jobs/1/nothing/here", {}, None, 404, "openapi.json"),
        ("GET", "/static/missing.js", {}, None, 404, "missing.js"),
        ("PUT", "/api/jobs", {}, None, 405, "PUT is not allowed on /api/jobs; use GET, POST"),
        ("PATCH", "/api/models", {}, None, 405, "use GET"),
        ("POST", "/api/jobs", {"Content-Type": "multipart/form-data"}, b"abc", 400, "boundary"),
        (
            "POST",
            "/api/jobs",
            {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            b"--x\r\n",
            400,
            "Invalid multipart",
        ),
        ("POST", "/api/jobs", {"Content-Type": "application/json"}, b'{"files": []}', 422, "files"),
        ("POST", "/api/jobs", *_many_parts(1001, as_files=True), 400, "Too many files"),
        ("POST", "/api/jobs", *_many_parts(1001, as_files=False), 400, "Too many fields"),
        ("POST", "/api/jobs", *_many_parts(17, as_files=True), 422, "send 1 to 16 files"),
    ],
)
def test_every_error_has_the_one_documented_shape(
    server: ServeProcess, method: str, path: str, headers: dict, body: bytes | None, status: int, words: str
) -> None:
    answer = call(server, method, path, headers=headers, body=body)
    assert answer.status == status, answer.body[:300]
    assert "detail" not in answer.json()
    assert words in answer.error()
    if status == 405:
        assert answer.headers["allow"] == words.rsplit("use ", 1)[1]


def test_an_out_of_range_port_is_one_line() -> None:
    for port in ("70000", "-1"):
        cmd = [sys.executable, "-m", "swinir", "serve", "--port", port]
        done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        (error,) = [line for line in done.stderr.splitlines() if "error" in line]
        assert f"--port: must be in 0-65535, got {port}" in error


def test_a_port_in_use_is_one_line(server: ServeProcess) -> None:
    cmd = [sys.executable, "-m", "swinir", "serve", "--port", str(port_of(server)), "--models", "builtin-x2"]
    start = time.monotonic()
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in done.stderr and time.monotonic() - start < 120
