"""Figures the help and the README state agree with what the tools measure (the eval help once said
28.42 / 0.8104 for bicubic Set5 x4, where `swinir eval` and the README give 28.43 / 0.8111)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from swinir.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _bicubic_set5(data_dir: Path, scale: int, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    argv = ["eval", "--task", "classical_sr", "--model", "bicubic", "--hr", str(data_dir / "Set5" / "HR")]
    assert main([*argv, "--scale", str(scale)]) == 0
    m = re.search(r"Paper format \(Y\): (\d+\.\d\d)/(\d\.\d{4})", capsys.readouterr().out)
    assert m, "no paper-format line"
    return m.group(1), m.group(2)


def test_bicubic_set5_figures_in_the_help_and_readme_are_measured(data_dir: Path, capsys) -> None:
    x4 = _bicubic_set5(data_dir, 4, capsys)
    x2 = _bicubic_set5(data_dir, 2, capsys)
    assert x4 == ("28.43", "0.8111") and x2 == ("33.67", "0.9303")  # the classic figures
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    help_text = sub.choices["eval"].format_help()  # type: ignore[attr-defined]
    assert f"bicubic baseline (Set5 x4: {x4[0]} / {x4[1]} on Y)" in help_text
    readme = README.read_text()
    assert f"bicubic {x4[0]} / {x4[1]}" in readme and f"bicubic {x2[0]} / {x2[1]}" in readme  # the Models table
    assert f"{x2[0]}/{x2[1]} (x2)" in readme and f"{x4[0]}/{x4[1]} (x4)" in readme  # Reproducing the paper's numbers


def test_readme_says_when_eval_writes_files() -> None:
    """eval writes JSON/CSV only with --json, --csv or --save; the README said it always did."""
    text = " ".join(README.read_text().split())
    assert "and writes JSON and CSV" not in text
    assert "`--json FILE` and `--csv FILE` write them to files" in text
