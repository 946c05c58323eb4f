"""`swinir serve`: a local web app and HTTP API for restoring images (needs the [serve] extra)."""

from __future__ import annotations

import argparse
import os

from swinir.cli.restore import DEFAULT_MODEL, _int_in
from swinir.errors import SwinIRError

EPILOG = """examples:
  swinir serve                                  # http://127.0.0.1:8000/ with every model
  swinir serve --port 0 --models builtin-x4,builtin-x2,classical-x4
  swinir serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"   # other machines: token required
  swinir serve --allowed-host mybox.lan         # also answer to http://mybox.lan:8000/ (a proxy, a LAN name)

API (schema at /openapi.json):
  curl -F files=@photo.png -F model=builtin-x4 http://127.0.0.1:8000/api/jobs    # -> {"jobs": [{"id": ...}]}
  curl http://127.0.0.1:8000/api/jobs/ID                                         # state, progress, ETA
  curl -o out.png http://127.0.0.1:8000/api/jobs/ID/result
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a local web app and HTTP API for restoring images",
        description="Serve a web page and an HTTP API that restore images with the zoo's models, through a "
        "bounded queue with one worker per device. Binds 127.0.0.1 unless told otherwise (then --token is needed).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_int_in(0, 65535), default=8000, help="port, 0-65535 (default 8000; 0 = any free)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="a name the Host header may carry besides this server's address (repeat, or A,B); requests for "
        "other names are refused against DNS rebinding. Default: localhost, 127.0.0.1 and [::1] with the port, "
        "or with --host 0.0.0.0 any IP address with the port",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SWINIR_TOKEN") or None,
        help="secret every request must carry (Authorization: Bearer TOKEN); required off loopback "
        "(default: $SWINIR_TOKEN)",
    )
    p.add_argument("--device", default=None, help="device(s), comma-separated, one worker each (default: best)")
    p.add_argument("--models", default=None, metavar="A,B,...", help="zoo names to offer (default: all)")
    p.add_argument("--default-model", default=DEFAULT_MODEL, metavar="NAME", help=f"default {DEFAULT_MODEL}")
    p.add_argument("--queue", type=_int_in(1), default=8, metavar="N", help="jobs waiting at most (default 8)")
    p.add_argument("--workers", type=_int_in(1), default=1, metavar="N", help="workers per device (default 1)")
    p.add_argument("--keep", type=_positive, default=3600.0, metavar="S", help="keep results S s (3600)")
    p.add_argument("--max-upload-mb", type=_positive, default=64.0, metavar="MB", help="per file (default 64)")
    p.add_argument("--max-input-mp", type=_positive, default=16.0, metavar="MP", help="input megapixels (16)")
    p.add_argument("--max-output-mp", type=_positive, default=256.0, metavar="MP", help="output MP (256)")
    p.set_defaults(func=run)


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def run(args: argparse.Namespace) -> int:
    try:
        from swinir.serve.app import ServeConfig
        from swinir.serve.limits import Limits
        from swinir.serve.server import serve
    except ModuleNotFoundError as exc:
        raise SwinIRError(f"swinir serve needs {exc.name}: pip install 'swinir[serve]'") from None
    from swinir import zoo

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    for name in [*(models or []), args.default_model]:
        zoo.get(name)  # an unknown name fails here, with close matches
    if models is not None and zoo.get(args.default_model).name not in {zoo.get(m).name for m in models}:
        args.default_model = models[0]
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
        max_input_pixels=int(args.max_input_mp * 1e6),
        max_output_pixels=int(args.max_output_mp * 1e6),
    )
    devices: list[str | None] = [d.strip() for d in args.device.split(",")] if args.device else [None]
    from swinir.device import resolve_device

    for dev in devices:
        try:
            resolve_device(dev)  # an unavailable device stops here, not in every job
        except (SwinIRError, RuntimeError) as exc:  # RuntimeError: torch's own parse error
            raise SwinIRError(f"--device {dev}: {exc}") from None
    allowed = [h.strip() for item in args.allowed_host for h in item.split(",") if h.strip()]
    from swinir.serve.hosts import split_host

    for name in allowed:
        if split_host(name, default_port=None) is None:
            raise SwinIRError(f"--allowed-host {name!r}: expected a host name or address, optionally with :PORT")
    config = ServeConfig(
        devices=devices,
        models=models,
        token=args.token,
        queue_size=args.queue,
        workers_per_device=args.workers,
        keep_s=args.keep,
        limits=limits,
        default_model=zoo.get(args.default_model).name,
        allowed_hosts=tuple(allowed),
    )
    serve(args.host, args.port, config)
    return 0
