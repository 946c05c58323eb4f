"""Image files <-> numpy arrays: bit depth, alpha, EXIF orientation, gray/color.

Arrays are channels-last in RGB order: ``HxW`` (gray) or ``HxWx3`` (color), ``uint8`` or ``uint16``.
Alpha travels separately as an ``HxW`` array of the same dtype, because models restore color only.

Decoding uses Pillow (strict about truncated files, knows EXIF), except for 16-bit color PNG/TIFF, which
Pillow reduces to 8 bits: those go through OpenCV's ``IMREAD_UNCHANGED``. PNG is encoded by ``swinir.png``
(on every core), the other formats by OpenCV (fast, 16-bit TIFF). Every write is atomic: a temporary file in the
destination folder, then ``os.replace``, so an interrupted run never leaves a half image behind.

This is the one image-file layer: every command lists (``list_images``), reads and writes images here.
``read_like_release`` is the evaluation reader: the same OpenCV decode as the released test script
(bit-exact with the paper's numbers), behind the same guard as ``read_image`` (Pillow checks the header
first, so a decompression bomb or a non-image is refused in one line before OpenCV allocates anything).
Error messages describe a file (its kind and size), never quote its bytes.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from swinir.atomic import write_bytes
from swinir.errors import ImageReadError, ImageWriteError, OutputExistsError
from swinir.metadata import embed_metadata, icc_fits, read_metadata
from swinir.png import encode_png

__all__ = [
    "Image",
    "SwinIRNotice",
    "READ_EXTENSIONS",
    "WRITE_FORMATS",
    "list_images",
    "read_image",
    "read_like_release",
    "read_uint8",
    "image_size",
    "file_kind",
    "to_8bit",
    "write_image",
    "encode_image",
    "check_not_input",
    "InputFiles",
    "frame_count",
    "to_float",
    "from_float",
    "gray_to_rgb",
    "rgb_to_gray",
    "adapt_channels",
    "resize",
    "apply_orientation",
    "max_value",
]

# Extensions picked up when a folder is given; an explicitly named file is read whatever its name.
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Output extension -> (format name, holds 16 bit, holds alpha)
WRITE_FORMATS: dict[str, tuple[str, bool, bool]] = {
    ".png": ("PNG", True, True),
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".bmp": ("BMP", False, True),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    ".webp": ("WebP", False, True),
}
BT601 = (0.299, 0.587, 0.114)  # luma weights (ITU-R BT.601), as cv2.COLOR_RGB2GRAY
_ORIENTATION_TAG = 0x0112


class SwinIRNotice(UserWarning):
    """Something was adapted on the user's behalf (gray/color, precision, bit depth, alpha)."""


def notice(message: str) -> None:
    warnings.warn(message, SwinIRNotice, stacklevel=3)


@dataclass
class Image:
    """A decoded image: ``array`` HxW or HxWx3 RGB, optional ``alpha`` HxW, both uint8 or uint16.

    ``icc_profile`` and ``exif`` (TIFF-structured, orientation removed since the array is upright) are
    the file's, for ``write_image`` to carry to the output.
    """

    array: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    path: Path | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 2 else int(self.array.shape[2])

    @property
    def is_gray(self) -> bool:
        return self.channels == 1

    @property
    def mode(self) -> str:
        """Short description, e.g. ``RGBA 16-bit``."""
        base = "L" if self.is_gray else "RGB"
        return f"{base}{'A' if self.alpha is not None else ''} {self.bit_depth}-bit"


def max_value(dtype: np.dtype | type) -> float:
    """255 for uint8, 65535 for uint16, 1.0 for floats."""
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return 255.0
    if dt == np.uint16:
        return 65535.0
    if dt.kind == "f":
        return 1.0
    raise TypeError(f"unsupported image dtype {dt}; expected uint8, uint16 or float")


# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------
def _describe_bytes(path: Path) -> str:
    """What the file looks like, for an error message: its kind and size, never its contents."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"it cannot be opened ({exc.strerror or exc})"
    if size == 0:
        return "an empty file (0 bytes)"
    kinds = {
        b"\x89PNG": "a PNG header",
        b"\xff\xd8\xff": "a JPEG header",
        b"BM": "a BMP header",
        b"II*\x00": "a TIFF header",
        b"MM\x00*": "a TIFF header",
        b"GIF8": "a GIF header",
        b"PK\x03\x04": "a zip archive",
        b"%PDF": "a PDF document",
    }
    for magic, what in kinds.items():
        if head.startswith(magic):
            return f"{what}, {size} bytes"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return f"a WebP header, {size} bytes"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"text, not an image ({size} bytes)"
    return f"unrecognised data ({size} bytes)"


def list_images(folder: str | os.PathLike[str], what: str = "image folder") -> list[Path]:
    """Image files (``READ_EXTENSIONS``) directly in ``folder``, sorted by name; hidden files skipped."""
    p = Path(folder)
    if not p.is_dir():
        raise ImageReadError(f"{what} {p}: does not exist or is not a folder")
    files = sorted(
        f for f in p.iterdir() if not f.name.startswith(".") and f.suffix.lower() in READ_EXTENSIONS and f.is_file()
    )
    if not files:
        raise ImageReadError(f"{what} {p}: no images ({', '.join(READ_EXTENSIONS)}) in it")
    return files


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """None for a regular file (links followed); else what it is, e.g. ``a FIFO``, for a one-line reason.

    Only regular files are read: opening a FIFO blocks until a writer comes, a device streams forever.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    kind = file_kind(p)
    if kind == "missing":
        raise ImageReadError(f"{p}: no such file")
    if kind == "a folder":
        raise ImageReadError(f"{p}: is a folder, not an image file")
    if kind is not None:
        raise ImageReadError(f"{p}: {kind}, not a regular file; only regular files are read")
    return p


