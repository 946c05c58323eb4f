"""The architecture registry: every network family swinir runs, tried in a fixed order on a state dict.

Each entry is one ``Architecture``: its name, a pure function from a state dict (original key names,
derived buffers still in) to its hyperparameters (a ``ModelSpec``, or the original constructor's keyword
arguments), its constructor, the buffers it rebuilds itself, the key fragments that mark its files, the
padding its authors' test script applies, and how its released files lay out the derived buffers.
Everything downstream (``swinir.load``, ``info``, the zoo, eval, serve, video, export, train) goes through
``detect`` / ``build`` here and then reads the model's ``spec``; nothing else names an architecture.

Order: the most specific first. A HAT state dict holds SwinIR's keys too (its window attention has
SwinIR's bias table), so HAT goes before SwinIR; Swin2SR's keys (``cpb_mlp``, ``logit_scale``) are its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from swinir.model import hat, network, swin2sr
from swinir.model.shared import Restorer, pad_like_release, pad_to_window
from swinir.spec import TITLES, ModelSpec, SpecError
from swinir.spec import detect as detect_swinir

Padding = Callable[[Tensor, int], Tensor]


@dataclass(frozen=True)
class Architecture:
    """One network family, as the registry needs it."""

    name: str  # ModelSpec.architecture
    detect: Callable[[Mapping[str, Any]], ModelSpec | Mapping[str, Any]]  # raises SpecError("missing KEY")
    constructor: Callable[..., Restorer]  # takes the original constructor's keyword arguments
    derived: tuple[str, ...]  # suffixes of buffers the network rebuilds: dropped on read
    markers: tuple[str, ...]  # key fragments only its files have: rank the closest one for a bad file
    test_padding: Padding = pad_like_release  # what the authors' test script does before the forward
    # the state dict in the released layout (derived buffers back in, for strict loaders), given the
    # weights, the spec and the img_size to make the shift masks for; None: the weights alone
    released_layout: Callable[[Mapping[str, Tensor], ModelSpec, int], dict[str, Tensor]] | None = None

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    def spec_of(self, state_dict: Mapping[str, Any]) -> ModelSpec:
        found = self.detect(state_dict)
        if isinstance(found, ModelSpec):
            return found if found.architecture == self.name else found.with_(architecture=self.name)
        return ModelSpec.from_kwargs(found, self.name)

    def drop_derived(self, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {k: v for k, v in sd.items() if not k.endswith(self.derived)}

    def closeness(self, keys: list[str]) -> int:
        return sum(1 for k in keys if any(m in k for m in self.markers))


def _swinir_layout(sd: Mapping[str, Tensor], spec: ModelSpec, img_size: int) -> dict[str, Tensor]:
    return network.with_derived(sd, spec, img_size)


REGISTRY: tuple[Architecture, ...] = (
    Architecture(
        name="hat",
        detect=hat.detect,
        constructor=hat.HAT,
        derived=hat.DERIVED_SUFFIXES,
        markers=("overlap_attn.", "conv_block.cab.", "relative_position_index_OCA"),
        test_padding=pad_to_window,  # hat_model.py reflect-pads right/bottom to a window multiple
        released_layout=hat.with_derived,
    ),
    Architecture(
        name="swin2sr",
        detect=swin2sr.detect,
        constructor=swin2sr.Swin2SR,
        derived=swin2sr.DERIVED_SUFFIXES,
        markers=("attn.cpb_mlp.", "attn.logit_scale", "attn.q_bias"),
        test_padding=pad_like_release,  # main_test_swin2sr.py pads as main_test_swinir.py does
        released_layout=swin2sr.with_derived,
    ),
    Architecture(
        name="swinir",
        detect=detect_swinir,
        constructor=network.SwinIR,
        derived=network.DERIVED_SUFFIXES,
        markers=("attn.relative_position_bias_table",),
        test_padding=pad_like_release,
        released_layout=_swinir_layout,
    ),
)
# every suffix some architecture rebuilds (for callers that drop buffers before knowing the architecture)
ALL_DERIVED = tuple(sorted({s for a in REGISTRY for s in a.derived}))
# the paddings of the authors' test scripts: SwinIR's and Swin2SR's mirror-flip a whole window more
# (``pad_like_release``); HAT's reflect-pads to a window multiple (``pad_to_window``)
TEST_PADDINGS: dict[str, Padding] = {"flip": pad_like_release, "reflect": pad_to_window}


def names() -> tuple[str, ...]:
    return tuple(a.name for a in REGISTRY)


def get(name: str) -> Architecture:
    for arch in REGISTRY:
        if arch.name == name:
            return arch
    raise KeyError(f"unknown architecture {name!r}; known: {', '.join(names())}")


def of(model_or_spec: Any) -> Architecture:
    """The entry of a model (anything with a ``spec``) or of a spec."""
    spec = model_or_spec if isinstance(model_or_spec, ModelSpec) else model_or_spec.spec
    return get(spec.architecture)


def detect(state_dict: Mapping[str, Any]) -> ModelSpec:
    """The spec of the first architecture whose detection accepts ``state_dict``, tried in order, unless the
    file carries the markers of an earlier one that refused it.

    None accepting it raises one ``SpecError`` line naming the architectures tried and, for the closest
    (the most keys carrying its markers), the first problem its detection found."""
    errors: list[tuple[Architecture, SpecError]] = []
    keys = list(state_dict)
    for arch in REGISTRY:
        try:
            spec = arch.spec_of(state_dict)
        except SpecError as exc:
            errors.append((arch, exc))
            continue
        # a file marked as an earlier (more specific) architecture's that its detection refused is a broken
        # file of that architecture, not a later one's (a HAT file that lost a key still holds SwinIR's)
        if not any(a.closeness(keys) for a, _ in errors):
            return spec
    scores = [arch.closeness(keys) for arch, _ in errors]
    best = max(range(len(errors)), key=lambda i: (scores[i], i))  # ties: the later, more generic entry
    closest, why = errors[best]
    tried = ", ".join(a.title for a, _ in errors)
    raise SpecError(f"not the weights of any known architecture (tried {tried}; closest {closest.title}: {why})")


def build(spec: ModelSpec) -> Restorer:
    """A freshly initialised network for ``spec`` (on the default device; use the meta device to check
    shapes without allocating)."""
    return get(spec.architecture).constructor(**spec.kwargs())


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every weight ``spec``'s network holds (derived buffers excluded), with its shape: nothing allocated."""
    with torch.device("meta"):
        model = build(spec)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
