"""Checkpoints that claim more than they hold: zero-stride or overlapping tensors, archives that inflate, and
models beyond the parameter limit are refused in one line before anything is allocated for them."""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import swinir
from swinir import parameter_limit
from swinir.checkpoint import read_state_dict
from swinir.cli import main
from swinir.errors import CheckpointError
from swinir.io import write_image


@pytest.fixture(scope="module")
def tiny_weights(tiny_x2_checkpoint: Path) -> dict[str, torch.Tensor]:
    """The weights of conftest's tiny x2 model (window 4, one block, embed 8)."""
    return {k: v.clone() for k, v in swinir.load(tiny_x2_checkpoint).state_dict().items()}


def expanded(shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Every tensor a zero-stride view of one stored value: a few KB on disk, any size once expanded."""
    return {k: torch.zeros(1).expand(s) if len(s) else torch.zeros(()) for k, s in shapes.items()}


def test_a_file_of_zero_stride_tensors_claiming_571m_parameters_is_refused(tmp_path: Path) -> None:
    """The issue's bomb: a tiny .pth whose expanded tensors make a 571M-parameter SwinIR (2.3 GB as fp32)."""
    big = dict(upscale=2, img_size=64, window_size=8, depths=[6] * 6, embed_dim=1280, num_heads=[8] * 6, mlp_ratio=2,
               upsampler="pixelshuffle")  # fmt: skip
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in swinir.SwinIR(**big).state_dict().items()}
    path = tmp_path / "bomb.pth"
    torch.save({"params": expanded(shapes)}, path)
    assert path.stat().st_size < 200_000
    assert sum(s.numel() for s in shapes.values()) > 570_000_000
    with pytest.raises(CheckpointError, match=r"bomb\.pth: .*conv_first\.weight .*stored in 1 .*zero-stride"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="zero-stride"):  # lifting the parameter limit does not let it in
        swinir.load(path, max_parameters=10**10)


@pytest.mark.parametrize("kind", ["zero-stride", "overlapping"])
def test_one_expanded_or_overlapping_weight_in_a_valid_model_is_refused(
    tiny_weights: dict[str, torch.Tensor], tmp_path: Path, kind: str
) -> None:
    sd = dict(tiny_weights)
    key = "layers.0.residual_group.blocks.0.mlp.fc1.weight"  # (16, 8)
    shape = sd[key].shape
    if kind == "zero-stride":
        sd[key] = torch.randn(shape[1]).expand(shape)  # one row repeated: 8 values stored for 128
    else:
        sd[key] = torch.randn(shape[0] + shape[1] - 1).as_strided(shape, (1, 1))  # rows overlapping by 7
    path = tmp_path / f"{kind}.pth"
    torch.save({"params": sd}, path)
    stored = shape[1] if kind == "zero-stride" else shape[0] + shape[1] - 1
    with pytest.raises(CheckpointError, match=rf"{key} of shape \(16, 8\) \(128 values\) stored in {stored} "):
        swinir.load(path)
    with pytest.raises(CheckpointError, match="overlapping view"):  # an in-memory state dict too
        swinir.load({"params": sd})


def test_the_parameter_limit_names_itself_and_how_to_lift_it(
    tiny_weights: dict[str, torch.Tensor], tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "tiny.pth"
    torch.save({"params": dict(tiny_weights)}, path)
    n = sum(
        v.numel() for k, v in dict(tiny_weights).items() if not k.endswith(("attn_mask", "relative_position_index"))
    )
    with pytest.raises(CheckpointError, match=rf"{n:,} parameters .*over the limit of 1,000 .*HAT-L") as err:
        swinir.load(path, max_parameters=1000)
    assert all(hint in str(err.value) for hint in ("--max-parameters N", "max_parameters=N", parameter_limit.ENV))
    assert swinir.load(path, max_parameters=n).spec.embed_dim == 8  # exactly at the limit: accepted
    monkeypatch.setenv(parameter_limit.ENV, "1k")  # the process-wide default, as the CLI flag sets it
    with pytest.raises(CheckpointError, match="over the limit of 1,000 "):
        swinir.load(path)
    assert swinir.load(path, max_parameters=10**6).upscale == 2  # the argument wins over the environment
    monkeypatch.setenv(parameter_limit.ENV, "lots")
    with pytest.raises(CheckpointError, match=r"SWINIR_MAX_PARAMETERS: expected a positive parameter count"):
        swinir.load(path)


def test_parameter_counts_parse_with_units() -> None:
    assert parameter_limit.parse("250M") == parameter_limit.parse("2.5e8") == parameter_limit.parse("250_000_000")
    assert parameter_limit.parse("1.5G") == 1_500_000_000 and parameter_limit.parse("100k") == 100_000
    for bad in ("", "-5", "0", "abc", "1T", "nan"):
        with pytest.raises(ValueError):
            parameter_limit.parse(bad)


def _write_safetensors(path: Path, header: dict, data_bytes: int) -> None:
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_bytes)  # a sparse file: no disk space, no page written


