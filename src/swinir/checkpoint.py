"""Read and write SwinIR checkpoints: released .pth layout, our .safetensors, or in-memory state dicts.

Reading is safe by default (``weights_only``). Wrappers used by the release and by common trainers are
unwrapped (``params_ema`` preferred, then ``params``, ``state_dict``, ``model``), ``module.`` prefixes from
DataParallel are stripped, and derived buffers (``attn_mask``, ``relative_position_index``) are dropped so
that loading can be strict about every real weight.

Writing a ``.pth`` puts those derived buffers back, computed as the original computes them for the spec's
``img_size``: the original ``main_test_swinir.py``, KAIR and BasicSR load with ``strict=True``, and
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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from swinir import parameter_limit
from swinir.atomic import atomic_path
from swinir.errors import CheckpointError
from swinir.model import DERIVED_SUFFIXES, SwinIR, relative_position_index, shift_mask
from swinir.spec import ModelSpec, SpecError, detect, merge_metadata

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "net_g")
SPEC_KEY = "swinir_spec"  # our own metadata, stored beside the weights
SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")
DERIVED_META = "derived_buffers"  # safetensors metadata: the buffers a strict loader rebuilds are not stored


def _fail(path: object, found: str) -> CheckpointError:
    return CheckpointError(f"{path}: expected a SwinIR checkpoint (.pth/.pt/.safetensors state dict), {found}")


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
    """Find the state dict inside a checkpoint; returns (state dict, wrapper key or '')."""
    ema = obj.get("ema")  # a `swinir train` checkpoint: its EMA weights, as params_ema is preferred
    if (
        isinstance(ema, Mapping)
        and isinstance(ema.get("module"), Mapping)
        and any(isinstance(v, Tensor) for v in ema["module"].values())
    ):
        return _strip_prefix(ema["module"]), "ema"
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
            return _strip_prefix(inner), key
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(list(map(str, obj))[:6])
        raise _fail(source, f"found a dict without tensors (keys: {keys})")
    return _strip_prefix(tensors), ""


def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, Tensor):
            continue
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def drop_derived(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove buffers the model rebuilds itself (shift masks, relative-position indices)."""
    return {k: v for k, v in sd.items() if not k.endswith(DERIVED_SUFFIXES)}


def resolve_spec(sd: Mapping[str, Tensor], stored: object, source: object = "state dict") -> ModelSpec:
    """The spec of ``sd``: detected from its tensors, completed by stored metadata that must agree.

    Every weight is then checked against the spec on the meta device, so a file whose metadata or
    shapes ask for more than it holds fails here, in one line, before anything is allocated.
    """
    try:
        spec = detect(sd)
    except SpecError as exc:
        raise _fail(source, f"found {len(sd)} tensors that are not SwinIR weights ({exc})") from None
    if stored is not None:
        try:
            spec = merge_metadata(spec, stored)
        except SpecError as exc:
            raise _fail(source, f"found SwinIR weights with inconsistent {SPEC_KEY} metadata: {exc}") from None
    check_weights(spec, drop_derived(sd), source)
    return spec


