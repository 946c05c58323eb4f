"""The model zoo: the 27 released SwinIR checkpoints (and two more files of the release), the six
released Swin2SR checkpoints, HAT's ten, and the compact models shipped inside the package.

Released weights are fetched on first use into the cache folder (``$SWINIR_CACHE``, see
``swinir.paths.cache_dir``). The download goes to a temporary file in the same folder and is renamed into
place only when complete (and, when a checksum is known, verified), so a half-written file is never
loaded. ``$SWINIR_ZOO_URL`` replaces the release URL prefix, e.g. for a mirror or a local test server.
HAT's authors publish their files through Google Drive only: those entries have no URL, and resolve once the
file has been put into the cache folder by hand (the error says where to get it and where to put it).

Built-in models live in ``swinir/builtin/<name>.safetensors`` beside ``<name>.json`` (config and measured
metrics, e.g. ``{"metrics": {"Set5 x4 PSNR-Y": 30.7}, ...}``) and ``<name>.md`` (model card).
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from swinir import paths
from swinir.atomic import atomic_path
from swinir.errors import ZooError

RELEASE_PAGE = "https://github.com/JingyunLiang/SwinIR/releases/tag/v0.0"
RELEASE_URL = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
SWIN2SR_RELEASE_PAGE = "https://github.com/mv-lab/swin2sr/releases/tag/v0.0.1"
SWIN2SR_RELEASE_URL = "https://github.com/mv-lab/swin2sr/releases/download/v0.0.1/"
HAT_PAGE = "https://github.com/XPixelGroup/HAT"  # its README links the Google Drive folder of the weights
# where each architecture's released files are listed (for `swinir models` and the offline message)
RELEASE_PAGES = {
    "swinir": RELEASE_PAGE,
    "swin2sr": SWIN2SR_RELEASE_PAGE,
    "hat": HAT_PAGE,
}
URL_ENV = "SWINIR_ZOO_URL"
BUILTIN_DIR = "builtin"
_CHUNK = 1 << 20
_TIMEOUT_S = 30.0
# True for a tqdm bar, or a callback given (bytes so far, total bytes or None) as a download goes
DownloadProgress = bool | Callable[[int, int | None], None]


@dataclass(frozen=True)
class ZooEntry:
    """One named model: where its weights come from and what it does."""

    name: str
    filename: str
    task: str  # classical_sr, lightweight_sr, real_sr, denoise or jpeg (as ModelSpec.task)
    scale: int = 1
    noise: int | None = None  # training sigma (on 0-255) of a denoiser; None for blind / not a denoiser
    jpeg_quality: int | None = None
    color: bool = True
    description: str = ""
    sha256: str | None = None
    aliases: tuple[str, ...] = ()
    builtin: bool = False
    url: str = ""  # canonical download URL; empty for built-ins and files without a direct download
    architecture: str = "swinir"  # ModelSpec.architecture of its weights
    # the task its weights read as (ModelSpec.task) where that is not ``task``: Real-HAT-GAN has HAT's
    # classical upsampler, so its file reads as classical SR although it is trained for real-world SR
    weights_task: str = ""

    @property
    def page(self) -> str:
        """The release page that lists the file."""
        return RELEASE_PAGES.get(self.architecture, "")

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this entry answers to (short name, aliases, file name)."""
        return (self.name, *self.aliases, self.filename)

    @property
    def level(self) -> str:
        """Scale, noise level or JPEG quality, for listings."""
        if self.jpeg_quality is not None:
            return f"q={self.jpeg_quality}"
        if self.noise is not None:
            return f"sigma={self.noise}"
        if self.task == "denoise":
            return "blind"
        if self.task == "jpeg":
            return "q=any"  # one model for every quality (Swin2SR's dynamic JPEG model)
        return f"x{self.scale}" if self.scale > 1 else "-"

    @property
    def package_path(self) -> str | None:
        """Resource path of a built-in's weights inside the ``swinir`` package."""
        return f"{BUILTIN_DIR}/{self.filename}" if self.builtin else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filename": self.filename,
            "task": self.task,
            "scale": self.scale,
            "noise": self.noise,
            "jpeg_quality": self.jpeg_quality,
            "color": self.color,
            "description": self.description,
            "sha256": self.sha256,
            "aliases": list(self.aliases),
            "builtin": self.builtin,
            "url": self.url,
            "architecture": self.architecture,
            "page": self.page,
        }

    @property
    def downloadable(self) -> bool:
        """Whether swinir can fetch the file itself (a released file with a direct URL)."""
        return not self.builtin and bool(self.url)


