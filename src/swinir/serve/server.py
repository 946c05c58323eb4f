"""Start the app under uvicorn on a socket bound here, so ``--port 0`` works and the printed URL is exact."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from collections.abc import Callable

from swinir.errors import SwinIRError
from swinir.serve.app import ServeConfig, create_app
from swinir.serve.jobs import JobQueue


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SwinIRError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through serve()'s cleanup, unlike the default handler


def serve(host: str, port: int, config: ServeConfig, say: Callable[[str], None] = print) -> None:
    """Run until interrupted; on the way out, cancel the jobs and delete the work folder."""
    import uvicorn

    if not is_loopback(host) and not config.token:
        raise SwinIRError(
            f"refusing to bind {host}: that lets other machines in; pass --token SECRET (every request must then "
            "carry it) or keep the default --host 127.0.0.1"
        )
    sock = bind(host, port)
    queue = JobQueue(config.devices, config.queue_size, config.workers_per_device, config.keep_s)
    try:
        app = create_app(config, queue)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{sock.getsockname()[1]}/"
        if config.token:
            url += f"?token={config.token}"
        say(f"swinir serve: open {url}  (API schema at /openapi.json; Ctrl+C stops)")
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # uvicorn re-raises it after a graceful stop
        server.run(sockets=[sock])
    finally:
        queue.close()
        sock.close()