def check_weights(spec: ModelSpec, sd: Mapping[str, Tensor], source: object = "state dict") -> None:
    """Every weight of ``spec``'s architecture is present with its shape, and nothing else is."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SwinIR(**spec.kwargs()).state_dict().items()}
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
    raise _fail(source, f"found weights that do not match the detected architecture: {'; '.join(parts)}")


def read_state_dict(
    source: str | os.PathLike[str] | Mapping[str, Any], weights_only: bool = True, max_parameters: int | None = None
) -> tuple[dict[str, Tensor], ModelSpec]:
    """A clean state dict and its checked spec, from a file or an in-memory (possibly wrapped) dict.

    ``max_parameters`` (default ``$SWINIR_MAX_PARAMETERS`` or 100M, see ``swinir.parameter_limit``) bounds
    the model a file may ask for; a tensor that claims more values than its storage holds is refused."""
    if isinstance(source, Mapping):
        obj, meta, name = dict(source), {"spec": source.get(SPEC_KEY)}, "state dict"
    else:
        obj, meta = read_file(source, weights_only=weights_only, max_parameters=max_parameters)
        name = str(source)
    sd, _ = unwrap(obj, name)
    check_sizes(sd, name, max_parameters)
    spec = resolve_spec(sd, meta.get("spec"), name)
    if not isinstance(source, Mapping):
        check_zoo_file(source, spec)
    return drop_derived(sd), spec


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
        "task": spec.task,
        "scale": spec.scale,
        "in_chans": spec.in_chans,
        "window_size": spec.window_size,
        "embed_dim": spec.embed_dim,
    }


def build(spec: ModelSpec, state_dict: Mapping[str, Tensor] | None = None, source: object = "state dict") -> SwinIR:
    """A SwinIR for ``spec``; with ``state_dict``, its weights are checked before the model is allocated."""
    if state_dict is not None:
        check_weights(spec, drop_derived(state_dict), source)
    model = SwinIR(**spec.kwargs())
    if state_dict is not None:
        model.load_state_dict(dict(state_dict), strict=False)
    return model


def layout_img_size(spec: ModelSpec) -> int:
    """The ``img_size`` the released-layout buffers are computed for: the spec's, when the original could be
    built with it (a window multiple above one window), else the next size it could be built with."""
    ws, size = spec.window_size, spec.img_size
    return size if size > ws and size % ws == 0 else ws * max(2, -(-size // ws))


def with_derived(sd: Mapping[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """``sd`` in the released layout: each block's ``attn.relative_position_index`` after its bias table and,
    on shifted (odd) blocks, ``attn_mask`` first, for a ``layout_img_size(spec)`` square input."""
    ws, size = spec.window_size, layout_img_size(spec)
    index = relative_position_index(ws)
    mask = shift_mask(size, size, ws, ws // 2).float().contiguous()
    out: dict[str, Tensor] = {}
    for k, v in drop_derived(sd).items():
        block = re.fullmatch(r"(layers\.\d+\.residual_group\.blocks\.(\d+)\.)norm1\.weight", k)
        if block and int(block.group(2)) % 2 == 1:
            out[block.group(1) + "attn_mask"] = mask
        out[k] = v
        if k.endswith(".attn.relative_position_bias_table"):
            out[k[: -len("relative_position_bias_table")] + "relative_position_index"] = index
    return out


def _is_state_dict(value: object) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(t, Tensor) for t in value.values())


def _weights(model: SwinIR | Mapping[str, Tensor]) -> dict[str, Tensor]:
    sd = model.state_dict() if isinstance(model, SwinIR) else dict(model)
    return {k: v.detach().cpu().contiguous() for k, v in drop_derived(sd).items()}


def save(
    model: SwinIR | Mapping[str, Tensor],
    path: str | os.PathLike[str],
    key: str = "params",
    spec: ModelSpec | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write atomically. ``.pth``: the released layout ``{key: state_dict}`` with the derived buffers (+ our
    spec), and every state dict among ``extra`` (e.g. ``params_ema``) in that layout too; ``.safetensors``:
    the weights only, with the spec and ``derived_buffers: omitted`` as metadata."""
    p = Path(path)
    if isinstance(model, SwinIR):
        spec = spec or model.spec
    sd = _weights(model)
    if spec is None:
        try:
            spec = detect(sd)
        except SpecError as exc:
            raise CheckpointError(f"{p}: cannot save: the tensors are not SwinIR weights ({exc})") from None
    spec = dataclasses.replace(spec, img_size=layout_img_size(spec))
    with atomic_path(p) as tmp:
        if p.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {k: str(v) for k, v in (extra or {}).items()}
            meta[SPEC_KEY] = json.dumps(spec.to_dict())
            meta[DERIVED_META] = "omitted (" + ", ".join(DERIVED_SUFFIXES) + " are rebuilt from the spec)"
            save_file(sd, str(tmp), metadata=meta)
        else:
            obj: dict[str, Any] = {key: with_derived(sd, spec), SPEC_KEY: spec.to_dict()}
            for name, value in (extra or {}).items():
                obj[name] = with_derived(_weights(value), spec) if _is_state_dict(value) else value
            torch.save(obj, tmp)
    return p


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device | None = None,
    weights_only: bool = True,
    max_parameters: int | None = None,
) -> SwinIR:
    """A ready, eval-mode SwinIR from a checkpoint path, a state dict, or a model-zoo name.

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
    sd, spec = read_state_dict(source, weights_only=weights_only, max_parameters=max_parameters)
    model = build(spec, sd, source=name if not isinstance(name, Mapping) else "state dict")
    model.eval()
    return model.to(resolve_device(device))