# sha256 of the release's files. The release publishes none (its assets predate GitHub's digests), so these are
# the digests that several independent projects recorded for the files they downloaded from the release URLs,
# kept only where at least two of them agree; the other files' digests are not known here (None), and for them
# only the architecture detected from the weights is checked against the entry (``check_cached``).
KNOWN_SHA256 = {
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth": "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac",
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth": "4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215",
    "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth": "193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7",
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth": "b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6",
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth": "99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a",
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth": "f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342",
    "005_colorDN_DFWB_s128w8_SwinIR-M_noise15.pth": "917cd972f7ba80786871add249ad43e4477ce2db59b4ad63e2fa446f7221d013",
    "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10.pth": "0005b707e0e6f75b4d13c7447e2f184858ddbdcec95aa7eb8c07e8afa1d26bd9",
}


def _released(
    name: str,
    filename: str,
    task: str,
    description: str,
    *,
    scale: int = 1,
    noise: int | None = None,
    jpeg: int | None = None,
    color: bool = True,
    aliases: tuple[str, ...] = (),
) -> ZooEntry:
    return ZooEntry(
        name=name,
        filename=filename,
        task=task,
        scale=scale,
        noise=noise,
        jpeg_quality=jpeg,
        color=color,
        description=description,
        aliases=aliases,
        url=RELEASE_URL + filename,
        sha256=KNOWN_SHA256.get(filename),
    )


def _released_entries() -> list[ZooEntry]:
    out: list[ZooEntry] = []
    for s in (2, 3, 4, 8):
        out.append(
            _released(
                f"classical-x{s}",
                f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth",
                "classical_sr",
                f"classical (bicubic) SR x{s}, SwinIR-M trained on DIV2K+Flickr2K, patch 64",
                scale=s,
                aliases=(f"classical-df2k-x{s}",),
            )
        )
    for s in (2, 3, 4, 8):
        out.append(
            _released(
                f"classical-div2k-x{s}",
                f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth",
                "classical_sr",
                f"classical (bicubic) SR x{s}, SwinIR-M trained on DIV2K only, patch 48",
                scale=s,
            )
        )
    for s in (2, 3, 4):
        out.append(
            _released(
                f"lightweight-x{s}",
                f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth",
                "lightweight_sr",
                f"lightweight (bicubic) SR x{s}, SwinIR-S (0.9M parameters) trained on DIV2K",
                scale=s,
            )
        )
    out.append(
        _released(
            "realsr-x4",
            "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",
            "real_sr",
            "real-world SR x4 (BSRGAN degradations, GAN), SwinIR-M on DIV2K+Flickr2K+OST",
            scale=4,
            aliases=("realsr-m-x4",),
        )
    )
    out.append(
        _released(
            "realsr-x4-large",
            "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",
            "real_sr",
            "real-world SR x4 (BSRGAN degradations, GAN), SwinIR-L on DF2K+OST+WED+FFHQ+Manga109+SCUT-CTW1500",
            scale=4,
            aliases=("realsr-l-x4",),
        )
    )
    for color, code, prefix in ((False, "004_grayDN", "gray"), (True, "005_colorDN", "color")):
        for sigma in (15, 25, 50):
            out.append(
                _released(
                    f"denoise-{prefix}-{sigma}",
                    f"{code}_DFWB_s128w8_SwinIR-M_noise{sigma}.pth",
                    "denoise",
                    f"{prefix} Gaussian denoising, sigma {sigma}, SwinIR-M on DIV2K+Flickr2K+BSD500+WED",
                    noise=sigma,
                    color=color,
                )
            )
    for color, code, prefix in ((False, "006_CAR", "gray"), (True, "006_colorCAR", "color")):
        for q in (10, 20, 30, 40):
            out.append(
                _released(
                    f"jpeg-{prefix}-{q}",
                    f"{code}_DFWB_s126w7_SwinIR-M_jpeg{q}.pth",
                    "jpeg",
                    f"{prefix} JPEG artifact removal, quality {q}, SwinIR-M (window 7) on DIV2K+Flickr2K+BSD500+WED",
                    jpeg=q,
                    color=color,
                )
            )
    return out


