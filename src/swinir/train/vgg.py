"""VGG19 feature extractor and the perceptual loss used for SwinIR's real-world GAN training.

The network is written here (no torchvision): ``features`` is an ``nn.Sequential`` with exactly the
layer indices of torchvision's ``vgg19().features``, so the ImageNet weights file published by the
PyTorch project, ``vgg19-dcbb9e9d.pth``, loads by key name (``features.N.weight/bias``; the
``classifier.*`` keys are ignored).

Layer indices of ``features`` (conv = 3x3 conv, each followed by a ReLU at the next index)::

    0 conv1_1   2 conv1_2   4 pool1
    5 conv2_1   7 conv2_2   9 pool2
    10 conv3_1  12 conv3_2  14 conv3_3  16 conv3_4  18 pool3
    19 conv4_1  21 conv4_2  23 conv4_3  25 conv4_4  27 pool4
    28 conv5_1  30 conv5_2  32 conv5_3  34 conv5_4  36 pool5

"Layers [2, 7, 16, 25, 34]" (SwinIR/KAIR's perceptual loss) therefore means the outputs of conv1_2,
conv2_2, conv3_4, conv4_4 and conv5_4 *before* their ReLU: the extractor returns the output of
``features[:i+1]``, which ends at the convolution. The ReLUs are not in-place, so a tapped
pre-activation is never overwritten. Inputs in [0, 1] are normalised with the ImageNet mean/std.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from swinir.errors import SwinIRError, ZooError

__all__ = [
    "VGG19_URL",
    "VGG19_FILENAME",
    "LAYER_NAMES",
    "VGG19Features",
    "PerceptualLoss",
    "vgg19_weights_path",
    "load_vgg19_weights",
    "load_vgg19",
]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> dict[int, str]:
    names: dict[int, str] = {}
    i, block, conv = 0, 1, 1
    for v in _CFG:
        if v == "M":
            names[i] = f"pool{block}"
            i, block, conv = i + 1, block + 1, 1
        else:
            names[i], names[i + 1] = f"conv{block}_{conv}", f"relu{block}_{conv}"
            i, conv = i + 2, conv + 1
    return names


LAYER_NAMES: dict[int, str] = _layer_names()  # index in features -> name (conv1_1, relu1_1, ...)


class VGG19Features(nn.Module):
    """``features`` of VGG19, truncated after index ``max_layer``; ``forward`` returns the taps.

    ``layers`` are the indices whose outputs ``forward`` returns, in order, as a list.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, layers: Sequence[int] = (2, 7, 16, 25, 34), normalize: bool = True) -> None:
        super().__init__()
        self.layers = tuple(int(i) for i in layers)
        if not self.layers or min(self.layers) < 0 or max(self.layers) >= len(LAYER_NAMES):
            raise ValueError(f"VGG19 layers must be in 0..{len(LAYER_NAMES) - 1}, got {list(layers)}")
        max_layer = max(self.layers)
        mods: list[nn.Module] = []
        cin = 3
        for v in _CFG:  # build only up to max_layer: a random init of unused convs costs time
            if len(mods) > max_layer:
                break
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*mods[: max_layer + 1])
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.normalize:
            x = (x - self.mean) / self.std
        taps = set(self.layers)
        out: dict[int, Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out[i] = x
        return [out[i] for i in self.layers]


def vgg19_weights_path(
    path: str | os.PathLike[str] | None = None, url: str = VGG19_URL, download: bool = True, progress: bool = True
) -> Path:
    """Where the VGG19 weights are: ``path`` if given, else ``<cache>/<file name of url>``, fetched
    atomically (with a progress bar) when missing. A file named ``*-<hex>.pth``, as PyTorch publishes
    them, must have a sha256 starting with that hex."""
    from swinir import paths, zoo

    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SwinIRError(
                f"VGG19 weights file {p} does not exist; give the path to {VGG19_FILENAME} (from {VGG19_URL})"
            )
        return p
    filename = url.rstrip("/").rsplit("/", 1)[-1] or VGG19_FILENAME
    dest = paths.cache_dir() / filename
    if dest.is_file():
        return dest
    if not download:
        raise ZooError(f"VGG19 weights are not in the cache; download {url} and put it at {dest}")
    entry = zoo.ZooEntry(name="vgg19", filename=filename, task="perceptual", url=url)
    try:
        zoo.download(entry, dest, url=url, progress=progress)
    except ZooError as exc:
        raise ZooError(f"{exc} (or pass the file's path as the VGG weights; needed for the perceptual loss)") from None
    m = re.search(r"-([0-9a-f]{8,64})\.pth$", filename)
    if m:
        digest = zoo.sha256_of(dest)
        if not digest.startswith(m.group(1)):
            dest.unlink()
            raise ZooError(
                f"downloaded {url} but its sha256 {digest[:16]}... does not start with {m.group(1)} "
                f"as its name says; the file was discarded. Retry, or download it by hand and put "
                f"it at {dest}"
            )
    return dest


def load_vgg19_weights(model: VGG19Features, path: str | os.PathLike[str]) -> VGG19Features:
    """Copy ``features.N.weight/bias`` from a torchvision-format VGG19 file into ``model``."""
    p = Path(path)
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SwinIRError(
            f"{p}: cannot read it as a PyTorch weights file ({type(exc).__name__}); "
            f"expected {VGG19_FILENAME} from {VGG19_URL}"
        ) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SwinIRError(f"{p}: holds a {type(sd).__name__}, not a VGG19 state dict ({VGG19_FILENAME})")
    own = model.state_dict()
    wanted = {k: v for k, v in own.items() if k.startswith("features.")}
    missing = [k for k in wanted if k not in sd]
    if missing:
        raise SwinIRError(
            f"{p}: not a VGG19 weights file: {len(missing)} of its keys are missing "
            f"(first {missing[0]}); expected {VGG19_FILENAME} from {VGG19_URL}"
        )
    for k, v in wanted.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise SwinIRError(f"{p}: {k} has shape {tuple(sd[k].shape)}, VGG19 needs {tuple(v.shape)}")
    model.load_state_dict({k: sd[k].to(v.dtype) for k, v in wanted.items()}, strict=False)
    return model


def load_vgg19(
    path: str | os.PathLike[str] | None = None,
    layers: Sequence[int] = (2, 7, 16, 25, 34),
    pretrained: bool = True,
    url: str = VGG19_URL,
    progress: bool = True,
) -> VGG19Features:
    """A frozen, eval-mode VGG19 extractor. ``pretrained=False`` keeps random weights (tests only:
    a perceptual loss on random features is not the published one)."""
    model = VGG19Features(layers)
    if pretrained:
        load_vgg19_weights(model, vgg19_weights_path(path, url=url, progress=progress))
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model


class PerceptualLoss(nn.Module):
    """``sum_i w_i * L1(vgg_i(out), vgg_i(target))`` over the tapped layers (target features without grad)."""

    def __init__(
        self, vgg: VGG19Features, weights: Sequence[float] = (0.1, 0.1, 1.0, 1.0, 1.0), criterion: str = "l1"
    ) -> None:
        super().__init__()
        if len(weights) != len(vgg.layers):
            raise ValueError(f"{len(weights)} perceptual weights for {len(vgg.layers)} VGG layers")
        crit = {"l1": nn.L1Loss(), "l2": nn.MSELoss()}
        if criterion not in crit:
            raise ValueError(f"perceptual criterion must be 'l1' or 'l2', got {criterion!r}")
        self.vgg = vgg
        self.weights = tuple(float(w) for w in weights)
        self.criterion = crit[criterion]

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # frozen feature extractor, always in eval mode
        return self

    def forward(self, out: Tensor, target: Tensor) -> Tensor:
        fo = self.vgg(out.float())
        with torch.no_grad():
            ft = self.vgg(target.float())
        total = out.new_zeros((), dtype=torch.float32)
        for w, a, b in zip(self.weights, fo, ft):
            if w:
                total = total + w * self.criterion(a, b)
        return total
