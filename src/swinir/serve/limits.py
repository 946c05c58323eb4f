"""Upload checks made before any job is queued: size, type read from the content, pixel counts, integrity.

The pixel count comes from the header (Pillow reads it without decoding), so a decompression bomb (a few
KB of PNG that declares 30000x30000) is refused before a single row is decoded; only an image within the
limits is then decoded once, to refuse a truncated or corrupt file with a 4xx instead of a failed job.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

# Pillow format -> the extension the file is stored under (what `swinir restore --ext same` keeps)
FORMAT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


MAX_HEADER_BYTES = 64 << 10  # request line + headers (h11's own default is 16 KiB); over it: 431


def header_limit_message() -> str:
    return f"the request's headers are over the limit of {MAX_HEADER_BYTES} bytes; send shorter headers"


class UploadRefused(Exception):
    """An upload or a request the server will not take: an HTTP status and a one-line reason."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the JSON answer, beside "error"


@dataclass(frozen=True)
class Limits:
    """Per-request limits; the defaults fit a 16 MP photo restored x4 on a workstation."""

    max_upload_bytes: int = 64 << 20
    max_input_pixels: int = 16_000_000
    max_output_pixels: int = 256_000_000
    max_files: int = 16

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Upload:
    """What an accepted upload holds."""

    name: str  # the client's file name, for display and the download's name only
    data: bytes
    format: str  # Pillow's format name, read from the content
    width: int
    height: int

    @property
    def extension(self) -> str:
        return FORMAT_EXTENSIONS[self.format]


def _what(data: bytes) -> str:
    head = data[:16]
    if not data:
        return "an empty file"
    if head.lstrip().startswith((b"<", b"{", b"[")) or all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return f"bytes starting {head[:8].hex(' ')}"


_EXIF_ORIENTATION = 0x0112
_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _orientation(im: PILImage.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # as swinir.io.read_image: malformed EXIF counts as upright
        return 1


def inspect_upload(name: str, data: bytes, limits: Limits) -> Upload:
    """Check one uploaded file; raise ``UploadRefused`` (413/415/422) with the reason."""
    label = name or "upload"
    if len(data) > limits.max_upload_bytes:
        raise UploadRefused(413, f"{label}: {len(data)} bytes is over the upload limit of {limits.max_upload_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UploadRefused(
            415, f"{label}: not an image (found {_what(data)}); send PNG, JPEG, WebP, TIFF or BMP"
        ) from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise UploadRefused(413, f"{label}: refused as a decompression bomb before decoding ({exc})") from None
    with im:
        fmt = im.format or ""
        if fmt not in FORMAT_EXTENSIONS:
            raise UploadRefused(
                415, f"{label}: {fmt or 'this'} images are not supported; send PNG, JPEG, WebP, TIFF or BMP"
            )
        width, height = im.size
        if width * height > limits.max_input_pixels:
            raise UploadRefused(
                413,
                f"{label}: {width}x{height} = {width * height} pixels is over the input limit of "
                f"{limits.max_input_pixels} (refused before decoding)",
            )
        try:
            im.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise UploadRefused(
                422, f"{label}: a {fmt} file that cannot be decoded (truncated or corrupt): {reason}"
            ) from None
        if _orientation(im) in _TRANSPOSING:  # the restore reads it upright (swinir.io), so it is h x w
            width, height = height, width
    return Upload(name=name, data=data, format=fmt, width=width, height=height)


def check_output_size(upload: Upload, size: tuple[int, int], limits: Limits) -> tuple[int, int]:
    """``size`` (height, width of the result); 413 past the output limit."""
    out_h, out_w = size
    if out_w * out_h > limits.max_output_pixels:
        raise UploadRefused(
            413,
            f"{upload.name or 'upload'}: the result would be {out_w}x{out_h} = {out_w * out_h} pixels, over the "
            f"output limit of {limits.max_output_pixels}; use a smaller image, model scale or outscale",
        )
    return out_w, out_h
