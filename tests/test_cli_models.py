"""`swinir models` and `swinir info`, run through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import swinir
from swinir import zoo
from swinir.checkpoint import save
from swinir.cli import main
from swinir.model import SwinIR
from test_zoo import SMALL_X2, STANDIN, ZooServer, small_checkpoint, zoo_server  # noqa: F401  (fixtures)


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SWINIR_CACHE", str(folder))
    return folder


@pytest.fixture
def packaged_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SwinIR:
    """A folder standing in for swinir/builtin that ships builtin-x4 only (weights, json, card)."""
    folder = tmp_path / "builtin"
    torch.manual_seed(3)
    model = SwinIR(**{**SMALL_X2, "upscale": 4}).eval()
    save(model, folder / "builtin-x4.safetensors")
    (folder / "builtin-x4.json").write_text(
        json.dumps(
            {"config": model.spec.kwargs(), "metrics": {"Set5 x4": {"PSNR-Y": 30.61, "SSIM-Y": 0.866}}, "iterations": 5}
        )
    )
    (folder / "builtin-x4.md").write_text("# builtin-x4\nA test card.\n")
    monkeypatch.setattr(zoo, "_builtin_resource", lambda filename: folder / filename)
    return model


def test_models_lists_builtins_first_then_all_released(cache: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = _run(capsys, "models")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("Built-in models")
    builtin_at = [i for i, line in enumerate(lines) if line.strip().startswith("builtin-")]
    released_at = [
        i
        for i, line in enumerate(lines)
        if line.split()[:1] and zoo.is_known(line.split()[0]) and not line.strip().startswith("builtin-")
    ]
    # the release README's 27, then two more files of the release, then Swin2SR's six and HAT's ten under
    # their own headings
    assert len(builtin_at) == 3 and len(released_at) == 27 + 2 + 6 + 10
    assert max(builtin_at) < min(released_at)
    names = [e.name for e in (*zoo.RELEASED, *zoo.EXTRA, *zoo.SWIN2SR, *zoo.HAT)]
    assert [lines[i].split()[0] for i in released_at] == names
    assert str(cache) in out and zoo.RELEASE_PAGE in out and zoo.SWIN2SR_RELEASE_PAGE in out
    heading = lines.index(next(line for line in lines if line.startswith("Released Swin2SR checkpoints")))
    assert released_at[28] < heading < released_at[29]
    hat = lines.index(next(line for line in lines if line.startswith("Released HAT checkpoints")))
    assert released_at[34] < hat < released_at[35]
    # HAT's files are not downloaded: the heading says where to get them and where to put them
    assert "no direct download" in lines[hat] and zoo.HAT_PAGE in lines[hat] and str(cache) in lines[hat + 1]
    assert "downloaded on first use" in lines[heading + 1]
    assert all(lines[i].split()[4] == "no" for i in released_at)  # nothing cached yet
    assert lines[released_at[-1]].split()[1:] == ["real_sr", "x4", "color", "no", "Real_HAT_GAN_SRx4.pth"]


def test_models_shows_what_is_cached(cache: Path, small_checkpoint, capsys: pytest.CaptureFixture) -> None:
    entry = zoo.get("classical-x2")
    cache.mkdir()
    (cache / entry.filename).write_bytes(small_checkpoint[1])
    code, out, _ = _run(capsys, "models", "--task", "classical_sr")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith("classical-")}
    assert rows["classical-x2"][4] == "yes" and rows["classical-x4"][4] == "no"
    assert len(rows) == 8

    code, out, _ = _run(capsys, "models", "--json")
    data = json.loads(out)
    assert data["cache_dir"] == str(cache)
    by_name = {m["name"]: m for m in data["models"]}
    assert len(data["models"]) == 48 and [m["builtin"] for m in data["models"][:3]] == [True] * 3
    assert by_name["swin2sr-classical-x2"]["url"] == zoo.SWIN2SR_RELEASE_URL + "Swin2SR_ClassicalSR_X2_64.pth"
    assert by_name["swin2sr-classical-x2"]["architecture"] == "swin2sr"
    hat = by_name["hat-l-classical-x3"]
    assert (hat["url"], hat["page"], hat["architecture"]) == ("", zoo.HAT_PAGE, "hat")
    assert (hat["filename"], hat["scale"], hat["cached"]) == ("HAT-L_SRx3_ImageNet-pretrain.pth", 3, False)
    assert hat["path"] == str(cache / "HAT-L_SRx3_ImageNet-pretrain.pth")
    assert by_name["classical-x2"]["cached"] is True and by_name["classical-x3"]["cached"] is False
    assert by_name["classical-x2"]["path"] == str(cache / entry.filename)
    assert by_name["jpeg-color-40"]["url"] == zoo.RELEASE_URL + "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg40.pth"
    assert by_name["denoise-gray-25"]["noise"] == 25 and by_name["denoise-gray-25"]["color"] is False


def test_models_task_filter(cache: Path, capsys: pytest.CaptureFixture) -> None:
    _, out, _ = _run(capsys, "models", "--task", "denoise", "--json")
    names = [m["name"] for m in json.loads(out)["models"]]
    assert names == [
        "builtin-denoise",
        "denoise-gray-15",
        "denoise-gray-25",
        "denoise-gray-50",
        "denoise-color-15",
        "denoise-color-25",
        "denoise-color-50",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "--task", "colorize"])
    assert exit_info.value.code == 2


def test_models_shows_builtin_metrics(cache: Path, packaged_builtin: SwinIR, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "models")
    line = next(line for line in out.splitlines() if line.strip().startswith("builtin-x4"))
    assert "Set5 x4 PSNR-Y 30.61" in line and "SSIM-Y 0.87" in line
    assert "not shipped" in next(line for line in out.splitlines() if line.strip().startswith("builtin-x2"))
    data = json.loads(_run(capsys, "models", "--json")[1])
    assert data["models"][0]["available"] is True and data["models"][0]["metrics"]["Set5 x4 PSNR-Y"] == 30.61
    assert data["models"][1]["available"] is False
    # and the built-in really loads through the zoo
    model = swinir.load("builtin-x4")
    assert model.scale == 4 and model.spec == packaged_builtin.spec
    assert zoo.builtin_card(zoo.get("builtin-x4")).startswith("# builtin-x4")


def test_info_on_every_golden_checkpoint(golden: Path, golden_index: dict, capsys: pytest.CaptureFixture) -> None:
    for name, entry in golden_index.items():
        code, out, err = _run(capsys, "info", str(golden / entry["checkpoint"]), "--json")
        assert code == 0 and err == "", name
        info = json.loads(out)
        assert info["config"] == entry["config"], name
        assert info["wrapper_key"] == entry["checkpoint_key"]
        assert info["sha256"] == entry["sha256"]
        raw = torch.load(golden / entry["checkpoint"], weights_only=True)[entry["checkpoint_key"]]
        weights = {k: v for k, v in raw.items() if not k.endswith(("attn_mask", "relative_position_index"))}
        assert info["parameters"] == sum(v.numel() for v in weights.values())
        assert info["derived_buffers"] == len(raw) - len(weights) > 0


def test_info_text(golden: Path, golden_index: dict, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "info", str(golden / golden_index["jpeg_color_w7"]["checkpoint"]))
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert code == 0
    assert fields["task"].strip() == "jpeg" and fields["window"].strip() == "7"
    assert fields["img_range"].strip() == "255" and fields["scale"].strip() == "x1"
    assert fields["channels"].strip().startswith("3 in, 3 out")
    assert fields["weights"].strip().startswith("params, stored as float32")
    assert fields["architecture"].strip() == "SwinIR"


def test_info_by_zoo_name_downloads_once(
    zoo_server: ZooServer,
    small_checkpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, small_checkpoint[1])
    code, out, _ = _run(capsys, "info", STANDIN, "--json")
    info = json.loads(out)
    assert code == 0 and info["zoo_name"] == STANDIN and info["scale"] == 2
    assert info["file"] == str(tmp_path / "cache" / entry.filename)
    assert _run(capsys, "info", entry.filename)[0] == 0
    assert len(zoo_server.requests) == 1


def test_info_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for arg, words in (("classical-x5", "unknown model"), (str(tmp_path / "nope.pth"), "no such checkpoint file")):
        code, out, err = _run(capsys, "info", arg)
        assert code == 1 and out == ""
        assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err


def test_models_of_one_architecture(cache: Path, capsys: pytest.CaptureFixture) -> None:
    _, out, _ = _run(capsys, "models", "--architecture", "hat", "--json")
    names = [m["name"] for m in json.loads(out)["models"]]
    assert len(names) == 10 and names[0] == "hat-s-classical-x2" and names[-1] == "hat-realsr-x4"
    _, out, _ = _run(capsys, "models", "--architecture", "hat", "--task", "real_sr")
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  hat-")]
    assert rows == ["hat-realsr-x4"]


def test_a_hat_name_without_its_file_is_one_line(cache: Path, capsys: pytest.CaptureFixture) -> None:
    """`swinir info` / `restore` with a HAT name whose file is not there: where to get it, where to put it."""
    code, out, err = _run(capsys, "info", "hat-classical-x4")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "HAT_SRx4.pth" in err and zoo.HAT_PAGE in err and str(cache / "HAT_SRx4.pth") in err


@pytest.mark.parametrize("command", ["models", "info"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"swinir {command}" in out
