"""ICC profiles and EXIF carried from an input image file to its restored output.

A colour-managed photo (Display P3 from a phone, Adobe RGB from a camera) shown without its profile is
read as sRGB and changes colour, so restore keeps the profile, and the EXIF (camera, date, GPS) with it.
The orientation tag is dropped: ``read_image`` already turns the pixels upright.

The encoders (OpenCV) write no metadata, so the chunks are spliced into their bytes (PNG ``iCCP`` and
``eXIf``, JPEG ``APP1``/``APP2``, WebP ``VP8X`` + ``ICCP``/``EXIF``): the pixel data stays byte for byte
what it was, at any bit depth. TIFF gets the profile (tag 34675 in a rewritten first IFD) but not the
EXIF, whose tags would have to merge with the image's own IFD; BMP carries neither (a notice says so
when a profile is lost).
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image as PILImage

from swinir.png import png_chunk

__all__ = ["read_metadata", "embed_metadata", "icc_fits"]

_ORIENTATION_TAG = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
_JPEG_SEGMENT_MAX = 65533  # payload bytes in one JPEG marker segment (length field counts itself)
_ICC_JPEG_HEAD = b"ICC_PROFILE\x00"


def _exif_without_orientation(im: PILImage.Image) -> bytes | None:
    """The file's EXIF as TIFF-structured bytes (no ``Exif`` prefix), orientation removed; None if none."""
    raw = im.info.get("exif")
    if not raw:
        return None
    try:
        exif = PILImage.Exif()  # a fresh copy: the image's own cached EXIF stays as read
        exif.load(bytes(raw))
        if _ORIENTATION_TAG in exif:
            del exif[_ORIENTATION_TAG]
            raw = exif.tobytes()
    except Exception:  # malformed EXIF is left behind rather than failing the image
        return None
    raw = bytes(raw)
    if raw.startswith(_EXIF_PREFIX):
        raw = raw[len(_EXIF_PREFIX) :]
    return raw if raw[:4] in (b"II*\x00", b"MM\x00*") else None


def read_metadata(im: PILImage.Image) -> tuple[bytes | None, bytes | None]:
    """(ICC profile, EXIF without orientation) of an opened image file."""
    icc = im.info.get("icc_profile")
    return (bytes(icc) if icc else None), _exif_without_orientation(im)


def icc_fits(icc: bytes, gray: bool) -> bool:
    """Whether the profile's data colour space matches the output (GRAY for gray, RGB for color)."""
    space = icc[16:20]
    return space == (b"GRAY" if gray else b"RGB ")


def _embed_png(data: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    end_ihdr = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    extra = b""
    if icc:
        extra += png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc, 9))
    if exif:
        extra += png_chunk(b"eXIf", exif)
    return data[:end_ihdr] + extra + data[end_ihdr:]


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _embed_jpeg(data: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    at = 2  # after SOI; EXIF and ICC follow the JFIF APP0 when there is one
    if data[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", data[4:6])[0]
    extra = b""
    if exif and len(_EXIF_PREFIX) + len(exif) <= _JPEG_SEGMENT_MAX:
        extra += _jpeg_segment(0xE1, _EXIF_PREFIX + exif)
    if icc:
        step = _JPEG_SEGMENT_MAX - len(_ICC_JPEG_HEAD) - 2
        parts = [icc[i : i + step] for i in range(0, len(icc), step)]
        for n, part in enumerate(parts, 1):
            extra += _jpeg_segment(0xE2, _ICC_JPEG_HEAD + bytes([n, len(parts)]) + part)
    return data[:at] + extra + data[at:]


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _embed_webp(data: bytes, icc: bytes | None, exif: bytes | None, size: tuple[int, int], alpha: bool) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length % 2)
    flags = chunks[0][1][0] if chunks and chunks[0][0] == b"VP8X" else (0x10 if alpha else 0)
    flags |= (0x20 if icc else 0) | (0x08 if exif else 0)
    width, height = size
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = _riff_chunk(b"VP8X", vp8x) + (_riff_chunk(b"ICCP", icc) if icc else b"")
    body += b"".join(_riff_chunk(kind, payload) for kind, payload in chunks if kind != b"VP8X")
    body += _riff_chunk(b"EXIF", exif) if exif else b""
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


_TIFF_ICC_TAG = 34675


def _embed_tiff_icc(data: bytes, icc: bytes) -> bytes:
    """A little-endian TIFF (as OpenCV writes) with the profile as tag 34675: the profile and a copy of
    the first IFD, with the tag added in order, are appended and the header points at the new IFD."""
    if data[:4] != b"II*\x00":
        return data
    ifd_at = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd_at : ifd_at + 2])[0]
    entries = [data[ifd_at + 2 + 12 * i : ifd_at + 14 + 12 * i] for i in range(count)]
    next_ifd = data[ifd_at + 2 + 12 * count : ifd_at + 6 + 12 * count]
    entries = [e for e in entries if struct.unpack("<H", e[:2])[0] != _TIFF_ICC_TAG]
    icc_at = len(data) + (len(data) % 2)
    entries.append(struct.pack("<HHII", _TIFF_ICC_TAG, 7, len(icc), icc_at))  # type 7: UNDEFINED bytes
    entries.sort(key=lambda e: struct.unpack("<H", e[:2])[0])
    new_ifd_at = icc_at + len(icc) + (len(icc) % 2)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + next_ifd
    body = data[8:] + b"\x00" * (icc_at - len(data)) + icc + b"\x00" * (len(icc) % 2) + ifd
    return data[:4] + struct.pack("<I", new_ifd_at) + body


def embed_metadata(
    data: bytes, fmt: str, icc: bytes | None, exif: bytes | None, size: tuple[int, int], alpha: bool
) -> bytes:
    """``data`` (an encoded PNG, JPEG or WebP file) with the ICC profile and EXIF added, a TIFF with the
    profile only; other formats and no metadata: ``data`` unchanged. ``size`` is (width, height)."""
    if not icc and not exif:
        return data
    if fmt == "PNG":
        return _embed_png(data, icc, exif)
    if fmt == "JPEG":
        return _embed_jpeg(data, icc, exif)
    if fmt == "WebP":
        return _embed_webp(data, icc, exif, size, alpha)
    if fmt == "TIFF" and icc:
        return _embed_tiff_icc(data, icc)
    return data
