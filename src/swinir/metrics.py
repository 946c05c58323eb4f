"""Image-quality metrics exactly as the paper's evaluation computes them (PSNR, SSIM, PSNR-B).

Numbers are comparable with the paper's tables only if every detail matches, so these follow the
released evaluation code's arithmetic, not a cleaner variant:

* images (uint8, or uint16 brought to the same 0..255 scale) are cast to float64 and ``crop_border``
  pixels are removed from each side;
* the Y channel is BT.601 ``16 + 65.481 R + 128.553 G + 24.966 B`` on [0, 1], left unrounded and held in
  float32 (the original converts to float32 first), so Y-channel PSNR is itself a float32 value (whose last bit
  follows numpy's SIMD-dispatched float32 log10, as the original's does: 1 ulp between AVX-512 and AVX2);
* SSIM: 11x11 Gaussian window, sigma 1.5, valid region only, C1 = (0.01*255)^2, C2 = (0.03*255)^2,
  averaged over channels;
* PSNR-B: MSE plus the blocking-effect factor (BEF) of the *first* image on the 8x8 grid, per channel,
  averaged over channels in dB. Pass the restored image first, as the released test does.

Colour order: the functions take **RGB** images by default (what ``swinir`` reads and writes). Images
read with ``cv2.imread`` are BGR: pass ``color_order="bgr"``. Only the Y conversion depends on it.
Gray images may be HxW or HxWx1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["psnr", "ssim", "psnr_b", "rgb2y", "bgr2y", "bgr2ycbcr", "rgb2ycbcr", "to_float255"]

_Y_BGR = (24.966, 128.553, 65.481)  # weights for B, G, R on [0, 1]
_YCBCR_BGR = np.array(
    [[24.966, 112.0, -18.214], [128.553, -74.203, -93.786], [65.481, -37.797, 112.0]], dtype=np.float64
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


# ---------------------------------------------------------------------------------------- colour
def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BT.601 YCbCr of a BGR image (MATLAB ``rgb2ycbcr`` convention, 16..235 luma).

    uint8 input -> uint8 output, rounded (numpy round, half to even); float input in [0, 1] -> float32
    in [0, 1], unrounded. Returns HxW for ``y_only`` else HxWx3 (Y, Cb, Cr).
    """
    x = np.asarray(img)
    is_uint8 = x.dtype == np.uint8
    f = x.astype(np.float32)
    if is_uint8:
        f /= np.float32(255.0)
    elif x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"bgr2ycbcr expects uint8 or float in [0, 1], got {x.dtype}")
    out: np.ndarray
    if y_only:
        out = np.dot(f, list(_Y_BGR)) + 16.0
    else:
        out = np.matmul(f, _YCBCR_BGR) + _YCBCR_OFFSET
    if is_uint8:
        return np.round(out).astype(np.uint8)
    return (out / 255.0).astype(np.float32)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """``bgr2ycbcr`` for RGB input."""
    return bgr2ycbcr(np.asarray(img)[..., ::-1], y_only=y_only)


def bgr2y(img: np.ndarray) -> np.ndarray:
    """Unrounded float32 Y (16..235 scale) of a BGR image on the 0..255 scale, as the metrics use it."""
    f = np.asarray(img).astype(np.float32) / np.float32(255.0)
    y = bgr2ycbcr(f, y_only=True)  # float32 on [0, 1]
    scaled: np.ndarray = y * np.float32(255.0)
    return scaled


def rgb2y(img: np.ndarray) -> np.ndarray:
    """Unrounded float32 Y (16..235 scale) of an RGB image on the 0..255 scale."""
    return bgr2y(np.asarray(img)[..., ::-1])


def to_float255(img: np.ndarray) -> np.ndarray:
    """float64 HxWxC on the 0..255 scale: uint8 as is, uint16 divided by 257 (65535 -> 255)."""
    x = np.asarray(img)
    if x.dtype == np.uint8:
        f = x.astype(np.float64)
    elif x.dtype == np.uint16:
        f = x.astype(np.float64) / 257.0
    elif np.issubdtype(x.dtype, np.floating):
        f = x.astype(np.float64)  # assumed already on 0..255
    else:
        raise TypeError(f"metrics expect uint8 or uint16 images, got {x.dtype}")
    if f.ndim == 2:
        f = f[:, :, None]
    if f.ndim != 3:
        raise ValueError(f"metrics expect HxW or HxWxC images, got shape {x.shape}")
    return f


