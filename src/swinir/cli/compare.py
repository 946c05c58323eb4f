"""`swinir compare`: a labelled side-by-side sheet (e.g. LR | output | HR) for visual checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from swinir.errors import SwinIRError

EPILOG = """examples:
  swinir compare Set5/LR_bicubic/X4/babyx4.png out/baby_SwinIR.png Set5/HR/baby.png -o sheet.png
  swinir compare lr.png a.png b.png --labels LR ours theirs --crop 100,200,128 -o crops.png
  swinir compare noisy.png denoised.png --full -o side_by_side.png

Smaller images (an LR input) are enlarged by pixel repetition to the largest one's size, so the
same region lines up in every panel. The crop is given in the largest image's pixels.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "compare",
        help="write a side-by-side image sheet (LR | output | HR crops)",
        description="Put images side by side with labels, cropped to the same region, for visual checks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", help="image files, left to right")
    p.add_argument("-o", "--output", required=True, help="sheet file to write (PNG)")
    p.add_argument(
        "--labels",
        nargs="+",
        help="one label per image (default: file names; images of the same name, e.g. an input and its "
        "restored output, are labelled 'input' (the first) and by their folder, e.g. 'out')",
    )
    p.add_argument("--crop", default="256", help="SIZE for a centred square, or TOP,LEFT,SIZE (default 256)")
    p.add_argument("--full", action="store_true", help="whole images, no crop")
    p.set_defaults(func=run)


def default_labels(images: list[str]) -> list[str]:
    """File names; where several images share one (``photo.png`` and ``out/photo.png``, the input and what a
    model made of it), the first is "input" and the others are named by their folder (or path)."""
    paths = [Path(i).absolute() for i in images]
    labels = [p.stem for p in paths]
    for stem in {s for s in labels if labels.count(s) > 1}:
        first, *others = [i for i, s in enumerate(labels) if s == stem]
        # beside the input: its file name (photo.jpg); elsewhere: its folder (out), or its path if those repeat
        names = [paths[i].name if paths[i].parent == paths[first].parent else paths[i].parent.name for i in others]
        unique = len(set(names)) == len(names) and "input" not in names and all(names)
        labels[first] = "input"
        for i, name in zip(others, names):
            labels[i] = name if unique else images[i]
    return labels


def _parse_crop(text: str) -> int | tuple[int, int, int]:
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        raise SwinIRError(f"--crop must be SIZE or TOP,LEFT,SIZE (integers), got {text!r}") from None
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 3 and parts[2] > 0 and min(parts) >= 0:
        return parts[0], parts[1], parts[2]
    raise SwinIRError(f"--crop must be SIZE or TOP,LEFT,SIZE (positive integers), got {text!r}")


def run(args: argparse.Namespace) -> int:
    from swinir.evaluate import comparison_sheet
    from swinir.io import check_not_input, read_uint8, write_image

    if args.labels and len(args.labels) != len(args.images):
        raise SwinIRError(f"{len(args.labels)} labels for {len(args.images)} images; give one label per image")
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise SwinIRError(f"the sheet is written as PNG; name it .png, not {out.name}")
    check_not_input(out, args.images)
    labels = args.labels or default_labels(args.images)
    panels = [(lbl, read_uint8(i)) for lbl, i in zip(labels, args.images)]
    crop = None if args.full else _parse_crop(args.crop)
    sheet = comparison_sheet(panels, crop=crop)
    print(f"wrote {write_image(out, sheet)} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0
