"""Read and write checkpoints of the SwinIR family: released .pth layouts, our .safetensors, transformers'
Swin2SR folders, or in-memory state dicts.

Reading is safe by default (``weights_only``). The file's layout is unwrapped once (``swinir.layouts``:
wrappers such as ``params_ema`` / ``params`` / ``net_g``, prefixes such as ``module.`` / ``netG.``,
transformers' names), the architecture is detected from the bare state dict (``swinir.architectures``),
and the buffers that architecture rebuilds (``attn_mask``, ``relative_position_index``...) are dropped so
that loading can be strict about every real weight.

Writing a ``.pth`` puts those derived buffers back, computed as the original computes them for the spec's
``img_size``: the original test scripts (``main_test_swinir.py``, ``main_test_swin2sr.py``), KAIR and
BasicSR load with ``strict=True``, and
spandrel's detection (chaiNNer, ComfyUI) keys on ``relative_position_index`` and reads ``img_size`` from the
mask's window count. One index tensor and one mask tensor are shared by every block, so a file grows by
one copy of each, not one per block (classical x2: 32 KiB + 1 MiB instead of 18 masks; the built-in x2
.pth measures 2.87 MB beside its 1.74 MB of weights). ``.safetensors`` files keep only the weights and
say so in their metadata (``derived_buffers: omitted``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from swinir import architectures, layouts, parameter_limit
from swinir.atomic import atomic_path
from swinir.errors import CheckpointError
from swinir.model.shared import Restorer
from swinir.spec import ModelSpec, SpecError, merge_metadata

WRAPPER_KEYS = layouts.WRAPPER_KEYS
DERIVED_SUFFIXES = architectures.ALL_DERIVED  # every buffer suffix some registered architecture rebuilds
SPEC_KEY = "swinir_spec"  # our own metadata, stored beside the weights
SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")
DERIVED_META = "derived_buffers"  # safetensors metadata: the buffers a strict loader rebuilds are not stored


def _fail(path: object, found: str) -> CheckpointError:
    return CheckpointError(f"{path}: expected a SwinIR-family checkpoint (.pth/.pt/.safetensors state dict), {found}")


def read_file(
    path: str | os.PathLike[str], weights_only: bool = True, max_parameters: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the raw object in a checkpoint file: (top-level dict, metadata). What the file's index says it
    holds (a safetensors header, a torch archive's records) is checked against ``max_parameters`` first."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, expected a checkpoint file")
    size = p.stat().st_size
    if size == 0:
        raise _fail(p, "found an empty file")
    check_file_index(p, max_parameters)
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = dict(f.metadata() or {})
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _fail(p, f"found an unreadable safetensors file ({str(exc).splitlines()[0]})") from None
        spec = _parse_spec_json(p, meta[SPEC_KEY]) if SPEC_KEY in meta else None
        out: dict[str, Any] = dict(tensors)
        return out, {"spec": spec, **{k: v for k, v in meta.items() if k != SPEC_KEY}}
    try:
        with warnings.catch_warnings():  # torch warns about non-default pickle protocols before refusing them
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            obj = torch.load(str(p), map_location="cpu", weights_only=weights_only)
    except zipfile.BadZipFile:
        raise _fail(p, f"found a damaged or truncated zip archive ({size} bytes)") from None
    except Exception as exc:  # garbage makes torch/pickle raise many types (KeyError, IndexError, ...)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in str(exc) and "Unsupported operand" not in str(exc):
            needs = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = f" ({needs.group(1)})" if needs else ""
            raise _fail(
                p,
                f"found a pickle that needs arbitrary code to load{what}; re-save it as a plain "
                "state dict, or pass weights_only=False if you trust the file",
            ) from None
        if isinstance(exc, EOFError) or "truncated" in msg.lower() or "failed finding central directory" in msg:
            raise _fail(p, f"found a truncated file ({size} bytes)") from None
        with open(p, "rb") as f:
            head = f.read(8)
        if head[:1] == b"\x80" and "Unsupported operand" in str(exc):
            raise _fail(
                p, f"found a plain pickle ({size} bytes) that the safe loader cannot read; re-save it with torch.save"
            ) from None
        if not (head.startswith(b"PK") or head[:1] == b"\x80") or "Unsupported operand" in str(exc):
            raise _fail(p, f"found a file that is neither a torch zip archive nor a pickle ({size} bytes)") from None
        raise _fail(p, f"found an unreadable file ({type(exc).__name__}: {msg[:160]})") from None
    if not isinstance(obj, Mapping):
        raise _fail(p, f"found a {type(obj).__name__}, not a dict")
    return dict(obj), {"spec": obj.get(SPEC_KEY)}


def _parse_spec_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise _fail(path, f"found a {SPEC_KEY} metadata entry that is not valid JSON") from None


# -- sizes: what a file asks for, before anything is allocated for it --------------------------------------
# A torch archive's records are the storages torch.load allocates, one for one (it refuses a record of
# another size), but they may be deflated: 1 KB of zeros inflates to ~1 MB. Their total is bounded by what the
# parameter limit could need in a training checkpoint (model, EMA and two Adam moments in fp32 = 16 bytes per
# parameter; a GAN run adds its discriminator), hence 32 bytes per parameter.
ARCHIVE_BYTES_PER_PARAMETER = 32
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the header JSON
_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


def check_file_index(path: Path, max_parameters: int | None = None) -> None:
    """Refuse, from the file's index alone, a checkpoint that would allocate more than the limit allows."""
    limit = parameter_limit.resolve(max_parameters)
    if path.suffix == ".safetensors":
        _check_safetensors_header(path, limit)
    elif zipfile.is_zipfile(path):
        _check_archive(path, limit)