@contextmanager
def _decoding(p: Path) -> Iterator[None]:
    """Turn whatever Pillow or OpenCV raise on a bad file into one ``ImageReadError`` line."""
    try:
        yield
    except UnidentifiedImageError:
        raise ImageReadError(f"{p}: not a readable image: found {_describe_bytes(p)}") from None
    except PILImage.DecompressionBombError as exc:
        raise ImageReadError(f"{p}: refused, too many pixels for a safe decode ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, cv2.error) as exc:
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"{p}: cannot decode it ({_describe_bytes(p)}): {what[:200]}") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(H, W) from the file header only; refuses what ``read_image`` refuses (bombs, non-images)."""
    return _header(_check_file(path), verify=False)


def _header(p: Path, verify: bool) -> tuple[int, int]:
    """(H, W) from the header; with ``verify``, a PNG's chunk checksums are checked too (a flipped byte).

    That check reads the file without decoding it (about 9% of a decode): OpenCV's libpng prints a raw
    ``libpng error:`` line on a damaged stream before it fails, so a PNG goes to OpenCV only once it is
    whole. ``read_image`` decodes with Pillow, which needs no such check.
    """
    with _decoding(p), PILImage.open(p) as im:
        w, h = im.size
        if verify and im.format == "PNG":
            im.verify()
    return int(h), int(w)


_CV2_MODES = {"color": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED}


def read_like_release(
    path: str | os.PathLike[str], mode: Literal["color", "gray", "unchanged"] = "color", anydepth: bool = False
) -> np.ndarray:
    """Exactly what the released test script's ``cv2.imread(path, flag)`` gives (BGR order, OpenCV's
    gray conversion), so evaluation stays bit-exact with the paper; but the header is checked first
    and every failure is one ``ImageReadError`` line."""
    p = _check_file(path)
    _header(p, verify=True)  # Pillow's header check: decompression bombs, non-images and damaged PNGs stop here
    flags = _CV2_MODES[mode] | (cv2.IMREAD_ANYDEPTH if anydepth else 0)
    with _decoding(p):
        arr = cv2.imread(str(p), flags)
    if arr is None or arr.size == 0:
        raise ImageReadError(f"{p}: OpenCV cannot decode it ({_describe_bytes(p)})")
    return arr


def to_8bit(array: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding ``x / 257`` (65535 -> 255); uint8 unchanged."""
    if array.dtype == np.uint8:
        return array
    if array.dtype != np.uint16:
        raise ImageReadError(f"unsupported sample type {array.dtype}; expected 8- or 16-bit")
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def read_uint8(path: str | os.PathLike[str], channels: int = 3) -> np.ndarray:
    """uint8 HxWxC: RGB for 3 channels, OpenCV luma for 1 (as the release's gray tasks), 16-bit files
    rounded to 8 bits. Training data and comparison sheets read images this way."""
    img = to_8bit(read_like_release(path, "gray" if channels == 1 else "color", anydepth=True))
    if channels == 1:
        return img.reshape(img.shape[0], img.shape[1], 1)
    return np.ascontiguousarray(img[:, :, ::-1])


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored array upright according to an EXIF orientation value (1-8)."""
    a = array
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a) if a is not array else a


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) >= 26 and head[12:16] == b"IHDR" else 8


def _source_bit_depth(im: PILImage.Image, path: Path) -> int:
    """The stored bits per sample, which Pillow hides for 16-bit color PNG and TIFF."""
    if im.mode.startswith("I;16") or im.mode == "I":
        return 16
    if im.format == "PNG":
        return _png_bit_depth(path)
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(int(b) for b in bits)
    return 8


def _decode_cv2(path: Path) -> np.ndarray:
    """Decode with OpenCV, all channels and bits kept; RGB(A) order."""
    data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV could not decode it")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr


def _from_pil(im: PILImage.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16, copy=False), None
    if mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise ValueError(f"32-bit integer samples outside 0..65535 (range {a.min()}..{a.max()})")
        return a.astype(np.uint16), None
    if mode == "F":
        raise ValueError("32-bit floating-point samples; convert it to 8- or 16-bit first")
    if mode == "L":
        return np.asarray(im), None
    if mode == "LA":
        a = np.asarray(im)
        return np.ascontiguousarray(a[..., 0]), np.ascontiguousarray(a[..., 1])
    if mode == "RGBA":
        a = np.asarray(im)
        return np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3])
    if mode != "RGB":  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        im = im.convert("RGB")
    return np.asarray(im), None


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file upright (EXIF orientation applied), keeping its bit depth and alpha.

    Raises ``ImageReadError`` naming the file and what it holds when it is missing, truncated or not an
    image.
    """
    p = _check_file(path)
    with _decoding(p), PILImage.open(p) as im:
        fmt = im.format
        bits = _source_bit_depth(im, p)
        # The whole stream first: a corrupt or truncated file fails here. getexif() loads a PNG too, and an
        # error there was swallowed (malformed EXIF must not make a picture unreadable) while Pillow
        # marked the image loaded, so the garbage decoded so far was restored with exit status 0.
        im.load()
        orientation = 1
        try:
            orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
        except Exception:  # malformed EXIF must not make the picture unreadable
            orientation = 1
        if bits > 8 and fmt in ("PNG", "TIFF") and im.mode in ("RGB", "RGBA", "LA", "RGBX"):
            was_la = im.mode == "LA"  # Pillow validated the stream above; OpenCV decodes all 16 bits
            arr = _decode_cv2(p)
            if arr.dtype != np.uint16:
                raise ValueError(f"expected 16-bit samples, OpenCV gave {arr.dtype}")
            alpha = None
            if arr.ndim == 3 and arr.shape[2] == 4:
                arr, alpha = arr[..., :3], np.ascontiguousarray(arr[..., 3])
                arr = np.ascontiguousarray(arr[..., 0]) if was_la else np.ascontiguousarray(arr)
        else:
            arr, alpha = _from_pil(im)
        icc_profile, exif = read_metadata(im)  # after load: a PNG may hold its eXIf after the pixels
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{p}: unsupported sample type {arr.dtype}; expected 8- or 16-bit")
    if orientation != 1:
        arr = apply_orientation(arr, orientation)
        if alpha is not None:
            alpha = apply_orientation(alpha, orientation)
    if not arr.flags.writeable:
        arr = arr.copy()
    if alpha is not None and alpha.dtype != arr.dtype:
        alpha = alpha.astype(arr.dtype)
    bit_depth = 16 if arr.dtype == np.uint16 else 8
    return Image(array=arr, alpha=alpha, bit_depth=bit_depth, path=p, icc_profile=icc_profile, exif=exif)


def frame_count(path: str | os.PathLike[str]) -> int:
    """Frames in an image file (animated GIF/WebP/PNG, multi-page TIFF); ``read_image`` reads the first only."""
    try:
        with PILImage.open(path) as im:
            return int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # unreadable files are reported by read_image
        return 1


