"""JPEG compression with OpenCV's encoder, as the paper's JPEG artifact-removal protocol uses."""

from __future__ import annotations

import cv2
import numpy as np

from swinir.metrics import bgr2ycbcr

__all__ = ["jpeg_compress", "jpeg_gray_from_color", "bgr2y_uint8"]


def _encode_decode(img: np.ndarray, quality: int, flags: int) -> np.ndarray:
    if not 0 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 0..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV could not JPEG-encode the image")
    out = cv2.imdecode(buf, flags)
    if out is None:
        raise ValueError("OpenCV could not decode its own JPEG")
    return out


def jpeg_compress(img: np.ndarray, quality: int, color_order: str = "rgb") -> np.ndarray:
    """Encode and decode ``img`` (uint8 HxW or HxWx3) with OpenCV at ``quality``; returns uint8, same order.

    OpenCV's encoder takes BGR, so an RGB image is flipped before and after; the colour task of the
    paper encodes the BGR image read by ``cv2.imread``, which ``color_order='bgr'`` passes through.
    """
    x = np.asarray(img)
    if x.dtype != np.uint8:
        raise TypeError(f"jpeg_compress expects uint8, got {x.dtype}")
    if x.ndim == 3 and x.shape[2] == 1:
        return _encode_decode(x[:, :, 0], quality, cv2.IMREAD_GRAYSCALE)[:, :, None]
    if x.ndim == 2:
        return _encode_decode(x, quality, cv2.IMREAD_GRAYSCALE)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"jpeg_compress expects HxW or HxWx3, got shape {x.shape}")
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    bgr = x[:, :, ::-1] if color_order == "rgb" else x
    out = _encode_decode(np.ascontiguousarray(bgr), quality, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out[:, :, ::-1]) if color_order == "rgb" else out


def bgr2y_uint8(img: np.ndarray, color_order: str = "bgr") -> np.ndarray:
    """BT.601 luma of a uint8 colour image rounded to uint8, as the released gray JPEG test makes its
    ground truth (``bgr2ycbcr(img, y_only=True)``); a gray HxW image is returned as is."""
    x = np.asarray(img)
    if x.ndim == 2:
        return x
    if x.dtype != np.uint8:
        raise TypeError(f"bgr2y_uint8 expects uint8, got {x.dtype}")
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    return bgr2ycbcr(x[:, :, ::-1] if color_order == "rgb" else x, y_only=True)


def jpeg_gray_from_color(img: np.ndarray, quality: int, color_order: str = "bgr") -> tuple[np.ndarray, np.ndarray]:
    """The gray JPEG task's pair: (ground truth, compressed), both uint8 HxW.

    A colour image becomes its Y channel (``bgr2y_uint8``) as the released test does; a gray image is
    used as is. The compressed image is OpenCV JPEG at ``quality`` decoded as grayscale.
    """
    x = np.asarray(img)
    gt = bgr2y_uint8(x, color_order) if x.ndim == 3 and x.shape[2] == 3 else x.reshape(x.shape[:2])
    return gt, _encode_decode(np.ascontiguousarray(gt), quality, cv2.IMREAD_GRAYSCALE)
