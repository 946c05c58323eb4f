"""Where tiles go: the tile side rounded to the window, and the spans that cover one axis.

Shared by the engine, which lays the tiles, and by ``swinir.fit``, which prices a tiling before choosing it.
"""

from __future__ import annotations

import math

__all__ = ["plan_axis", "round_tile", "tiles"]


def round_tile(tile: int, overlap: int, multiple: int) -> tuple[int, int]:
    """Tile rounded to the nearest window multiple (at least one window); overlap rounded up to one."""
    t = max(multiple, int(round(tile / multiple)) * multiple)
    o = int(math.ceil(overlap / multiple)) * multiple
    if o >= t:
        o = t - multiple
    return t, o


def plan_axis(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` covering ``[0, length)``.

    Starts are multiples of ``multiple``; consecutive tiles overlap by at least ``overlap`` (when ``tile``
    and ``overlap`` are multiples of ``multiple``) and are spread evenly. The fewest tiles of at most
    ``tile`` are laid, each only as long as they need to be to cover ``length`` (a window multiple): 1200 px
    in tiles of up to 1024 with 32 px overlaps is two 616 px tiles, not two 1024 px ones that compute 848 px
    twice. The last tile ends at ``length`` and may be up to ``multiple - 1`` longer than the others.
    """
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    needed = math.ceil((length + (n - 1) * overlap) / n)
    tile = min(tile, math.ceil(needed / multiple) * multiple)
    spans: list[tuple[int, int]] = []
    for i in range(n):
        start = (i * (length - tile) // (n - 1)) // multiple * multiple
        end = length if i == n - 1 else start + tile
        if spans and spans[-1][0] == start:
            spans[-1] = (start, max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def tiles(height: int, width: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """The (height, width) of every tile of an image laid with ``tile`` and ``overlap`` (rounded as the
    engine rounds them), row by row."""
    t, o = round_tile(tile, overlap, multiple)
    ys, xs = plan_axis(height, t, o, multiple), plan_axis(width, t, o, multiple)
    return [(y1 - y0, x1 - x0) for y0, y1 in ys for x0, x1 in xs]