BUILTINS: tuple[ZooEntry, ...] = (
    ZooEntry(
        "builtin-x4",
        "builtin-x4.safetensors",
        "lightweight_sr",
        scale=4,
        builtin=True,
        description="compact SR x4 for photos, trained by this project; the offline default",
    ),
    ZooEntry(
        "builtin-x2",
        "builtin-x2.safetensors",
        "lightweight_sr",
        scale=2,
        builtin=True,
        description="compact SR x2, trained by this project",
    ),
    ZooEntry(
        "builtin-denoise",
        "builtin-denoise.safetensors",
        "denoise",
        builtin=True,
        description="compact blind color denoising (sigma 0-50), trained by this project",
    ),
)
RELEASED: tuple[ZooEntry, ...] = tuple(_released_entries())
# also attached to the v0.0 release, though its README does not list them
EXTRA: tuple[ZooEntry, ...] = (
    _released(
        "realsr-x2",
        "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth",
        "real_sr",
        "real-world SR x2 (BSRGAN degradations, GAN), SwinIR-M; on the release page, not in its README",
        scale=2,
        aliases=("realsr-m-x2",),
    ),
    _released(
        "realsr-x4-psnr",
        "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth",
        "real_sr",
        "real-world SR x4, PSNR stage (L1 only, before the GAN), SwinIR-M; on the release page, not in its README",
        scale=4,
        aliases=("realsr-m-x4-psnr",),
    ),
)


def _swin2sr(name: str, filename: str, task: str, description: str, hub: str = "", **kw: Any) -> ZooEntry:
    """A Swin2SR release file; ``hub``: the name of its conversion on the HuggingFace Hub (an alias)."""
    return ZooEntry(
        name=name,
        filename=filename,
        task=task,
        description=description,
        url=SWIN2SR_RELEASE_URL + filename,
        architecture="swin2sr",
        aliases=(hub,) if hub else (),
        **kw,
    )