# ---------------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------------
def check_not_input(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise ``ImageWriteError`` if ``output`` is (or links to) one of ``inputs``."""
    out = Path(output)
    out_res = out.resolve()
    for src in inputs:
        s = Path(src)
        same = s.resolve() == out_res
        if not same and out.exists() and s.exists():
            try:
                same = os.path.samefile(out, s)
            except OSError:
                same = False
        if same:
            raise ImageWriteError(
                f"{out}: refusing to overwrite the input image {s}; choose another output name or folder"
            )


class InputFiles:
    """The files a run reads, recognised through symlinks and hard links with one set lookup per output.

    ``check_not_input`` compares an output with every input: about 0.5 s per output for a folder of 3,000
    images (25 minutes in all), so runs over many files build this once and call ``check`` per output
    (about 0.2 ms). Folders are resolved once each, files only when they are links.
    """

    def __init__(self, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._by_path: dict[Path, Path] = {}
        self._by_inode: dict[tuple[int, int], Path] = {}
        self._folders: dict[Path, Path] = {}
        for src in inputs:
            self.add(src)

    def real(self, path: str | os.PathLike[str]) -> Path:
        """``path`` with links resolved (as ``Path.resolve``), resolving each folder only once."""
        p = Path(path)
        if p.is_symlink() or p.name in ("", ".", ".."):
            return p.resolve()
        folder = self._folders.get(p.parent)
        if folder is None:
            folder = self._folders[p.parent] = p.parent.resolve()
        return folder / p.name

    def add(self, src: str | os.PathLike[str]) -> None:
        p = Path(src)
        self._by_path[self.real(p)] = p
        try:
            st = p.stat()
        except OSError:
            return
        self._by_inode[(st.st_dev, st.st_ino)] = p

    def find(self, path: str | os.PathLike[str]) -> Path | None:
        """The input that ``path`` is (same file under any name), or None."""
        p = Path(path)
        hit = self._by_path.get(self.real(p))
        if hit is None:
            try:
                st = p.stat()
            except OSError:
                return None
            hit = self._by_inode.get((st.st_dev, st.st_ino))
        return hit

    def check(self, output: str | os.PathLike[str]) -> None:
        """Raise ``ImageWriteError`` (as ``check_not_input``) if ``output`` is one of the inputs."""
        hit = self.find(output)
        if hit is not None:
            check_not_input(output, [hit])


def _to_storable(array: np.ndarray, bit_depth: int | None) -> tuple[np.ndarray, int]:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ImageWriteError(
            f"cannot store an array of shape {a.shape}: expected HxW or HxWx3 (alpha goes separately)"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageWriteError(f"cannot store an empty {a.shape[1]}x{a.shape[0]} image: it has no pixels")
    if bit_depth is None:
        bit_depth = 16 if a.dtype == np.uint16 else 8
    if bit_depth not in (8, 16):
        raise ImageWriteError(f"bit depth must be 8 or 16, got {bit_depth}")
    target = np.uint16 if bit_depth == 16 else np.uint8
    if a.dtype != target:
        if a.dtype.kind == "f":
            _check_finite(a)
            a = from_float(a, target)
        elif a.dtype == np.uint16 and target == np.uint8:
            a = to_8bit(a)
        elif a.dtype == np.uint8 and target == np.uint16:
            a = a.astype(np.uint16) * 257
        else:
            raise ImageWriteError(f"unsupported array dtype {a.dtype}; expected uint8, uint16 or float")
    return a, bit_depth


def _check_finite(a: np.ndarray) -> None:
    """NaN has no pixel value (the cast made it 0, with only a numpy warning): refused, as ``restore`` does."""
    bad = 0
    for r in range(0, a.shape[0], _CHUNK_ROWS):  # no full-size temporary
        chunk = a[r : r + _CHUNK_ROWS]
        bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
    if bad:
        raise ImageWriteError(f"the image holds {bad} NaN or infinite sample(s) of {a.size}: refused, nothing written")


def _flatten_onto_white(a: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    maxv = max_value(a.dtype)
    w = alpha.astype(np.float32) / maxv
    if a.ndim == 3:
        w = w[..., None]
    blended: np.ndarray = np.clip(np.rint(a.astype(np.float32) * w + maxv * (1.0 - w)), 0, maxv)
    return blended.astype(a.dtype)


def encode_image(
    array: np.ndarray,
    ext: str,
    alpha: np.ndarray | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """Encode to the bytes of a file with extension ``ext`` (``.png``, ``.jpg``, ...).

    ``quality`` applies to JPEG and WebP (1-100; above 100 makes WebP lossless). ``icc_profile`` and
    ``exif`` (TIFF-structured bytes) go into PNG, JPEG and WebP files, the profile also into TIFF (see
    ``swinir.metadata``); a profile that BMP cannot hold, or whose colour space (gray/RGB) does not fit
    the output, is dropped with a notice.
    """
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext not in WRITE_FORMATS:
        raise ImageWriteError(f"cannot write {ext!r} files; use one of {', '.join(sorted(WRITE_FORMATS))}")
    fmt, holds16, holds_alpha = WRITE_FORMATS[ext]
    a, bits = _to_storable(array, bit_depth)
    al = None
    if alpha is not None:
        al, _ = _to_storable(alpha, bits)
        if al.ndim != 2 or al.shape != a.shape[:2]:
            raise ImageWriteError(f"alpha of shape {np.shape(alpha)} does not match the image {a.shape[:2]}")
    if bits == 16 and not holds16:
        notice(f"{fmt} holds 8 bits per sample: the 16-bit result is written as 8-bit (use .png or .tif to keep 16)")
        a, bits = _to_storable(a, 8)
        if al is not None:
            al, _ = _to_storable(al, 8)
    if al is not None and not holds_alpha:
        notice(f"{fmt} has no alpha channel: transparent areas are flattened onto white (use .png to keep alpha)")
        a, al = _flatten_onto_white(a, al), None

    data = _encode_pixels(a, al, ext, fmt, bits, quality)
    gray_out = a.ndim == 2 and (al is None or (fmt == "PNG" and bits == 8))  # else stored as RGBA
    icc_profile = _fitting_profile(icc_profile, fmt, gray=gray_out)
    if exif and fmt not in _CARRIES_EXIF:
        exif = None
    if exif and fmt == "JPEG" and len(exif) > _JPEG_EXIF_MAX:
        notice(f"the input's EXIF ({len(exif)} bytes) exceeds one JPEG segment: left out (use .png to keep it)")
        exif = None
    return embed_metadata(data, fmt, icc_profile, exif, (a.shape[1], a.shape[0]), alpha=al is not None)


_CARRIES_EXIF = ("PNG", "JPEG", "WebP")
_JPEG_EXIF_MAX = 65533 - 6  # one APP1 segment, after the ``Exif`` prefix
_CARRIES_ICC = ("PNG", "JPEG", "WebP", "TIFF")


def _fitting_profile(icc_profile: bytes | None, fmt: str, gray: bool) -> bytes | None:
    """The profile if ``fmt`` carries it and its colour space fits the output, else None with a notice."""
    if not icc_profile:
        return None
    if fmt not in _CARRIES_ICC:
        notice(f"the input's ICC profile is not kept in {fmt} output (colours may shift); use .png to keep it")
        return None
    if not icc_fits(icc_profile, gray):
        notice(f"the input's ICC profile does not fit the {'gray' if gray else 'color'} output: left out")
        return None
    return icc_profile


def _encode_pixels(a: np.ndarray, al: np.ndarray | None, ext: str, fmt: str, bits: int, quality: int) -> bytes:
    if al is not None and a.ndim == 2 and bits == 8 and fmt == "PNG":
        return encode_png(np.stack([a, al], axis=-1))
    if a.ndim == 2 and al is not None:
        a = np.repeat(a[..., None], 3, axis=2)
    if fmt == "PNG":  # RGB(A) as it is: no BGR order, all cores (swinir.png)
        return encode_png(a if al is None else np.concatenate([a, al[..., None]], axis=2))
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    if al is not None:
        a = np.concatenate([a, al[..., None]], axis=2)
    params: list[int] = []
    q = int(max(1, min(100, quality)))
    if fmt == "JPEG":
        params = [cv2.IMWRITE_JPEG_QUALITY, q]
    elif fmt == "WebP":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101 if quality > 100 else q]  # above 100: lossless
    try:
        ok, buf = cv2.imencode(ext if ext != ".jpeg" else ".jpg", a, params)
    except cv2.error as exc:
        raise ImageWriteError(f"OpenCV could not encode a {a.shape} {a.dtype} image as {fmt}: {exc.err}") from None
    if not ok:
        raise ImageWriteError(f"OpenCV could not encode a {a.shape} {a.dtype} image as {fmt}")
    return bytes(buf.tobytes())


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    replace: bool = True,
) -> Path:
    """Write atomically; the format follows the extension. ``replace=False``: an existing file (even one
    another process publishes while this one encodes) is left alone and ``OutputExistsError`` raised.

    ``bit_depth`` defaults to the array's (16 for uint16, else 8); float arrays in [0, 1] are rounded.
    Formats that cannot hold 16 bits or alpha get 8 bits / a flattened image, with a notice. Gray+alpha is
    stored as a gray+alpha PNG at 8 bits, and as RGBA (equal color planes) otherwise. ``icc_profile``
    and ``exif`` are kept where the format holds them (see ``encode_image``).
    """
    p = Path(path)
    data = encode_image(
        array, p.suffix, alpha=alpha, bit_depth=bit_depth, quality=quality, icc_profile=icc_profile, exif=exif
    )
    try:
        write_bytes(p, data, replace=replace)
    except FileExistsError:
        raise OutputExistsError(p) from None
    except OSError as exc:
        raise ImageWriteError(f"{p}: cannot write there ({exc.strerror or exc})") from None
    return p


# ---------------------------------------------------------------------------------------------------
# sample conversions
# ---------------------------------------------------------------------------------------------------
_CHUNK_ROWS = 256


def to_float(array: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]. A float32 array is returned as is (no copy)."""
    a = np.asarray(array)
    if a.dtype == np.float32:
        return a
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    scale = np.float32(1.0 / max_value(a.dtype))
    out = np.empty(a.shape, np.float32)
    for r in range(0, a.shape[0], _CHUNK_ROWS):  # no full-size float64 temporary
        np.multiply(a[r : r + _CHUNK_ROWS], scale, out=out[r : r + _CHUNK_ROWS], dtype=np.float32)
    return out


def from_float(array: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Round and clip a [0, 1] float array to ``dtype``, in row chunks (no full-size float temporary)."""
    a = np.asarray(array)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return a.astype(dt, copy=False)
    maxv = max_value(dt)
    out = np.empty(a.shape, dt)
    for r in range(0, a.shape[0], _CHUNK_ROWS):
        chunk = a[r : r + _CHUNK_ROWS].astype(np.float32) * np.float32(maxv)
        np.rint(chunk, out=chunk)
        np.clip(chunk, 0, maxv, out=chunk)
        out[r : r + _CHUNK_ROWS] = chunk
    return out


def gray_to_rgb(array: np.ndarray) -> np.ndarray:
    """HxW (or HxWx1) -> HxWx3 by replication."""
    a = array[..., 0] if array.ndim == 3 else array
    return np.repeat(a[..., None], 3, axis=2)


def rgb_to_gray(array: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxW luma (ITU-R BT.601 weights), same dtype (integers rounded)."""
    a = np.asarray(array)
    out = np.empty(a.shape[:2], np.float32)
    for r in range(0, a.shape[0], _CHUNK_ROWS):
        c = a[r : r + _CHUNK_ROWS].astype(np.float32)
        out[r : r + _CHUNK_ROWS] = c[..., 0] * BT601[0] + c[..., 1] * BT601[1] + c[..., 2] * BT601[2]
    if a.dtype.kind == "f":
        return out.astype(a.dtype, copy=False)
    np.rint(out, out=out)
    return np.clip(out, 0, max_value(a.dtype)).astype(a.dtype)


def adapt_channels(array: np.ndarray, channels: int, what: str = "image") -> np.ndarray:
    """Make ``array`` have ``channels`` (1 or 3) channels, with a notice when it changes.

    Gray -> color replicates the plane; color -> gray takes BT.601 luma. ``channels == 1`` returns HxW.
    """
    have = 1 if array.ndim == 2 or array.shape[2] == 1 else array.shape[2]
    if have == channels:
        return array
    if have == 1 and channels == 3:
        notice(f"gray {what} given to a color model: replicated to 3 channels")
        return gray_to_rgb(array)
    if have == 3 and channels == 1:
        notice(f"color {what} given to a gray model: converted to gray (BT.601 luma)")
        return rgb_to_gray(array)
    raise ValueError(f"cannot adapt a {have}-channel {what} to {channels} channels")


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping dtype: area averaging when shrinking, bicubic when enlarging.

    Integer samples saturate at their range; float samples are not clipped.
    """
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    shrink = height <= h and width <= w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    a = array
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    out = cv2.resize(a, (int(width), int(height)), interpolation=interp)  # cv2 saturates integer types
    if array.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out.astype(array.dtype, copy=False)