def _check_archive(path: Path, limit: int) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            records = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports a damaged archive in its own words
    total = sum(r.file_size for r in records)
    if total > limit * ARCHIVE_BYTES_PER_PARAMETER:
        packed = sum(r.compress_size for r in records)
        raise _fail(
            path,
            f"found an archive that unpacks to {_mib(total)} (from {_mib(packed)}), more than a "
            f"model within the limit of {limit:,} parameters could need ({ARCHIVE_BYTES_PER_PARAMETER} bytes each; "
            f"{parameter_limit.LARGEST_KNOWN}); {parameter_limit.lift_hint()}",
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _check_safetensors_header(path: Path, limit: int) -> None:
    """The header JSON, read before safetensors maps the file: every tensor's shape and byte range agree and
    lie inside the file, and the weights stay within the parameter limit."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(SAFETENSORS_MAX_HEADER, size - 8):
            raise _fail(path, f"found a safetensors file whose header length ({n} bytes) does not fit its {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _fail(path, "found a safetensors file whose header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _fail(path, "found a safetensors file whose header is not a JSON object")
    data_bytes, weights = size - 8 - n, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise _fail(path, f"found a safetensors header entry {name!r:.60} without a valid shape and data_offsets")
        numel = math.prod(shape)
        begin, end = offsets
        width = _SAFETENSORS_DTYPE_BYTES.get(str(info.get("dtype")))
        if not 0 <= begin <= end <= data_bytes or (width is not None and end - begin != numel * width):
            raise _fail(
                path,
                f"found a safetensors header whose tensor {name!r:.60} of shape {tuple(shape)} claims bytes "
                f"{begin}..{end} of the {data_bytes} the file holds",
            )
        if not name.endswith(DERIVED_SUFFIXES):
            weights += numel
    if weights > limit:
        raise _fail(path, parameter_limit.too_many(weights, limit))


def check_sizes(sd: Mapping[str, Tensor], source: object = "state dict", max_parameters: int | None = None) -> None:
    """Before a model is built from ``sd``: no tensor claims more values than its storage holds (a
    zero-stride or overlapping view, which loading would expand), and the weights stay within the limit."""
    for key, t in sd.items():
        if t.layout != torch.strided:
            raise _fail(source, f"found a {t.layout} tensor {key}; SwinIR weights are dense tensors")
        if t.is_meta:
            continue
        held = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
        if t.numel() > held:
            raise _fail(
                source,
                f"found tensor {key} of shape {tuple(t.shape)} ({t.numel():,} values) stored in {max(held, 0):,} "
                f"(strides {t.stride()}): a zero-stride or overlapping view that loading would expand; refused",
            )
    limit = parameter_limit.resolve(max_parameters)
    weights = sum(t.numel() for k, t in sd.items() if not k.endswith(DERIVED_SUFFIXES))
    if weights > limit:
        raise _fail(source, parameter_limit.too_many(weights, limit))


def unwrap(obj: Mapping[str, Any], source: object = "state dict") -> tuple[dict[str, Tensor], str]:
    """Find the state dict inside a checkpoint; returns (state dict, wrapper key or ''). See
    ``swinir.layouts.unwrap`` for everything it finds (other wrappers, prefixes, transformers' names)."""
    found = layouts.unwrap(obj, source)
    return found.state_dict, found.wrapper


def drop_derived(sd: Mapping[str, Tensor], spec: ModelSpec | None = None) -> dict[str, Tensor]:
    """Remove buffers the model rebuilds itself (shift masks, relative-position indices and tables): those
    of ``spec``'s architecture, or of every registered one."""
    suffixes = architectures.get(spec.architecture).derived if spec is not None else architectures.ALL_DERIVED
    return {k: v for k, v in sd.items() if not k.endswith(suffixes)}


def resolve_spec(sd: Mapping[str, Tensor], stored: object, source: object = "state dict") -> ModelSpec:
    """The spec of ``sd``: detected from its tensors by the registry, completed by stored metadata that
    must agree.

    Every weight is then checked against the spec on the meta device, so a file whose metadata or
    shapes ask for more than it holds fails here, in one line, before anything is allocated.
    """
    try:
        spec = architectures.detect(sd)
    except SpecError as exc:
        raise _fail(source, f"found {len(sd)} tensors that are {exc}") from None
    if stored is not None:
        try:
            spec = merge_metadata(spec, stored)
        except SpecError as exc:
            raise _fail(source, f"found {spec.title} weights with inconsistent {SPEC_KEY} metadata: {exc}") from None
    check_weights(spec, drop_derived(sd, spec), source)
    return spec


def check_weights(spec: ModelSpec, sd: Mapping[str, Tensor], source: object = "state dict") -> None:
    """Every weight of ``spec``'s architecture is present with its shape, and nothing else is."""
    try:
        expected = architectures.expected_shapes(spec)
    except ValueError as exc:  # the constructor refused the detected configuration
        raise _fail(source, f"found {spec.title} weights of an unsupported configuration ({exc})") from None
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(sd[k].shape)}, expected {expected[k]})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    raise _fail(source, f"found weights that do not match the detected {spec.title}: {'; '.join(parts)}")