# the six files of Swin2SR's v0.0.1 release (https://github.com/mv-lab/swin2sr), in its README's order
SWIN2SR: tuple[ZooEntry, ...] = (
    _swin2sr(
        "swin2sr-classical-x2",
        "Swin2SR_ClassicalSR_X2_64.pth",
        "classical_sr",
        "classical (bicubic) SR x2, Swin2SR (SwinIR-M size, SwinV2 blocks) on DIV2K+Flickr2K, patch 64",
        "swin2SR-classical-sr-x2-64",
        scale=2,
    ),
    _swin2sr(
        "swin2sr-classical-x4",
        "Swin2SR_ClassicalSR_X4_64.pth",
        "classical_sr",
        "classical (bicubic) SR x4, Swin2SR on DIV2K+Flickr2K, patch 64",
        "swin2SR-classical-sr-x4-64",
        scale=4,
    ),
    _swin2sr(
        "swin2sr-lightweight-x2",
        "Swin2SR_Lightweight_X2_64.pth",
        "lightweight_sr",
        "lightweight (bicubic) SR x2, Swin2SR-S (1.0M parameters) on DIV2K",
        "swin2SR-lightweight-x2-64",
        scale=2,
    ),
    _swin2sr(
        "swin2sr-compressed-x4",
        "Swin2SR_CompressedSR_X4_48.pth",
        "compressed_sr",
        "SR x4 of JPEG-compressed images (AIM 2022 challenge), Swin2SR with an auxiliary LR output, patch 48",
        "swin2SR-compressed-sr-x4-48",
        scale=4,
    ),
    _swin2sr(
        "swin2sr-realsr-x4",
        "Swin2SR_RealworldSR_X4_64_BSRGAN_PSNR.pth",
        "real_sr",
        "real-world SR x4 (BSRGAN degradations, PSNR-trained), Swin2SR",
        "swin2SR-realworld-sr-x4-64-bsrgan-psnr",
        scale=4,
    ),
    _swin2sr(
        "swin2sr-jpeg-gray",
        "Swin2SR_Jpeg_dynamic.pth",
        "jpeg",
        "gray JPEG artifact removal for any quality (one model, trained on qualities 10-40), Swin2SR (window 7)",
        color=False,
    ),
)


def _hat(name: str, stem: str, task: str, description: str, scale: int, weights_task: str = "") -> ZooEntry:
    """A HAT release file: on its authors' Google Drive only, so no URL (``HAT_PAGE`` says where it is);
    its file stem (``HAT-L_SRx4_ImageNet-pretrain``) is a name too."""
    return ZooEntry(
        name=name,
        filename=f"{stem}.pth",
        task=task,
        scale=scale,
        description=description,
        architecture="hat",
        weights_task=weights_task,
    )


# HAT's ten files (https://github.com/XPixelGroup/HAT, "How To Test"), in its README's order: HAT-S, HAT and
# HAT-L at x2/x3/x4, then the real-world GAN model. All have window 16; the parameter counts (millions) are
# those of the released state dicts (golden/family/released_state_dicts.json).
HAT_WIDTHS = {"HAT-S": 144, "HAT": 180, "HAT-L": 180}  # embed_dim
HAT_MILLIONS = {"HAT-S": (9.5, 9.7, 9.6), "HAT": (20.6, 20.8, 20.8), "HAT-L": (40.7, 40.9, 40.8)}  # x2, x3, x4
HAT_WINDOW = 16


def _hat_classical(size: str, scale: int) -> ZooEntry:
    stem = f"{size}_SRx{scale}" + ("_ImageNet-pretrain" if size == "HAT-L" else "")
    how = {
        "HAT-S": "width 144, 6 groups of 6 hybrid attention blocks",
        "HAT": "width 180, 6 groups of 6 hybrid attention blocks",
        "HAT-L": "width 180, 12 groups of 6, pretrained on ImageNet",
    }[size]
    return _hat(
        f"{size.lower()}-classical-x{scale}",
        stem,
        "classical_sr",
        f"classical (bicubic) SR x{scale}, {size} ({HAT_MILLIONS[size][scale - 2]:.1f}M parameters: {how})",
        scale,
    )


HAT: tuple[ZooEntry, ...] = (
    *(_hat_classical(size, s) for size in HAT_WIDTHS for s in (2, 3, 4)),
    _hat(
        "hat-realsr-x4",
        "Real_HAT_GAN_SRx4",
        "real_sr",
        "real-world SR x4 (GAN), HAT (20.8M parameters); its weights read as classical SR (the same upsampler)",
        4,
        weights_task="classical_sr",
    ),
)


def list_entries(task: str | None = None, architecture: str | None = None) -> list[ZooEntry]:
    """Built-ins first, then the released SwinIR checkpoints in release order (the two extra release files
    last), then Swin2SR's, then HAT's; optionally one task or one architecture only."""
    return [
        e
        for e in (*BUILTINS, *RELEASED, *EXTRA, *SWIN2SR, *HAT)
        if (task is None or e.task == task) and (architecture is None or e.architecture == architecture)
    ]


