"""One reader of golden/released_state_dicts.json (swinir.paths) for the benchmarks and the tests; three
benchmarks read it each their own way before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from swinir.errors import SwinIRError
from swinir.paths import RELEASED_STATE_DICTS, released_configuration, released_configurations

ROOT = Path(__file__).resolve().parents[1]


def test_the_reader_gives_the_13_released_configurations(shared: Path) -> None:
    configs = released_configurations(shared)
    assert len(configs) == 13 and {"classical_x2", "lightweight_x4", "real_L_x4", "color_jpeg"} <= set(configs)
    real_l = released_configuration("real_L_x4", shared)
    assert real_l["config"]["embed_dim"] == 240 and real_l["parameters"] == 28013059
    with pytest.raises(SwinIRError, match="unknown released configuration 'classical_x5'; choose from classical_x2"):
        released_configuration("classical_x5", shared)


def test_without_the_shared_folder_it_says_so_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SwinIRError, match=r"cannot read the released configurations") as err:
        released_configurations(tmp_path)
    assert str(tmp_path / RELEASED_STATE_DICTS) in str(err.value) and "\n" not in str(err.value)


def test_no_benchmark_or_test_reads_the_file_itself() -> None:
    readers = [
        p.relative_to(ROOT)
        for folder in ("benchmarks", "tests", "tools")
        for p in (ROOT / folder).rglob("*.py")
        if re.search(
            r"released_state_dicts\.json\"\)\s*\)?\.read_text|json\.load\(.*released_state_dicts", p.read_text()
        )
    ]
    assert readers == []
    for name in ("inference.py", "gpu.py", "before_after.py"):
        assert "released_configuration" in (ROOT / "benchmarks" / name).read_text(), name