@dataclass
class Loaded:
    """A checkpoint read and checked: its weights (derived buffers dropped), its spec, and where in the
    file the weights were (``origin.describe()``: wrapper, other candidates, prefix, layout)."""

    state_dict: dict[str, Tensor]
    spec: ModelSpec
    origin: layouts.Unwrapped
    source: str

    def notices(self) -> list[str]:
        """What a user should be told about the choice made (several candidate weight sets)."""
        if not self.origin.also:
            return []
        return [
            f"{self.source} holds {self.origin.wrapper} and {', '.join(self.origin.also)}: using {self.origin.wrapper}"
        ]


def read(
    source: str | os.PathLike[str] | Mapping[str, Any], weights_only: bool = True, max_parameters: int | None = None
) -> Loaded:
    """A checkpoint file, a transformers folder or an in-memory (possibly wrapped) dict, read and checked.

    ``max_parameters`` (default ``$SWINIR_MAX_PARAMETERS`` or 100M, see ``swinir.parameter_limit``) bounds
    the model a file may ask for; a tensor that claims more values than its storage holds is refused, and a
    file in the model cache under a released name must be that model."""
    path: Path | None = None
    if isinstance(source, Mapping):
        obj, meta, name = dict(source), {"spec": source.get(SPEC_KEY)}, "state dict"
    else:
        path = Path(source)
        name = str(source)
        weights = layouts.folder_weights(path) if path.is_dir() else path
        obj, meta = read_file(weights, weights_only=weights_only, max_parameters=max_parameters)
    found = layouts.unwrap(obj, name)
    check_sizes(found.state_dict, name, max_parameters)
    stored = meta.get("spec")
    if found.layout == "transformers" and stored is None and path is not None:
        stored = layouts.stored_config(path)
    spec = resolve_spec(found.state_dict, stored, name)
    if path is not None and not path.is_dir():
        check_zoo_file(path, spec)
    return Loaded(drop_derived(found.state_dict, spec), spec, found, name)


def read_state_dict(
    source: str | os.PathLike[str] | Mapping[str, Any], weights_only: bool = True, max_parameters: int | None = None
) -> tuple[dict[str, Tensor], ModelSpec]:
    """A clean state dict and its checked spec, from a file or an in-memory (possibly wrapped) dict."""
    loaded = read(source, weights_only, max_parameters)
    return loaded.state_dict, loaded.spec


def check_zoo_file(path: str | os.PathLike[str], spec: ModelSpec) -> None:
    """A file in the model cache under a released model's name must be that model (``zoo.check_cached``):
    its architecture as the entry says, and its sha256 where the release's is known."""
    from swinir import zoo

    entry = zoo.cached_entry(path)
    if entry is not None:
        zoo.check_cached(entry, path, zoo_fields(spec), spec.describe().split(":")[0])


def zoo_fields(spec: ModelSpec) -> dict[str, object]:
    """What ``zoo.expected_config`` states of an entry, read from a detected spec."""
    return {
        "architecture": spec.architecture,
        "task": spec.task,
        "scale": spec.scale,
        "in_chans": spec.in_chans,
        "window_size": spec.window_size,
        "embed_dim": spec.embed_dim,
    }


