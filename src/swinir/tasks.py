"""Task names, in one place: what a network is built for, and the evaluation protocols of the paper.

A model task (``ModelSpec.task``, the zoo, ``swinir models --task``) says what the architecture does;
an evaluation task (``swinir eval --task``, ``evaluate.Protocol``) also says gray or color, because the
paper reports those separately. ``eval_task`` maps one to the other.
"""

from __future__ import annotations

# what a network does (guessed from its architecture by ModelSpec.task); compressed_sr is Swin2SR's SR of
# JPEG-compressed inputs (its pixelshuffle_aux models)
MODEL_TASKS = ("classical_sr", "lightweight_sr", "real_sr", "compressed_sr", "denoise", "jpeg")
# the papers' test protocols (SwinIR's main_test_swinir.py, and Swin2SR's main_test_swin2sr.py which adds
# compressed_sr: SR of a JPEG-compressed bicubic LR, scored like classical SR)
EVAL_TASKS = (
    "classical_sr",
    "lightweight_sr",
    "real_sr",
    "compressed_sr",
    "gray_dn",
    "color_dn",
    "jpeg_car",
    "color_jpeg_car",
)
SR_TASKS = ("classical_sr", "lightweight_sr", "real_sr", "compressed_sr")
GRAY_TASKS = ("gray_dn", "jpeg_car")
DENOISE_TASKS = ("gray_dn", "color_dn")
JPEG_TASKS = ("jpeg_car", "color_jpeg_car")


def eval_task(model_task: str, in_chans: int) -> str:
    """The evaluation protocol for a network of ``model_task`` taking ``in_chans`` channels."""
    if model_task not in MODEL_TASKS:
        raise ValueError(f"unknown model task {model_task!r}; expected one of {', '.join(MODEL_TASKS)}")
    gray = in_chans == 1
    if model_task == "denoise":
        return "gray_dn" if gray else "color_dn"
    if model_task == "jpeg":
        return "jpeg_car" if gray else "color_jpeg_car"
    return model_task