def _key(name: str) -> str:
    text = name.strip().lower()
    if text.endswith((".pth", ".safetensors")):
        text = text.rsplit(".", 1)[0]
    return text.replace("_", "-")


def _index() -> dict[str, ZooEntry]:
    idx: dict[str, ZooEntry] = {}
    for e in list_entries():
        for n in e.names:
            idx.setdefault(_key(n), e)
    return idx


def is_known(name: str) -> bool:
    """Whether ``name`` is a zoo name, alias or released file name."""
    return _key(os.path.basename(str(name))) in _index()


def get(name: str) -> ZooEntry:
    """The entry for a short name, alias, or file name (with or without .pth; case-insensitive)."""
    idx = _index()
    entry = idx.get(_key(name))
    if entry is None:
        short = [e.name for e in list_entries()]
        close = difflib.get_close_matches(_key(name), short, n=4, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(_key(name), list(idx), n=4, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ZooError(f"unknown model {name!r}{hint} (`swinir models` lists the zoo; a checkpoint path works too)")
    return entry


# -- built-ins --------------------------------------------------------------------------------------------


def _builtin_resource(filename: str) -> Any:
    return resources.files("swinir").joinpath(BUILTIN_DIR).joinpath(filename)


def builtin_available(entry: ZooEntry) -> bool:
    return entry.builtin and _builtin_resource(entry.filename).is_file()


def builtin_info(entry: ZooEntry) -> dict[str, Any] | None:
    """The built-in's ``<name>.json`` (config and measured metrics), or None when absent or unreadable."""
    res = _builtin_resource(f"{entry.name}.json")
    if not res.is_file():
        return None
    try:
        data = json.loads(res.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def builtin_card(entry: ZooEntry) -> str | None:
    res = _builtin_resource(f"{entry.name}.md")
    return res.read_text(encoding="utf-8") if res.is_file() else None


def _builtin_path(entry: ZooEntry, cache: Path) -> Path:
    res = _builtin_resource(entry.filename)
    if not res.is_file():
        instead = "denoise-color-25" if entry.task == "denoise" else f"classical-x{entry.scale}"
        raise ZooError(
            f"built-in model {entry.name} is not shipped in this build (no swinir/{entry.package_path}); "
            f"use a released model instead, e.g. --model {instead}"
        )
    if isinstance(res, Path):
        return res
    # Installed inside a zip: copy it out once so torch/safetensors can open a real file.
    dest = cache / BUILTIN_DIR / entry.filename
    if not dest.is_file():
        with resources.as_file(res) as src, atomic_path(dest, suffix=".part") as tmp:
            shutil.copyfile(src, tmp)
    return dest


# -- released: cache and download -------------------------------------------------------------------------


def url_for(entry: ZooEntry, base_url: str | None = None) -> str:
    """Download URL: ``base_url`` or ``$SWINIR_ZOO_URL`` replaces the release prefix when given."""
    base = base_url or os.environ.get(URL_ENV)
    if not base:
        return entry.url
    return base.rstrip("/") + "/" + entry.filename


def cached_path(entry: ZooEntry, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a released checkpoint lives (or will live) once downloaded."""
    return Path(cache_dir).expanduser() / entry.filename if cache_dir else paths.cache_dir() / entry.filename


def is_cached(entry: ZooEntry, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    return builtin_available(entry) if entry.builtin else cached_path(entry, cache_dir).is_file()


def resolve(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: DownloadProgress = True,
    base_url: str | None = None,
) -> Path:
    """A local file for a zoo name: the packaged file of a built-in, or the cached (downloaded once)
    released checkpoint."""
    entry = get(name)
    cache = Path(cache_dir).expanduser() if cache_dir else paths.cache_dir()
    if entry.builtin:
        return _builtin_path(entry, cache)
    dest = cached_path(entry, cache)
    if dest.is_file():
        return dest
    if not entry.url and not (base_url or os.environ.get(URL_ENV)):
        raise ZooError(manual_download_message(entry, dest))
    download(entry, dest, url=url_for(entry, base_url), progress=progress)
    return dest


def manual_download_message(entry: ZooEntry, dest: Path) -> str:
    """What to do for a file its authors publish without a direct URL (e.g. through Google Drive): where to
    get it and where to put it (or pass its path instead of the name)."""
    where = entry.page or "its authors' release page"
    return (
        f"{entry.name} ({entry.filename}) has no direct download: get it from {where} and put it at {dest}, "
        "or pass the file's path instead of the name"
    )


# -- is a cached file the model it is named after? --------------------------------------------------------
SWINIR_WIDTHS = {"S": 60, "M": 180, "L": 240}  # embed_dim of SwinIR-S/M/L in the release's file names
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, once per process


def expected_config(entry: ZooEntry) -> dict[str, object]:
    """What the weights of ``entry``'s file must show: task, scale and channels, and for a release file the
    window and width that its name states (``s64w8``: window 8; ``SwinIR-M``: embed_dim 180)."""
    want: dict[str, object] = {
        "architecture": entry.architecture,
        "task": entry.weights_task or entry.task,
        "scale": entry.scale,
        "in_chans": 3 if entry.color else 1,
    }
    named = re.search(r"_s\d+w(\d+)_SwinIR-([SML])_", entry.filename)
    if named:
        want["window_size"] = int(named.group(1))
        want["embed_dim"] = SWINIR_WIDTHS[named.group(2)]
    if entry.architecture == "hat":  # HAT-S is narrower; HAT and HAT-L differ in depth only
        want["window_size"] = HAT_WINDOW
        want["embed_dim"] = HAT_WIDTHS["HAT-S" if entry.filename.startswith("HAT-S_") else "HAT"]
    return want


def cached_entry(path: str | os.PathLike[str]) -> ZooEntry | None:
    """The released entry whose cache file ``path`` is: a file of the cache folder named as the entry's file."""
    p = Path(path)
    entry = next((e for e in list_entries() if not e.builtin and e.filename == p.name), None)
    if entry is None:
        return None
    return entry if os.path.realpath(p.parent) == os.path.realpath(paths.cache_dir()) else None


def check_cached(entry: ZooEntry, path: str | os.PathLike[str], detected: dict[str, object], what: str) -> None:
    """Refuse a cached file that is not ``entry``'s model: its detected configuration (``detected``, described
    by ``what``) must match ``expected_config(entry)``, and its sha256 the release's where that is known."""
    p = Path(path)
    if entry.url:
        again = (
            f"delete it and run again to download {entry.name} anew from {url_for(entry)} (or put the right file there)"
        )
    else:
        again = f"replace it with {entry.filename} from {entry.page or 'its authors'}"
    want = expected_config(entry)
    wrong = {k: v for k, v in want.items() if k in detected and detected[k] != v}
    if wrong:
        expected = ", ".join(f"{k}={v}" for k, v in want.items())
        found = ", ".join(f"{k}={detected[k]}" for k in want if k in detected)
        raise ZooError(
            f"{p}: the cached file for {entry.name} is another model ({what}: {found}; expected {expected}); {again}"
        )
    if entry.sha256:
        stat = p.stat()
        key = (str(p.absolute()), stat.st_size, stat.st_mtime_ns)
        digest = _verified.get(key) or sha256_of(p)
        if digest != entry.sha256.lower():
            raise ZooError(
                f"{p}: the cached file for {entry.name} has sha256 {digest}, not the release's {entry.sha256} "
                f"(a damaged or different file of {stat.st_size} bytes); {again}"
            )
        _verified[key] = digest


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        r = exc.reason
        return str(r.strerror if isinstance(r, OSError) and r.strerror else r)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__


class _Incomplete(Exception):
    pass


class DownloadError(ZooError):
    """A released file could not be fetched; says what, from where, why, and where to put it by hand."""

    def __init__(self, message: str, entry: ZooEntry, url: str, dest: Path, reason: str) -> None:
        super().__init__(message)
        self.entry, self.url, self.dest, self.reason = entry, url, dest, reason


def _download_error(entry: ZooEntry, url: str, dest: Path, reason: str) -> DownloadError:
    return DownloadError(
        f"could not download {entry.name} from {url} ({reason}); download it by hand and put it at {dest}",
        entry,
        url,
        dest,
        reason,
    )


def resolve_all(names: Sequence[str], purpose: str, progress: DownloadProgress = True) -> list[Path]:
    """Local files for several zoo names that are used together (e.g. the two models of a blend). Every
    download is tried, and those that fail are named in one error, each with its URL and the path to put it
    at, so an offline user learns every file to fetch at once. ``purpose`` starts the message."""
    paths: list[Path] = []
    have: list[str] = []
    failed: list[DownloadError] = []
    for name in names:
        try:
            paths.append(resolve(name, progress=progress))
            have.append(get(name).name)
        except DownloadError as exc:
            failed.append(exc)
    if not failed:
        return paths
    cached = f" ({', '.join(have)} {'is' if len(have) == 1 else 'are'} here)" if have else ""
    each = "; ".join(f"{e.entry.name} from {e.url} ({e.reason}): put it at {e.dest}" for e in failed)
    raise ZooError(
        f"{purpose} needs {' and '.join(get(n).name for n in names)}{cached}; could not download "
        f"{'it' if len(failed) == 1 else f'{len(failed)} of them'}, download by hand: {each}"
    )


def _chunks(resp: Any) -> Iterator[bytes]:
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def download(entry: ZooEntry, dest: Path, url: str | None = None, progress: DownloadProgress = True) -> Path:
    """Fetch ``url`` to ``dest`` atomically: temp file in dest's folder, size and sha256 checked, then
    ``os.replace``. Any failure leaves no file behind and raises ZooError naming the URL and ``dest``.
    ``progress``: True for a bar, or a callback given (bytes so far, total or None) after each chunk."""
    from tqdm import tqdm

    url = url or entry.url
    by_hand = f"download it by hand and put it at {dest}"
    with atomic_path(dest, suffix=".part") as tmp:  # any raise below leaves no file behind
        digest = hashlib.sha256()
        written = 0
        with open(tmp, "wb") as f:
            req = urllib.request.Request(url, headers={"User-Agent": "swinir (python urllib)"})
            try:
                with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=entry.name,
                        disable=not progress or callable(progress),
                        leave=False,
                    ) as bar:
                        for chunk in _chunks(resp):
                            f.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            bar.update(len(chunk))
                            if callable(progress):
                                progress(written, total)
                    if total is not None and written != total:
                        raise _Incomplete(f"connection closed after {written} of {total} bytes")
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, _Incomplete) as exc:
                raise _download_error(entry, url, dest, _reason(exc)) from None
        if written == 0:
            raise _download_error(entry, url, dest, "empty response")
        with open(tmp, "rb") as f:
            head = f.read(4)
        if entry.filename.endswith(".pth") and not (head.startswith(b"PK") or head[:1] == b"\x80"):
            raise _download_error(
                entry, url, dest, f"the server sent something that is not a checkpoint, starting {head!r}"
            )
        if entry.sha256 and digest.hexdigest() != entry.sha256.lower():
            raise DownloadError(
                f"downloaded {entry.name} from {url} but its sha256 {digest.hexdigest()} is not the expected "
                f"{entry.sha256}; the file was discarded. Retry, or {by_hand} after checking it",
                entry,
                url,
                dest,
                f"sha256 {digest.hexdigest()}, not {entry.sha256}",
            )
    return dest


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
