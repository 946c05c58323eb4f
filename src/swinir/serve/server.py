"""Start the app under uvicorn on a socket bound here, so ``--port 0`` works and the printed URL is exact."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable

from swinir.errors import SwinIRError
from swinir.serve.app import ServeConfig, create_app
from swinir.serve.hosts import HostPolicy, is_loopback
from swinir.serve.jobs import JobQueue
from swinir.serve.limits import MAX_HEADER_BYTES
from swinir.serve.protocol import GuardedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise SwinIRError(f"port {port} is out of range: use 0-65535 (0 = any free port)")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        why = getattr(exc, "strerror", None) or exc
        raise SwinIRError(f"cannot listen on {host}:{port} ({why}); choose another --port or --host") from None
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
    bound_port = sock.getsockname()[1]
    queue = JobQueue(config.devices, config.queue_size, config.workers_per_device, config.keep_s)
    try:
        hosts = HostPolicy(host.strip("[]"), bound_port, config.allowed_hosts)
        app = create_app(config, queue, hosts)
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        url = f"http://{shown}:{bound_port}/"
        if config.token:
            url += f"?token={config.token}"
        say(f"swinir serve: open {url}  (API schema at /openapi.json; Ctrl+C stops)")
        sys.stdout.flush()
        uv_config = uvicorn.Config(
            app,
            log_level="warning",
            timeout_graceful_shutdown=2,
            http=GuardedH11Protocol,  # 431 and 400 as JSON, then a lingering close
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        server = uvicorn.Server(uv_config)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # uvicorn re-raises it after a graceful stop
        server.run(sockets=[sock])
    finally:
        queue.close()
        sock.close()