def build(spec: ModelSpec, state_dict: Mapping[str, Tensor] | None = None, source: object = "state dict") -> Restorer:
    """The network of ``spec``'s architecture; with ``state_dict``, its weights are checked before the
    model is allocated and then loaded (in the model's fp32, whatever dtype they are stored in)."""
    if state_dict is not None:
        check_weights(spec, drop_derived(state_dict, spec), source)
    model = architectures.build(spec)
    if state_dict is not None:
        model.load_state_dict(dict(state_dict), strict=False)
    return model


def layout_img_size(spec: ModelSpec) -> int:
    """The ``img_size`` the released-layout buffers are computed for: the spec's, when the original could be
    built with it (a window multiple above one window), else the next size it could be built with."""
    ws, size = spec.window_size, spec.img_size
    return size if size > ws and size % ws == 0 else ws * max(2, -(-size // ws))


def with_derived(sd: Mapping[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """``sd`` in the released layout of ``spec``'s architecture: the derived buffers its authors' code
    registers, in their order, for a ``layout_img_size(spec)`` square input (SwinIR: each block's
    ``relative_position_index`` and, on shifted blocks, ``attn_mask``; Swin2SR: also ``relative_coords_table``)."""
    arch = architectures.get(spec.architecture)
    weights = drop_derived(sd, spec)
    if arch.released_layout is None:
        return weights
    return arch.released_layout(weights, spec, layout_img_size(spec))


def _is_state_dict(value: object) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(t, Tensor) for t in value.values())


def _weights(model: nn.Module | Mapping[str, Tensor], spec: ModelSpec | None) -> dict[str, Tensor]:
    sd = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    return {k: v.detach().cpu().contiguous() for k, v in drop_derived(sd, spec).items()}


def save(
    model: nn.Module | Mapping[str, Tensor],
    path: str | os.PathLike[str],
    key: str = "params",
    spec: ModelSpec | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write atomically. ``.pth``: the released layout ``{key: state_dict}`` with the derived buffers (+ our
    spec), and every state dict among ``extra`` (e.g. ``params_ema``) in that layout too; ``.safetensors``:
    the weights only, with the spec and ``derived_buffers: omitted`` as metadata."""
    p = Path(path)
    if isinstance(model, Restorer):
        spec = spec or model.spec
    if spec is None:
        raw = model.state_dict() if isinstance(model, nn.Module) else model
        try:
            spec = architectures.detect(raw)
        except SpecError as exc:
            raise CheckpointError(f"{p}: cannot save: the tensors are {exc}") from None
    sd = _weights(model, spec)
    spec = dataclasses.replace(spec, img_size=layout_img_size(spec))
    with atomic_path(p) as tmp:
        if p.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {k: str(v) for k, v in (extra or {}).items()}
            meta[SPEC_KEY] = json.dumps(spec.to_dict())
            derived = architectures.get(spec.architecture).derived
            meta[DERIVED_META] = "omitted (" + ", ".join(derived) + " are rebuilt from the spec)"
            save_file(sd, str(tmp), metadata=meta)
        else:
            obj: dict[str, Any] = {key: with_derived(sd, spec), SPEC_KEY: spec.to_dict()}
            for name, value in (extra or {}).items():
                obj[name] = with_derived(_weights(value, spec), spec) if _is_state_dict(value) else value
            torch.save(obj, tmp)
    return p


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device | None = None,
    weights_only: bool = True,
    dtype: torch.dtype | None = None,
    max_parameters: int | None = None,
) -> Restorer:
    """A ready, eval-mode network (SwinIR, Swin2SR, ...: the architecture is detected) from a checkpoint
    path, a transformers folder, a state dict, or a model-zoo name.

    Weights are computed in fp32 whatever dtype the file stores them in (fp16 files included); ``dtype``
    converts the model afterwards. Where the file holds several weight sets (``params_ema`` and
    ``params``), the EMA weights are used and a notice says so; ``model.origin`` records the choice.
    ``max_parameters`` lifts (or lowers) the limit on the model's size, 100M by default: a file that asks
    for more is refused before anything is allocated for it."""
    from swinir.device import resolve_device

    name = source
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        text = str(source)
        from swinir import zoo

        # a zoo name, or a released file name (e.g. 001_..._x2.pth) that is not a local file
        if os.sep not in text and (not text.endswith(SUFFIXES) or zoo.is_known(text)):
            source = zoo.resolve(text)
    loaded = read(source, weights_only=weights_only, max_parameters=max_parameters)
    if loaded.notices():
        from swinir.io import notice

        for line in loaded.notices():
            notice(line)
    model = build(loaded.spec, loaded.state_dict, source=name if not isinstance(name, Mapping) else "state dict")
    model.origin = loaded.origin
    model.eval()
    model = model.to(resolve_device(device))
    return model.to(dtype) if dtype is not None else model
