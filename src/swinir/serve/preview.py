"""A browser-safe picture of an upload: an 8-bit PNG of the input as the restore reads it.

Browsers cannot show TIFF (Chromium draws nothing and reports a natural width of 0), and show 16-bit
PNGs at 8 bits anyway, so the page's "before" side is this PNG, never the upload itself. It is read
through ``swinir.io.read_image``, so EXIF orientation, alpha and the colour profile are those the restore
used and the two sides line up. Made on first request and kept in the job's folder.
"""

from __future__ import annotations

from pathlib import Path

from swinir.io import read_image, to_8bit, write_image

PREVIEW_NAME = "preview.png"


def preview_of(src: Path) -> Path:
    """The PNG preview beside ``src`` (written atomically the first time)."""
    dst = src.with_name(PREVIEW_NAME)
    if not dst.is_file():
        image = read_image(src)
        alpha = None if image.alpha is None else to_8bit(image.alpha)
        write_image(dst, to_8bit(image.array), alpha=alpha, bit_depth=8, icc_profile=image.icc_profile)
    return dst
