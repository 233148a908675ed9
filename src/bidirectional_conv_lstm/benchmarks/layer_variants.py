"""What is timed for the layer shapes (a)-(c): our ConvLSTM in several guises, the reference designs, and the
machine's convolution limit.

Variants:
  ours / ours+plain      our ConvLSTM, fused sequence path (default, ``memory_format="auto"``: the faster layout
                         measured once per process) / the plain per-step loop
  ours+bf16              our ConvLSTM under bf16 autocast (cell state float32)
  ours+channels_last     the fused path forced to channels_last (``module.memory_format = "channels_last"``)
  ours+contiguous        the fused path forced to contiguous (NCHW) tensors
  ours+compile           ``torch.compile(module)`` (traces the plain loop; compile time reported)
  ours+pointwise         the fused path with ``pointwise="compiled"``: each step's pointwise work compiled
  ours+bf16+pointwise    the same under bf16 autocast (compile time reported for both)
  ours+checkpoint        ``gradient_checkpointing=True`` (memory lever)
  concat                 reference: conv over ``cat([x_t, h])``, one convolution per step
  concat+bf16            the same under bf16 autocast
  two-conv               reference: ``W_x * x_t + W_h * h`` per step, nothing hoisted
  limit fp32/bf16        one large conv2d of the recurrent convolution's shape over all ``B*T`` frames,
                         channels_last; ``limit fp32 nchw`` / ``limit bf16 nchw`` the same in contiguous (NCHW)
                         layout. Each row's ``% limit`` is against the faster limit of its precision.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.convlstm.convlstm import ConvLSTM
from .measurement import Variant, timed
from .references import ConcatConvLSTM, TwoConvConvLSTM
from .shapes import LayerConfig

ALL_VARIANTS = (
    "ours",
    "ours+plain",
    "ours+bf16",
    "ours+channels_last",
    "ours+contiguous",
    "ours+checkpoint",
    "ours+compile",
    "ours+pointwise",
    "ours+bf16+pointwise",
    "concat",
    "concat+bf16",
    "two-conv",
    "limit fp32",
    "limit fp32 nchw",
    "limit bf16",
    "limit bf16 nchw",
)
# Run on configuration (a) only by default (targets and memory levers); their cost on (b) and (c)
# would break the ~10 minute budget of a full run on a 2-core CPU. ``--variants`` forces them.
EXTRA_VARIANTS = (
    "ours+plain",
    "ours+checkpoint",
    "ours+compile",
    "ours+pointwise",
    "ours+bf16+pointwise",
    "concat+bf16",
    "ours+contiguous",
)
# The variants that compile (``--no-compile`` leaves them out), with their compile time reported as ``setup_s``.
COMPILE_VARIANTS = ("ours+compile", "ours+pointwise", "ours+bf16+pointwise")
LIMITS = (
    (torch.float32, "limit fp32", torch.channels_last),
    (torch.float32, "limit fp32 nchw", torch.contiguous_format),
    (torch.bfloat16, "limit bf16", torch.channels_last),
    (torch.bfloat16, "limit bf16 nchw", torch.contiguous_format),
)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def module_variant(
    name: str, module: nn.Module, x: torch.Tensor, flops: float, *, autocast=None, note: str = ""
) -> Variant:
    """A variant timing ``module(x)`` (its first output), under ``autocast`` (a dtype, or None for none); the
    training step runs backward from a fixed random output gradient, made by one step taken here."""

    def forward():
        if autocast is None:
            return _first(module(x))
        with torch.autocast(x.device.type, dtype=autocast):
            return _first(module(x))

    gradient = []

    def train():
        # backward from a fixed output gradient (allocated once, outside the measurement), so the
        # memory figures are the layer's own and no loss function's temporaries
        module.zero_grad(set_to_none=True)
        output = forward()
        if not gradient:
            gradient.append(torch.randn(output.shape, device=output.device, dtype=output.dtype))
        output.backward(gradient[0])

    def infer():
        with torch.no_grad():
            forward()

    variant = Variant(name, train, infer, flops, note, device=x.device.type, forward=forward)
    train()  # allocates the output gradient before any measurement
    return variant


def limit_variant(
    name: str, config: LayerConfig, device: str, dtype: torch.dtype, layout=torch.channels_last
) -> Variant:
    """One conv2d of the recurrent convolution's shape over all B*T frames, in memory format `layout`."""
    frames = config.batch * config.steps
    hidden = config.hidden
    x = torch.randn(frames, hidden, config.size, config.size, device=device, dtype=dtype)
    x = x.contiguous(memory_format=layout).requires_grad_(True)
    weight = torch.randn(4 * hidden, hidden, config.kernel, config.kernel, device=device, dtype=dtype)
    weight = (weight * 0.01).contiguous(memory_format=layout).requires_grad_(True)
    flops = 2 * frames * config.size**2 * config.kernel**2 * hidden * 4 * hidden

    gradient = torch.randn(frames, 4 * hidden, config.size, config.size, device=device, dtype=dtype)
    gradient = gradient.contiguous(memory_format=layout)

    def train():
        x.grad = weight.grad = None
        F.conv2d(x, weight, padding=config.kernel // 2).backward(gradient)

    def infer():
        with torch.no_grad():
            F.conv2d(x, weight, padding=config.kernel // 2)

    layout_name = "channels_last" if layout is torch.channels_last else "contiguous"
    note = f"one conv2d {frames}x{hidden}->{4 * hidden}, {layout_name} {dtype}"
    return Variant(name, train, infer, flops, note, device=device)


def wanted(name: str, config: LayerConfig, names: set[str] | None, exclude: set[str] = frozenset()) -> bool:
    """Whether variant ``name`` runs on ``config``: asked for (``names``; None: all) and not excluded; the
    :data:`EXTRA_VARIANTS` run on (a) only unless ``names`` asks for them."""
    if name in exclude:
        return False
    if name in EXTRA_VARIANTS and config.name != "a":
        return names is not None and name in names  # only where a target needs them, unless asked
    return names is None or name in names


def _module_choices(
    config: LayerConfig, device: str, ours: ConvLSTM
) -> dict[str, tuple[Callable, object, str]]:
    """name -> (a function making the timed module, autocast dtype or None, note), in the report's order; a
    module is made only when its variant is wanted."""
    reference_args = (
        config.in_channels,
        config.hidden,
        config.kernel,
        config.num_layers,
        config.bidirectional,
    )

    def changed(**attributes):
        module = copy.deepcopy(ours)
        for key, value in attributes.items():
            setattr(module, key, value)
        return module

    def concat():
        return ConcatConvLSTM(*reference_args).to(device).load_from(ours)

    def two_conv():
        return TwoConvConvLSTM(*reference_args).to(device).load_from(ours)

    return {
        "ours": (lambda: ours, None, "default: fused sequence path, fp32, memory_format auto"),
        "ours+plain": (lambda: changed(fused=False), None, "plain per-step loop (fused=False)"),
        "ours+bf16": (lambda: ours, torch.bfloat16, "bf16 autocast, memory_format auto"),
        "ours+channels_last": (lambda: changed(memory_format="channels_last"), None, "fused, channels_last"),
        "ours+contiguous": (lambda: changed(memory_format="contiguous"), None, "fused, contiguous"),
        "ours+checkpoint": (lambda: changed(gradient_checkpointing=True), None, "gradient_checkpointing"),
        "ours+compile": (lambda: torch.compile(copy.deepcopy(ours)), None, "torch.compile(module)"),
        "ours+pointwise": (lambda: changed(pointwise="compiled"), None, 'fused, pointwise="compiled"'),
        "ours+bf16+pointwise": (
            lambda: changed(pointwise="compiled"),
            torch.bfloat16,
            'bf16 autocast, pointwise="compiled"',
        ),
        "concat": (concat, None, "reference, cat([x, h]) conv"),
        "concat+bf16": (concat, torch.bfloat16, "reference"),
        "two-conv": (two_conv, None, "reference, nothing hoisted"),
    }


def build_layer_variants(
    config: LayerConfig, device: str, names: set[str] | None, exclude: set[str] = frozenset()
) -> list[Variant]:
    """The wanted variants of layer shape ``config`` on ``device`` (see the module docstring), each with the same
    input and, for ours and the references, the same weights (seed 0); the :data:`COMPILE_VARIANTS` report their
    compile time as ``setup_s``."""
    torch.manual_seed(0)
    x = torch.randn(config.steps, config.batch, config.in_channels, config.size, config.size, device=device)
    ours = ConvLSTM(config.in_channels, config.hidden, **config.layer_kwargs()).to(device)
    flops = config.forward_flops()
    variants = []
    for name, (make, autocast, note) in _module_choices(config, device, ours).items():
        if not wanted(name, config, names, exclude):
            continue
        started = time.perf_counter()
        variant = module_variant(name, make(), x, flops, autocast=autocast, note=note)  # one training step
        if name in COMPILE_VARIANTS:  # compile time: the first training step and the first inference pass
            variant.setup_s = time.perf_counter() - started + timed(variant.infer, device)
        variants.append(variant)
    for dtype, label, layout in LIMITS:
        if wanted(label, config, names, exclude):
            variants.append(limit_variant(label, config, device, dtype, layout))
    return variants
