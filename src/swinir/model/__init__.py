"""The SwinIR family's networks: SwinIR (Liang et al., ICCVW 2021: shallow conv -> residual Swin Transformer
blocks -> reconstruction), Swin2SR (Conde et al., ECCVW 2022: the same with SwinV2 blocks) and HAT (Chen et
al., CVPR 2023: hybrid window + channel attention blocks and an overlapping cross-attention per group).

Parameter names and shapes follow the released checkpoints exactly; the output equals the original
forward's (max abs difference ~1e-7 in fp32 on every golden case). Everything derived from the window or
the input size (relative-position index, shift masks, window orders) is rebuilt on demand, so any input
size works and checkpoints carrying those buffers load regardless of the ``img_size`` they were made at.

The package, by concern:

- ``network``: SwinIR's modules and their parameter names (read this for the architecture);
- ``swin2sr``: Swin2SR's, readable alone, with its detection and released layout;
- ``hat``: HAT's, likewise;
- ``shared``: what the architectures share (heads, residual convs, padding, window attention with a
  relative-position bias, the ``Restorer`` base);
- ``layout``: tokens in window order, shifted-window gathers, shift masks per window group;
- ``cpu``: the CPU inference backend (oneDNN fused linears, chunked blocks with the C attention kernel,
  Winograd convolutions); the one place that touches private torch ops and ``swinir.kernels``;
- ``flops``: the FLOP count of a forward, for the benchmark's GFLOP/s.

What makes it faster and leaner than the original forward, at the same arithmetic: tokens stay in window
order for a whole residual group, shifted blocks gather once through a cached index, attention is a few
fused calls with small per-group biases, convolutions run channels-last (the token layout), and CPU
inference takes the ``cpu`` backend. ``fp16_safe`` (on by default): in fp16 the residual streams,
LayerNorms and residual-group convolutions run in fp32, because the released M/L models' residual stream
grows past the fp16 range; matmuls and attention stay in fp16.
"""

from swinir.model.cpu import Exec, native_bf16
from swinir.model.flops import flops
from swinir.model.hat import HAT
from swinir.model.layout import (
    MASK_VALUE,
    WindowPlan,
    add_image_to_tokens,
    group_masks,
    image_to_tokens,
    relative_position_index,
    shift_mask,
    shifted_window_plan,
    tokens_to_image,
    window_partition,
    window_reverse,
)
from swinir.model.network import (
    DERIVED_SUFFIXES,
    RESI_CONNECTIONS,
    RGB_MEAN,
    RSTB,
    UPSAMPLERS,
    BasicLayer,
    Mlp,
    SwinIR,
    SwinTransformerBlock,
    Upsample,
    UpsampleOneStep,
    WindowAttention,
)
from swinir.model.shared import Restorer
from swinir.model.swin2sr import Swin2SR

__all__ = [
    "DERIVED_SUFFIXES",
    "HAT",
    "MASK_VALUE",
    "RESI_CONNECTIONS",
    "RGB_MEAN",
    "RSTB",
    "Restorer",
    "Swin2SR",
    "UPSAMPLERS",
    "BasicLayer",
    "Exec",
    "Mlp",
    "SwinIR",
    "SwinTransformerBlock",
    "Upsample",
    "UpsampleOneStep",
    "WindowAttention",
    "WindowPlan",
    "add_image_to_tokens",
    "flops",
    "group_masks",
    "image_to_tokens",
    "native_bf16",
    "relative_position_index",
    "shift_mask",
    "shifted_window_plan",
    "tokens_to_image",
    "window_partition",
    "window_reverse",
]