def test_a_safetensors_file_beyond_the_default_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    """A consistent header (offsets match shapes and the file) for 101M F32 values: 404 MB that safetensors
    would map and copy. The header alone refuses it; nothing is read."""
    rows = 101_000
    header = {"conv_first.weight": {"dtype": "F32", "shape": [rows, 1000], "data_offsets": [0, rows * 4000]}}
    path = tmp_path / "big.safetensors"
    _write_safetensors(path, header, rows * 4000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"big\.safetensors: .*101,000,000 parameters .*limit of 100,000,000"):
        swinir.load(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing was loaded


def test_a_crafted_safetensors_header_with_huge_shapes_is_refused_by_our_check(tmp_path: Path) -> None:
    header = {"conv_first.weight": {"dtype": "F32", "shape": [10**5, 10**5, 3, 3], "data_offsets": [0, 36 * 10**10]}}
    path = tmp_path / "huge.safetensors"
    _write_safetensors(path, header, 64)
    with pytest.raises(
        CheckpointError, match=r"shape \(100000, 100000, 3, 3\) claims bytes 0\.\.360000000000 of the 64"
    ):
        swinir.load(path)
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="header length"):
        swinir.load(path)


def test_a_deflated_archive_that_inflates_beyond_the_limit_is_refused_before_torch_reads_it(
    tiny_weights: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """torch.load accepts deflated records: 40 KB that inflate to 32 MB of storage. The archive's directory
    is checked against the limit (32 bytes per parameter) first."""
    plain = tmp_path / "plain.pth"
    torch.save({"params": dict(tiny_weights), "optimizer": torch.zeros(8_000_000)}, plain)
    bomb = tmp_path / "deflated.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match=r"unpacks to 30\.\d MiB .*limit of 500,000 parameters"):
        swinir.load(bomb, max_parameters=500_000)
    assert swinir.load(bomb, max_parameters=2_000_000).upscale == 2  # within the bound: a real file loads


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swinir", *args], capture_output=True, text=True, timeout=300)


def test_cli_refuses_in_one_line_and_the_flag_lifts_the_limit(
    tiny_weights: dict[str, torch.Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    sd = dict(tiny_weights)
    sd["conv_first.weight"] = torch.zeros(1).expand(sd["conv_first.weight"].shape)
    bomb = tmp_path / "bomb.pth"
    torch.save({"params": sd}, bomb)
    img = tmp_path / "in.png"
    write_image(img, np.full((12, 12, 3), 128, np.uint8))
    proc = _cli("restore", str(img), "-o", str(tmp_path / "out"), "--model", str(bomb))  # a real process
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bomb}: ") and "Traceback" not in proc.stderr
    assert "zero-stride" in proc.stderr and not (tmp_path / "out" / "in.png").exists()
    ok = tmp_path / "ok.pth"
    torch.save({"params": dict(tiny_weights)}, ok)
    monkeypatch.setenv(parameter_limit.ENV, "")  # empty = the default; the flag sets it: restored after the test
    assert main(["info", str(ok), "--max-parameters", "1k"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ok}: ") and "over the limit of 1,000 " in err and err.count("\n") == 1
    monkeypatch.setenv(parameter_limit.ENV, "1k")
    assert main(["info", str(ok)]) == 1
    capsys.readouterr()
    assert main(["info", str(ok), "--max-parameters", "1M"]) == 0  # the flag wins over the environment
    assert "parameters:      2,998" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(ok), "--max-parameters", "many"])
    assert exit_info.value.code == 2 and "expected a positive parameter count" in capsys.readouterr().err