def _prepare(
    img1: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool, color_order: str
) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(img1) != np.shape(img2):
        raise ValueError(f"image shapes differ: {np.shape(img1)} vs {np.shape(img2)}")
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    a, b = to_float255(img1), to_float255(img2)
    c = int(crop_border)
    if c:
        if 2 * c >= a.shape[0] or 2 * c >= a.shape[1]:
            raise ValueError(f"crop_border {c} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    if test_y_channel and a.shape[2] == 3:
        conv = rgb2y if color_order == "rgb" else bgr2y
        a, b = conv(a)[..., None], conv(b)[..., None]
    elif test_y_channel:  # a gray image is its own Y; the original still goes through float32
        a = (a.astype(np.float32) / np.float32(255.0)) * np.float32(255.0)
        b = (b.astype(np.float32) / np.float32(255.0)) * np.float32(255.0)
    return a, b


# ---------------------------------------------------------------------------------------- PSNR
def psnr(
    img1: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    test_y_channel: bool = False,
    *,
    color_order: str = "rgb",
) -> float:
    """Peak signal-to-noise ratio in dB (peak 255); ``inf`` for identical images."""
    a, b = _prepare(img1, img2, crop_border, test_y_channel, color_order)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(20.0 * np.log10(255.0 / np.sqrt(mse)))


# ---------------------------------------------------------------------------------------- SSIM
def _gaussian_window() -> np.ndarray:
    k = cv2.getGaussianKernel(11, 1.5)
    return np.outer(k, k.transpose())


def _ssim_channel(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.shape[0] < 11 or a.shape[1] < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[0]}x{a.shape[1]}")

    def filt(x: np.ndarray) -> np.ndarray:  # valid region of the 11x11 window
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu1, mu2 = filt(a), filt(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(a * a) - mu1_sq
    s2 = filt(b * b) - mu2_sq
    s12 = filt(a * b) - mu12
    num = (2 * mu12 + c1) * (2 * s12 + c2)
    den = (mu1_sq + mu2_sq + c1) * (s1 + s2 + c2)
    return float((num / den).mean())


def ssim(
    img1: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    test_y_channel: bool = False,
    *,
    color_order: str = "rgb",
) -> float:
    """Structural similarity (Wang et al. 2004) averaged over channels, as the paper evaluates it."""
    a, b = _prepare(img1, img2, crop_border, test_y_channel, color_order)
    window = _gaussian_window()
    return float(np.mean([_ssim_channel(a[..., i], b[..., i], window) for i in range(a.shape[2])]))


# ---------------------------------------------------------------------------------------- PSNR-B
def _blocking_effect_factor(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """BEF of an HxW image on [0, 1]: excess squared jump across 8x8 block boundaries.

    Computed with torch in the image's dtype (float32 for Y, float64 for RGB), summing over width then
    height as the reference does, so even float32 results agree to the last bit.
    """
    import torch

    h, w = x.shape
    bh = torch.arange(block - 1, w - 1, block)  # columns whose right neighbour is in the next block
    bv = torch.arange(block - 1, h - 1, block)
    nh = torch.from_numpy(np.setdiff1d(np.arange(w - 1), bh.numpy()))
    nv = torch.from_numpy(np.setdiff1d(np.arange(h - 1), bv.numpy()))
    dh = (x[:, :-1] - x[:, 1:]) ** 2  # squared jump between each column and the next
    dv = (x[:-1, :] - x[1:, :]) ** 2
    d_bh = dh[:, bh].sum(1).sum(0)
    d_bv = dv[bv, :].sum(1).sum(0)
    d_nh = dh[:, nh].sum(1).sum(0)
    d_nv = dv[nv, :].sum(1).sum(0)
    n_bh = h * (w // block - 1)
    n_bv = w * (h // block - 1)
    n_nh = h * (w - 1) - n_bh
    n_nv = w * (h - 1) - n_bv
    boundary = (d_bh + d_bv) / (n_bh + n_bv)
    nonboundary = (d_nh + d_nv) / (n_nh + n_nv)
    if boundary <= nonboundary:
        return torch.zeros((), dtype=x.dtype)
    scaler = float(np.log2(block) / np.log2(min(h, w)))
    return scaler * (boundary - nonboundary)


def psnr_b(
    img1: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    test_y_channel: bool = False,
    *,
    color_order: str = "rgb",
) -> float:
    """PSNR-B (Yim & Bovik 2011): PSNR with the MSE increased by ``img1``'s blocking-effect factor.

    ``img1`` is the restored (or compressed) image, ``img2`` the reference; the order matters.
    """
    import torch

    a, b = _prepare(img1, img2, crop_border, test_y_channel, color_order)
    ta = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))) / 255.0  # C, H, W
    tb = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1))) / 255.0
    total = torch.zeros((), dtype=ta.dtype)
    for c in range(a.shape[2]):
        mse = ((ta[c] - tb[c]) ** 2).reshape(-1).mean()
        bef = _blocking_effect_factor(ta[c])
        total = total + 10 * torch.log10(1 / (mse + bef))
    channels: int = a.shape[2]
    return float(total) / channels
