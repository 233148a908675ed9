"""ConvLSTM frame prediction on transformers: an encoder-forecaster (Shi et al. 2015, arXiv:1506.04214).

* :class:`ConvLSTMModel` (the encoder): space-to-depth patches, then a stack of (bidirectional) ConvLSTM layers over
  the observed frames.
* :class:`ConvLSTMForFramePrediction`: the encoder, a unidirectional ConvLSTM forecaster started from the encoder's
  final states and rolled forward autoregressively for any number of future frames, and a 1x1 convolution head that
  maps the forecaster's states back to frames.

Rain-rate models (``config.rain_rate_transform`` set) forecast in mm/h with
:meth:`ConvLSTMForFramePrediction.forecast_rain_rate` (``forecasting_convlstm.py``); the losses, including the
intensity-weighted ones of precipitation nowcasting, live in ``losses_convlstm.py``.

Ensemble models (``config.ensemble_noise_channels > 0``) add new noise to the forecaster's first layer at every step
(``ensemble_convlstm.py``): ``forward(..., num_members=N, generator=...)`` draws ``N`` members from one run of the
encoder, and with ``config.ensemble_train_members >= 2`` training scores the members with the almost fair CRPS.

This file travels with ``push_to_hub`` as remote code together with ``configuration_convlstm.py``,
``convlstm.py``, ``losses_convlstm.py``, ``forecasting_convlstm.py``, ``ensemble_convlstm.py`` and
``rain_rate.py`` (and the files they import): it imports only torch,
numpy, transformers and those files (relatively), so ``AutoModel.from_pretrained(repo, trust_remote_code=True)``
works where ``bidirectional_conv_lstm`` is not installed.
"""

import math
import numbers
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
import transformers.initialization as init
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .advection_convlstm import AdvectionHead
from .argument_checks import check_int
from .configuration_convlstm import ConvLSTMConfig, check_config
from .convlstm import ConvGate, ConvLSTM, ConvLSTMCell, State, state_dtype
from .ensemble_convlstm import NOISE_INIT_STD, NoiseInjection, repeat_members
from .forecasting_convlstm import forecast_exceedance_probability, forecast_rain_rate
from .loading_convlstm import load_clearly
from .losses_convlstm import (  # noqa: F401 (structural_similarity re-exported)
    almost_fair_crps,
    fractions_skill_loss,
    frame_prediction_loss,
    motion_loss,
    structural_similarity,
)
from .rain_rate import RainRateTransform


@dataclass
class ConvLSTMModelOutput(ModelOutput):
    r"""
    Output of [`ConvLSTMModel`], the encoder. `B` is the batch size, `T` the number of observed frames, `D` 2 for a
    bidirectional encoder and 1 otherwise, `C_l` the `l`-th entry of `config.hidden_sizes` and `h x w` the patch grid
    (`H / patch_size x W / patch_size`).

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, T, D * C_L, h, w)`):
            The last layer's hidden states at every observed frame, forward then backward direction on the channel
            axis, both aligned with the input's time steps.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            One tensor per layer, of shape `(B, T, D * C_l, h, w)`: every layer's output (the last one is
            `last_hidden_state`).
        final_hidden_states (`tuple(torch.FloatTensor)`):
            One tensor per layer, of shape `(D, B, C_l, h, w)`: the final hidden state of each direction (the forward
            direction's after the last frame, the backward direction's after the first).
        final_cell_states (`tuple(torch.FloatTensor)`):
            Like `final_hidden_states`, for the cell states (float32 under autocast).
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    final_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    final_cell_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class FramePredictionOutput(ModelOutput):
    r"""
    Output of [`ConvLSTMForFramePrediction`]. `T_out` is the number of predicted frames; other letters as in
    [`ConvLSTMModelOutput`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            `config.loss` between `predictions` and `labels`, computed in float32.
        predictions (`torch.FloatTensor` of shape `(B, T_out, C, H, W)`):
            The predicted frames, in `[0, 1]` (a sigmoid output), in the dtype of `pixel_values`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            One tensor per forecaster layer, of shape `(B, T_out, C_l, h, w)`: its hidden state at each predicted
            frame.
        encoder_hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The encoder's per-layer outputs, as `ConvLSTMModelOutput.hidden_states`.
        motion (`torch.FloatTensor` of shape `(B, T_out, 2, H, W)`, *optional*):
            Returned when `output_motion=True` or `target_motion` is given, for advection models. The advection
            head's motion field at each predicted frame, float32 pixels per step, x (columns) then y (rows):
            predicted frame `k` is frame `k - 1` sampled at `x - motion_k(x)` (before the gate's blend).
        members (`torch.FloatTensor` of shape `(B, N, T_out, C, H, W)`, *optional*):
            Returned when members are drawn (`num_members` given, or `labels` with
            `config.ensemble_train_members >= 2`): every member's predicted frames; `predictions` is then their
            mean. With members, `hidden_states` and `motion` hold every member on the batch axis, `B * N` entries,
            sample `b`'s members at `b * N ... b * N + N - 1`.
    """

    loss: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    motion: torch.FloatTensor | None = None
    members: torch.FloatTensor | None = None


# --------------------------------------------------------------------------- input checks
def _check_frames(name: str, frames, config: ConvLSTMConfig) -> None:
    """Raise a clear error unless `frames` is a float (B, T, C, H, W) tensor that fits `config`."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, T, C, H, W), got {type(frames).__name__}"
        )
    if frames.ndim != 5:
        raise ValueError(f"{name} must have 5 dimensions (B, T, C, H, W), got shape {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise TypeError(
            f"{name} must be a floating point tensor with values in [0, 1], got dtype {frames.dtype}"
        )
    batch, steps, channels, height, width = frames.shape
    if batch == 0 or steps == 0:
        raise ValueError(
            f"{name} must hold at least one sample and one frame, got shape {tuple(frames.shape)}"
        )
    if channels != config.num_channels:
        raise ValueError(
            f"{name} has {channels} channels (dim 2) but config.num_channels={config.num_channels}; "
            f"got shape {tuple(frames.shape)}"
        )
    patch = config.patch_size
    if height % patch or width % patch or height == 0 or width == 0:
        raise ValueError(
            f"{name} frames of {height}x{width} are not divisible by config.patch_size={patch}; "
            f"crop or pad them to a multiple of {patch}"
        )


def _described(value) -> str:
    """How an error message names a wrong argument: a tensor's dtype and shape, anything else's type."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _conv_weight_init(weight: torch.Tensor, method: str) -> None:
    if method == "pytorch":
        init.kaiming_uniform_(weight, a=math.sqrt(5))  # what nn.Conv2d.reset_parameters does
    elif method == "xavier_uniform":
        init.xavier_uniform_(weight)
    else:
        init.kaiming_normal_(weight, nonlinearity="linear")


# --------------------------------------------------------------------------- models
class ConvLSTMPreTrainedModel(PreTrainedModel):
    """Owns the config class, the weight initialisation and gradient checkpointing support of the ConvLSTM models.

    `_init_weights` keeps the layer's own initialisation (PyTorch's `Conv2d` default with `init_method="pytorch"`)
    and the forget-gate bias, where transformers' default would draw every convolution from normal(0, 0.02) and zero
    every bias. Checkpointing (`activation_checkpointing_enable()`, or the deprecated `gradient_checkpointing_enable()`)
    recomputes chunks of about `sqrt(T)` encoder steps and every forecaster step in the backward pass.
    """

    config_class = ConvLSTMConfig
    base_model_prefix = "encoder"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained`, with errors a person can act on (`loading_convlstm.load_clearly`): a
        name that is neither a folder nor a reachable Hub repo raises one `FileNotFoundError` that says which (a
        path-like name that is no folder, before any network call); a truncated or corrupted weights file a
        `ValueError` naming it."""
        transformers_load = super().from_pretrained
        if (
            pretrained_model_name_or_path is None
        ):  # a config and a state_dict given instead (transformers' form)
            return transformers_load(None, *model_args, **kwargs)
        return load_clearly(
            lambda name, **options: transformers_load(name, *model_args, **options),
            pretrained_model_name_or_path,
            argument="pretrained_model_name_or_path",
            **kwargs,
        )

    def _initialize_weights(self, module, is_custom_code: bool = False):
        # transformers skips custom-code modules without parameters of their own; a ConvGate has none, yet it
        # owns the forget-gate bias held by its convolution or norm (the forecaster: its head's bias), so they
        # must always be visited.
        if isinstance(module, (ConvGate, ConvLSTMForecaster, AdvectionHead, NoiseInjection)):
            is_custom_code = False
        super()._initialize_weights(module, is_custom_code)

    @torch.no_grad()
    def _init_weights(self, module):
        """Initialise one module; parameters already loaded from a checkpoint are left alone.

        Children are visited before their parents, so a ConvGate finds its convolutions initialised and only sets
        the gate bias (zero, `forget_bias` on the forget gate) and the peephole weights (zero); the forecaster sets
        its head's bias to `logit(config.prediction_prior)`; the ensemble noise injection redraws its convolution
        from normal(0, 0.02) with a zero bias (members start close together).
        """
        method = self.config.init_method
        if isinstance(module, nn.Conv2d):
            _conv_weight_init(module.weight, method)
            if module.bias is not None:
                if method == "pytorch":
                    fan_in = module.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in)
                    init.uniform_(module.bias, -bound, bound)
                else:
                    init.zeros_(module.bias)
        elif isinstance(module, nn.GroupNorm):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
        elif isinstance(module, ConvGate):
            bias = module.gate_bias
            # a slice loses the "already loaded" flag, so check it on the whole bias
            if bias is not None and not getattr(bias, "_is_hf_initialized", False):
                hidden = module.hidden_channels
                bias.zero_()
                bias[hidden : 2 * hidden].fill_(module.forget_bias)
            if module.peephole_weight is not None:
                init.zeros_(module.peephole_weight)
        elif isinstance(module, ConvLSTMForecaster):
            prior = float(self.config.prediction_prior)
            init.constant_(module.head.bias, math.log(prior / (1 - prior)))
        elif isinstance(module, NoiseInjection):
            init.normal_(module.conv.weight, std=NOISE_INIT_STD)
            init.zeros_(module.conv.bias)
        elif isinstance(module, AdvectionHead):
            # No motion and a fixed gate until trained: the model starts close to persistence.
            init.zeros_(module.conv.weight)
            bias = module.conv.bias
            if not getattr(bias, "_is_hf_initialized", False):  # a slice loses the flag: check the whole bias
                bias[:2].zero_()
                bias[2:].fill_(module.gate_bias)


class ConvLSTMModel(ConvLSTMPreTrainedModel):
    r"""The ConvLSTM encoder: space-to-depth patches, then `len(config.hidden_sizes)` ConvLSTM layers (bidirectional
    when `config.bidirectional`) over the observed frames.

    Each layer is a single-layer [`ConvLSTM`] (so layers may have different sizes), reachable as `layers[l]`; its
    cells are `layers[l].cells[d]` (`d = 0` forward, `1` backward). The input convolution of a layer runs once over
    all frames; only the recurrent convolution runs in the time loop.

    Inputs:
        pixel_values (`torch.FloatTensor` of shape `(B, T, C, H, W)`): the observed frames, `C = config.num_channels`,
            `H` and `W` divisible by `config.patch_size`.

    Returns: [`ConvLSTMModelOutput`] (or a tuple when `return_dict=False`).
    """

    def __init__(self, config: ConvLSTMConfig):
        check_config(config)
        super().__init__(config)
        directions = 2 if config.bidirectional else 1
        in_channels = config.num_channels * config.patch_size**2
        layers = []
        for hidden in config.hidden_sizes:
            layers.append(
                ConvLSTM(
                    in_channels,
                    hidden,
                    config.kernel_size,
                    padding="same",
                    bidirectional=config.bidirectional,
                    peephole=config.peephole,
                    norm=config.norm,
                    norm_groups=config.norm_groups,
                    forget_bias=config.forget_bias,
                )
            )
            in_channels = directions * hidden
        self.layers = nn.ModuleList(layers)
        self.post_init()

    def encode(self, patches: torch.Tensor, output_hidden_states: bool = False):
        """Run the layers over time-major patches `(T, B, C*p*p, h, w)`.

        Returns `(output (T, B, D*C_L, h, w), per-layer outputs or None, final h per layer, final c per layer)`.
        """
        x = patches
        outputs, final_h, final_c = [], [], []
        for index, layer in enumerate(self.layers):
            if index > 0 and self.config.dropout and self.training:
                x = F.dropout(x, self.config.dropout, training=True)
            x, (h_n, c_n) = layer(x)
            final_h.append(h_n)
            final_c.append(c_n)
            if output_hidden_states:
                outputs.append(x)
        return x, (tuple(outputs) if output_hidden_states else None), tuple(final_h), tuple(final_c)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ConvLSTMModelOutput | tuple:
        _check_frames("pixel_values", pixel_values, self.config)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        patches = F.pixel_unshuffle(pixel_values, self.config.patch_size).transpose(0, 1)
        last, per_layer, final_h, final_c = self.encode(patches, output_hidden_states)
        output = ConvLSTMModelOutput(
            last_hidden_state=last.transpose(0, 1),
            hidden_states=None if per_layer is None else tuple(x.transpose(0, 1) for x in per_layer),
            final_hidden_states=final_h,
            final_cell_states=final_c,
        )
        return output if return_dict else output.to_tuple()


def extend_frames(frames: torch.Tensor, margin: int) -> torch.Tensor:
    """`(..., H, W)` frames extended by `margin` pixels on every side, repeating the edge pixels."""
    if not margin:
        return frames
    *lead, height, width = frames.shape
    flat = frames.reshape(-1, 1, height, width)
    return F.pad(flat, (margin,) * 4, mode="replicate").reshape(
        *lead, height + 2 * margin, width + 2 * margin
    )


def _crop_margin(tensor: torch.Tensor, margin: int) -> torch.Tensor:
    """The inside of `(..., H, W)` without `margin` pixels (or patches) on every side."""
    return (
        tensor[..., margin : tensor.shape[-2] - margin, margin : tensor.shape[-1] - margin]
        if margin
        else tensor
    )


class ConvLSTMForecaster(nn.Module):
    r"""The unidirectional ConvLSTM stack that rolls the future forward, with the head that draws each frame.

    Layer `l` starts from the encoder's final state of layer `l`; for a bidirectional encoder a 1x1 convolution
    (`state_bridges[l]`) maps the concatenated forward and backward `(h, c)` (`4 C_l` channels) to the forecaster's
    `(h, c)` (`2 C_l`). Each step feeds layer 0 the previous frame (the last observed one first, then the model's own
    prediction, or the ground truth under teacher forcing), layer `l > 0` the new hidden state of layer `l - 1`, and
    the head (a 1x1 convolution over all layers' hidden states concatenated, as in Shi et al. 2015, then a sigmoid)
    predicts the next frame's patches. With `config.advection`, an [`AdvectionHead`] blends that frame with the
    previous frame moved along a predicted motion field. With `config.ensemble_noise_channels > 0`, a
    [`NoiseInjection`] (`noise_injection`) adds a new draw of convolved noise to layer 0's input gates at every step:
    each draw is one ensemble member. Cells are stepped directly (`cell.step(cell.gate.input_gates(x), state)`)
    because layers interleave within a time step.
    """

    def __init__(self, config: ConvLSTMConfig):
        super().__init__()
        self.config = config
        patch_channels = config.num_channels * config.patch_size**2
        options = dict(
            peephole=config.peephole,
            norm=config.norm,
            norm_groups=config.norm_groups,
            forget_bias=config.forget_bias,
        )
        cells, in_channels = [], patch_channels
        for hidden in config.hidden_sizes:
            cells.append(ConvLSTMCell(in_channels, hidden, config.kernel_size, 1, "same", 1, True, **options))
            in_channels = hidden
        self.cells = nn.ModuleList(cells)
        if config.bidirectional:
            self.state_bridges = nn.ModuleList(nn.Conv2d(4 * h, 2 * h, 1) for h in config.hidden_sizes)
        else:
            self.state_bridges = None
        self.head = nn.Conv2d(sum(config.hidden_sizes), patch_channels, 1)
        self.advection = (
            AdvectionHead(sum(config.hidden_sizes), config.num_channels, config.patch_size)
            if config.advection
            else None
        )
        noise_channels = config.ensemble_noise_channels
        self.noise_injection = (
            NoiseInjection(noise_channels, 4 * config.hidden_sizes[0]) if noise_channels else None
        )
        self.gradient_checkpointing = False

    def initial_states(
        self, final_h: tuple[torch.Tensor, ...], final_c: tuple[torch.Tensor, ...]
    ) -> list[State]:
        """Per-layer `(h, c)` from the encoder's final states, each `(D, B, C_l, h, w)`."""
        states = []
        for index, (h_n, c_n) in enumerate(zip(final_h, final_c)):
            if self.state_bridges is None:
                hidden, cell = h_n[0], c_n[0]
            else:
                bridge = self.state_bridges[index]
                merged = torch.cat([h_n[0], h_n[1], c_n[0], c_n[1]], dim=1).to(bridge.weight.dtype)
                hidden, cell = bridge(merged).chunk(2, dim=1)
            dtype = state_dtype(cell.dtype)
            states.append((hidden.to(dtype), cell.to(dtype)))
        return states

    def step(self, frame: torch.Tensor, *flat_states: torch.Tensor):
        """One time step: `frame` are the previous frame's patches `(B, C*p*p, h, w)`, `flat_states` is
        `h_0, c_0, h_1, c_1, ...`. Returns `(next frame's patch logits, h_0, c_0, h_1, c_1, ...)`; the sigmoid of the
        logits is the predicted frame. With an advection head, the outputs are `(the predicted frame itself, its
        motion (B, 2, H, W), h_0, c_0, ...)`; with `advection_warp="origin"`, `flat_states` and the outputs end with
        the origin's patches and the summed displacement (see `advection_convlstm.py`). With a noise injection,
        the last of `flat_states` is this step's noise `(B, K, h, w)` (an argument, so that a checkpointed step
        recomputes with the same noise), which the outputs do not repeat.

        Hidden states are float32 when the weights are half precision (the cell keeps its state in float32), so
        they are cast to the weights' dtype before each convolution; a no-op for float32 weights and autocast.
        """
        if self.noise_injection is not None:
            *flat_states, noise = flat_states
        carried = flat_states[2 * len(self.cells) :]  # the origin and the displacement ("origin" warps)
        x, hiddens, new_states = frame, [], []
        for index, cell in enumerate(self.cells):
            if index > 0 and self.config.dropout and self.training:
                x = F.dropout(x, self.config.dropout, training=True)
            dtype = cell.gate.hidden_conv.weight.dtype
            input_gates = cell.gate.input_gates(x.to(dtype))
            if index == 0 and self.noise_injection is not None:
                input_gates = input_gates + self.noise_injection(noise).to(input_gates.dtype)
            hidden, cell_state = cell.step(
                input_gates, (flat_states[2 * index].to(dtype), flat_states[2 * index + 1])
            )
            hiddens.append(hidden)
            new_states += [hidden, cell_state]
            x = hidden
        features = hiddens[0] if len(hiddens) == 1 else torch.cat(hiddens, dim=1)
        logits = self.head(features.to(self.head.weight.dtype))
        if self.advection is None:
            return (logits, *new_states)
        if carried:
            origin, displacement = carried
            blended, motion, displacement = self.advection(
                features,
                frame,
                torch.sigmoid(logits),
                origin,
                displacement,
                padding_mode=self.config.advection_padding,
            )
            return (blended, motion, *new_states, origin, displacement)
        blended, motion, _ = self.advection(
            features, frame, torch.sigmoid(logits), padding_mode=self.config.advection_padding
        )
        return (blended, motion, *new_states)

    def _step_function(self):
        """:meth:`step`, or under gradient checkpointing (training with gradients) :meth:`step` recomputed in
        backward instead of keeping its activations."""
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return self.step
        run = getattr(self, "_gradient_checkpointing_func", None) or partial(checkpoint, use_reentrant=False)
        return partial(run, self.step)

    def _fed_back(
        self, prediction: torch.Tensor, true_frame: torch.Tensor | None, teacher_forcing_ratio: float
    ) -> torch.Tensor:
        """The frame the next step reads: the last `prediction` (patches), or, given a `true_frame`, that frame
        instead with probability `teacher_forcing_ratio` (drawn per sample)."""
        patch, margin = self.config.patch_size, self.config.boundary_padding
        frame = prediction
        if margin:  # the fed-back frame's margin repeats its edge again (config.boundary_padding)
            pixels = _crop_margin(F.pixel_shuffle(frame, patch), margin)
            frame = F.pixel_unshuffle(extend_frames(pixels, margin), patch)
        if true_frame is None:
            return frame
        if teacher_forcing_ratio >= 1:
            return true_frame
        keep_truth = torch.rand(frame.shape[0], device=frame.device) < teacher_forcing_ratio
        return torch.where(keep_truth.view(-1, 1, 1, 1), true_frame.to(frame.dtype), frame)

    def forward(
        self,
        last_frame: torch.Tensor,
        states: list[State],
        num_frames: int,
        truth: torch.Tensor | None = None,
        teacher_forcing_ratio: float = 0.0,
        output_hidden_states: bool = False,
        output_motion: bool = False,
        generator: torch.Generator | None = None,
    ):
        """Roll `num_frames` steps from `last_frame` `(B, C*p*p, h, w)` and the per-layer `states`.

        `truth` `(T_out, B, C*p*p, h, w)` replaces the fed-back prediction of step `k` by the true frame `k` with
        probability `teacher_forcing_ratio`, drawn per sample and step. Returns `(predictions (T_out, B, C*p*p, h,
        w) in [0, 1], per-layer hidden states (T_out, B, C_l, h, w) or None, logits of the predictions, motion)`;
        the logits are None with an advection head (its predictions are not a sigmoid of anything); the motion is
        the advection head's `(T_out, B, 2, H, W)` with `output_motion` (and an advection head), else None. With
        a noise injection, each step draws new noise for every batch entry from `generator` (see
        `NoiseInjection.draw`).
        """
        flat_states = [tensor for state in states for tensor in state]
        step = self._step_function()
        frame, predictions, logits, hiddens, motions = last_frame, [], [], [], []
        if self.advection is not None and self.config.advection_warp == "origin":
            batch, _, height, width = last_frame.shape
            patch = self.config.patch_size
            displacement = last_frame.new_zeros(
                (batch, 2, height * patch, width * patch), dtype=torch.float32
            )
            flat_states += [last_frame, displacement]
        for index in range(num_frames):
            if index > 0:
                forced = truth is not None and teacher_forcing_ratio > 0
                true_frame = truth[index - 1] if forced else None
                frame = self._fed_back(predictions[-1], true_frame, teacher_forcing_ratio)
            if self.noise_injection is None:
                output, *flat_states = step(frame, *flat_states)
            else:
                noise = self.noise_injection.draw(frame.shape[0], *frame.shape[-2:], generator)
                output, *flat_states = step(frame, *flat_states, noise)
            if self.advection is None:
                logits.append(output)
                output = torch.sigmoid(output)
            else:
                motion, *flat_states = flat_states
                if output_motion:
                    motions.append(motion)
            predictions.append(output)
            if output_hidden_states:
                hiddens.append(flat_states[0 : 2 * len(self.cells) : 2])
        per_layer = None
        if output_hidden_states:
            per_layer = tuple(torch.stack(layer) for layer in zip(*hiddens))
        return (
            torch.stack(predictions),
            per_layer,
            torch.stack(logits) if logits else None,
            torch.stack(motions) if motions else None,
        )


class ConvLSTMForFramePrediction(ConvLSTMPreTrainedModel):
    r"""ConvLSTM encoder-forecaster for video frame prediction (Shi et al. 2015, arXiv:1506.04214).

    The encoder ([`ConvLSTMModel`], bidirectional by default) reads the observed frames; the forecaster, a
    unidirectional ConvLSTM stack started from the encoder's final states, predicts any number of future frames
    autoregressively, feeding back its own predictions; a 1x1 convolution over all forecaster layers and a sigmoid
    draw each frame's `C * p * p` patch channels, un-patched by pixel shuffle. Bidirectionality only ever reads
    observed frames.

    Inputs:
        pixel_values (`torch.FloatTensor` of shape `(B, T_in, C, H, W)`): observed frames in `[0, 1]`;
            `C = config.num_channels`, `H` and `W` divisible by `config.patch_size`, any `T_in >= 1`.
        labels (`torch.FloatTensor` of shape `(B, T_out, C, H, W)`, *optional*): the true future frames; when given,
            the output has `loss` (`config.loss`) and the horizon is `T_out`.
        loss_mask (`torch.BoolTensor` of shape `(B, T_out, C, H, W)`, *optional*): which label pixels count in the
            loss (False where the radar has no data: `RainRateCollator`'s `labels_mask`); the loss is then a mean
            over those pixels only. (Not named `labels_*`: `transformers.Trainer` takes every `forward` argument
            whose name holds "label" for a label, and evaluates without a loss when one is missing.)
        num_output_frames (`int`, *optional*): the horizon without labels; defaults to `config.num_output_frames`.
        teacher_forcing_ratio (`float`, *optional*, defaults to 0.0): scheduled sampling: the probability, per
            sample and step, of feeding the forecaster the true previous frame from `labels` instead of its own
            prediction. 1.0 is full teacher forcing; decay it during training. Needs `labels`.
        target_motion (`torch.FloatTensor` of shape `(B, 2, H, W)` or `(B, T_out, 2, H, W)`, *optional*): the true
            motion, pixels per step, x then y (`RainRateCollator`'s `target_motion` for synthetic rain), for an
            advection model; with `labels`, the loss adds `config.motion_loss_weight` times the mean squared error of
            the head's motion (`losses_convlstm.motion_loss`) over the pixels with rain (at least 0.1 mm/h) in the
            frame a step moves or in the frame it should give.
        output_motion (`bool`, *optional*, defaults to False): also return the advection head's motion fields.
        output_hidden_states (`bool`, *optional*): also return the forecaster's and the encoder's hidden states.
        return_dict (`bool`, *optional*): return a [`FramePredictionOutput`] (default) or a tuple.
        num_members (`int`, *optional*): draw this many ensemble members (an ensemble model's, whose
            `config.ensemble_noise_channels > 0`; a model without noise takes only 1): the output's `members` is
            `(B, N, T_out, C, H, W)` and `predictions` their mean. The encoder runs once; the forecaster rolls all
            `B * N` members at once. With `labels` and no `num_members`, `config.ensemble_train_members` members
            are drawn when it is 2 or more.
        generator (`torch.Generator`, *optional*): the source of the ensemble noise (all of it is drawn on the
            generator's device and moved to the model's, so a CPU generator works with a model on a GPU); the
            same seed gives the same members. Without it, torch's global generator.

    Returns: [`FramePredictionOutput`] with `loss` (when `labels` is given) and `predictions` `(B, T_out, C, H, W)`.

    An ensemble model (`config.ensemble_noise_channels > 0`) called without `num_members` (and without labels, or
    with `config.ensemble_train_members == 1`) returns one member, a new draw of the noise at each call. With
    `labels` and `M >= 2` members, `loss` is the almost fair CRPS of the members (`config.crps_alpha`) on the
    valid pixels in the model's space, in place of `config.loss`, plus the FSS term (`config.fss_loss_weight`) and
    the motion term (with `target_motion`) averaged over the members (each member scored alone).

    A rain-rate model (`config.rain_rate_transform` set) works in the transform's space; `forecast_rain_rate` takes
    and returns rain rate in mm/h, `forecast_exceedance_probability` probabilities from its members.

    Example:

    ```python
    >>> import torch
    >>> from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction

    >>> model = ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[16], patch_size=4))
    >>> frames = torch.rand(2, 10, 1, 64, 64)
    >>> model(frames, num_output_frames=5).predictions.shape
    torch.Size([2, 5, 1, 64, 64])
    ```
    """

    def __init__(self, config: ConvLSTMConfig):
        check_config(config)
        super().__init__(config)
        self.encoder = ConvLSTMModel(config)
        self.forecaster = ConvLSTMForecaster(config)
        # A factor on the auxiliary loss term (`l1_weight`, `ssim_weight`) that a training loop may ramp up; not saved.
        self.auxiliary_loss_scale = 1.0
        self.post_init()

    def _check_motion(self, target_motion, output_motion, labels) -> bool:
        """Errors for `target_motion` / `output_motion` that this model or these labels cannot take; returns
        whether the motion is returned."""
        output_motion = False if output_motion is None else output_motion
        if not isinstance(output_motion, bool):
            raise TypeError(f"output_motion must be True or False, got {output_motion!r}")
        if (output_motion or target_motion is not None) and not self.config.advection:
            name = "output_motion=True" if target_motion is None else "target_motion"
            raise ValueError(f"{name} needs an advection model (config.advection=True); this model has none")
        if target_motion is None:
            return output_motion
        if labels is None:
            raise ValueError("target_motion was given without labels; it adds a term to the loss on labels")
        batch, horizon, _, height, width = labels.shape
        shapes = ((batch, 2, height, width), (batch, horizon, 2, height, width))
        if (
            not isinstance(target_motion, torch.Tensor)
            or not target_motion.is_floating_point()
            or tuple(target_motion.shape) not in shapes
        ):
            raise ValueError(
                f"target_motion must be a float tensor of shape (B, 2, H, W) = {shapes[0]} or (B, T_out, 2, H, W) "
                f"= {shapes[1]} (pixels per step, x then y), got {_described(target_motion)}"
            )
        return True

    def _check_members(self, num_members, generator, labels) -> int | None:
        """How many members to draw (None: a plain forward), after checking `num_members` and `generator`."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if num_members is None:
            count = self.config.ensemble_train_members
            return count if labels is not None and count >= 2 else None
        count = check_int("num_members", num_members)
        if count > 1 and not self.config.ensemble_noise_channels:
            raise ValueError(
                f"num_members={count} asks for ensemble members, but this model has no noise "
                "(config.ensemble_noise_channels=0): every member would be the same forecast; pass num_members=1 "
                "or None, or use an ensemble model"
            )
        return count

    def _check_inputs(
        self, pixel_values, labels, num_output_frames, teacher_forcing_ratio, loss_mask=None
    ) -> tuple[int, float]:
        """Validate everything before any convolution runs; returns the horizon and the teacher forcing ratio."""
        _check_frames("pixel_values", pixel_values, self.config)
        num_output_frames = (
            None if num_output_frames is None else check_int("num_output_frames", num_output_frames)
        )
        if isinstance(teacher_forcing_ratio, torch.Tensor) and teacher_forcing_ratio.numel() == 1:
            teacher_forcing_ratio = teacher_forcing_ratio.item()
        if isinstance(teacher_forcing_ratio, bool) or not isinstance(teacher_forcing_ratio, numbers.Real):
            raise TypeError(f"teacher_forcing_ratio must be a float in [0, 1], got {teacher_forcing_ratio!r}")
        teacher_forcing_ratio = float(teacher_forcing_ratio)
        if not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ValueError(f"teacher_forcing_ratio must be in [0, 1], got {teacher_forcing_ratio!r}")
        if labels is None:
            if loss_mask is not None:
                raise ValueError("loss_mask was given without labels; it marks the valid pixels of labels")
            if teacher_forcing_ratio > 0:
                raise ValueError(
                    f"teacher_forcing_ratio={teacher_forcing_ratio} needs labels (the true frames to feed back)"
                )
            return (self.config.num_output_frames if num_output_frames is None else num_output_frames), 0.0
        _check_frames("labels", labels, self.config)
        batch, _, channels, height, width = pixel_values.shape
        if (labels.shape[0], *labels.shape[2:]) != (batch, channels, height, width):
            raise ValueError(
                f"labels must have shape (B, T_out, C, H, W) = ({batch}, T_out, {channels}, {height}, {width}) "
                f"to match pixel_values, got {tuple(labels.shape)}"
            )
        if num_output_frames is not None and num_output_frames != labels.shape[1]:
            raise ValueError(
                f"num_output_frames={num_output_frames} disagrees with labels, which hold {labels.shape[1]} frames"
            )
        if loss_mask is not None and (
            not isinstance(loss_mask, torch.Tensor)
            or loss_mask.dtype != torch.bool
            or loss_mask.shape != labels.shape
        ):
            raise ValueError(
                f"loss_mask must be a bool tensor of labels' shape {tuple(labels.shape)}, got {_described(loss_mask)}"
            )
        return labels.shape[1], teacher_forcing_ratio

    def compute_loss(
        self,
        predictions: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`config.loss` between `predictions` and `labels` (any equal shapes), in float32, averaged over the pixels
        where `loss_mask` is True (all without it). `"bce"` uses the pre-sigmoid `logits` of the predictions
        when given (exact for saturated pixels). See `losses_convlstm.frame_prediction_loss`."""
        config = self.config
        transform = self.rain_rate_transform
        return frame_prediction_loss(
            predictions,
            labels,
            config.loss,
            loss_mask=loss_mask,
            logits=logits,
            rain_rate_inverse=None if transform is None else transform.inverse,
            thresholds=config.loss_thresholds,
            weights=config.loss_weights,
            l1_weight=config.l1_weight,
            ssim_weight=config.ssim_weight,
            auxiliary_scale=self.auxiliary_loss_scale,
            fss_weight=config.fss_loss_weight,
            fss_thresholds=config.fss_loss_thresholds,
            fss_windows=config.fss_loss_windows,
        )

    def _moving_pixels(self, last_frame, labels, loss_mask=None) -> torch.Tensor:
        """`(B, T_out, H, W)` bool: the pixels whose motion the motion term scores at each step, those with rain
        (>= the transform's threshold, at least 0.1 mm/h; any value above 0 for image models) in any channel of the
        frame the step moves or of the frame it should give, and with data (`loss_mask`)."""
        transform = self.rain_rate_transform
        if transform is None:
            background = 0.0
        else:
            background = transform.forward(torch.tensor(max(transform.threshold, 0.1))).item() - 1e-6
        frames = (torch.cat([last_frame, labels], dim=1) > background).any(dim=2)  # any channel
        moving = frames[:, :-1] | frames[:, 1:]
        return moving if loss_mask is None else moving & loss_mask.any(dim=2)

    @property
    def rain_rate_transform(self) -> RainRateTransform | None:
        """The `RainRateTransform` of `config.rain_rate_transform` (mm/h <-> model space), or None (images)."""
        values = self.config.rain_rate_transform
        return None if values is None else RainRateTransform.from_dict(values)

    def forecast_rain_rate(
        self,
        rain_rate,
        valid=None,
        *,
        num_output_frames: int | None = None,
        no_data_value: float = float("nan"),
        probability_matching: str | None = "config",
        output_grid: str = "model",
        check_time_step: bool = True,
        num_members: int | None = None,
        seed: int | None = None,
    ):
        """Forecast rain rate in mm/h from observed rain rate in mm/h (needs `config.rain_rate_transform`): observed
        `(B, T_in, H, W)` or `(B, T_in, 1, H, W)` mm/h of any size, torch or numpy, NaN or `valid=False` = no data;
        returns `(B, T_out, H, W)` (or `(B, T_out, 1, H, W)`) float32 mm/h of the same kind, `no_data_value` where the
        last observed frame has no data. With `probability_matching="mean"` (`config.probability_matching` by
        default) each forecast frame's wet pixels are scaled to the last observed frame's geometric mean rain
        rate. An `xarray.DataArray` `(time, y, x)` is checked against `config.time_step` (unless `check_time_step`
        is False), block-averaged to `config.pixel_size`, and the forecast comes back as a DataArray with valid
        times and the input's projection, on the model's grid or (`output_grid="input"`) the input's. With
        `num_members=N`, `N` members `(B, N, T_out, H, W)` (a DataArray with a leading `member` dimension),
        reproducible by `seed`; an ensemble model (`config.ensemble_noise_channels > 0`) without `num_members`
        returns `config.ensemble_product` of `config.ensemble_members` members. See
        `forecasting_convlstm.forecast_rain_rate`.

        Example: `model.forecast_rain_rate(torch.rand(1, 4, 100, 120) * 5, num_output_frames=12).shape` is
        `(1, 12, 100, 120)`.
        """
        return forecast_rain_rate(
            self,
            rain_rate,
            valid,
            num_output_frames=num_output_frames,
            no_data_value=no_data_value,
            probability_matching=probability_matching,
            output_grid=output_grid,
            check_time_step=check_time_step,
            num_members=num_members,
            seed=seed,
        )

    def forecast_exceedance_probability(
        self,
        rain_rate,
        thresholds=(0.5, 1.0, 2.0, 5.0),
        valid=None,
        *,
        num_output_frames: int | None = None,
        num_members: int | None = None,
        seed: int | None = None,
        probability_matching: str | None = "config",
        output_grid: str = "model",
        check_time_step: bool = True,
    ):
        """The probability that rain rate reaches each of `thresholds` (mm/h, increasing, > 0): the fraction of
        `num_members` members (`config.ensemble_members` by default) at or above it, `(B, K, T_out, H, W)` float32 in
        `[0, 1]` (NaN where the last observed frame has no data), non-increasing along `K`. Inputs as
        :meth:`forecast_rain_rate`; a DataArray gives a DataArray `(threshold, time, y, x)`. See
        `forecasting_convlstm.forecast_exceedance_probability`."""
        return forecast_exceedance_probability(
            self,
            rain_rate,
            thresholds,
            valid,
            num_output_frames=num_output_frames,
            num_members=num_members,
            seed=seed,
            probability_matching=probability_matching,
            output_grid=output_grid,
            check_time_step=check_time_step,
        )

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
        num_output_frames: int | None = None,
        teacher_forcing_ratio: float = 0.0,
        target_motion: torch.Tensor | None = None,
        output_motion: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_members: int | None = None,
        generator: torch.Generator | None = None,
    ) -> FramePredictionOutput | tuple:
        horizon, teacher_forcing_ratio = self._check_inputs(
            pixel_values, labels, num_output_frames, teacher_forcing_ratio, loss_mask
        )
        count = self._check_members(num_members, generator, labels)
        output_motion = self._check_motion(target_motion, output_motion, labels)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        predictions, logits, motion, forecaster_states, encoder_states = self._predict(
            pixel_values,
            labels,
            horizon,
            teacher_forcing_ratio,
            output_hidden_states,
            output_motion,
            members=count,
            generator=generator,
        )
        members = None
        if count is not None:
            members = predictions.unflatten(0, (pixel_values.shape[0], count))
            predictions = self._threshold_output(members.mean(dim=1))
        loss = None
        if labels is not None and count is not None and count >= 2:
            loss = self._ensemble_loss(pixel_values, members, labels, loss_mask, motion, target_motion)
        elif labels is not None:
            loss = self._loss(pixel_values, predictions, labels, logits, loss_mask, motion, target_motion)
        margin = self.config.boundary_padding // self.config.patch_size

        def batch_first(states):
            if states is None:
                return None
            return tuple(_crop_margin(x.transpose(0, 1), margin) for x in states)

        output = FramePredictionOutput(
            loss=loss,
            predictions=predictions,
            hidden_states=batch_first(forecaster_states),
            encoder_hidden_states=batch_first(encoder_states),
            motion=motion,
            members=members,
        )
        return output if return_dict else output.to_tuple()

    def _predict(
        self,
        pixel_values,
        labels,
        horizon,
        teacher_forcing_ratio,
        output_hidden_states,
        output_motion,
        members=None,
        generator=None,
    ):
        """Encode the observed frames and roll the forecaster `horizon` steps. Returns `(predictions (B, T_out, C,
        H, W), their logits (T_out, B, C*p*p, h', w') or None, motion (B, T_out, 2, H, W) or None, forecaster and
        encoder hidden states (time first, with the margin) or None)`. With `members`, the encoder runs once and the
        forecaster starts `members` copies of each sample (its states, last frame and true frames repeated member by
        member, the noise drawn from `generator`): every `B` above is then `B * members`, except the encoder's."""
        patch, margin = self.config.patch_size, self.config.boundary_padding
        # (T_in, B, C*p*p, h, w), with the boundary margin (config.boundary_padding) around the frames
        patches = F.pixel_unshuffle(extend_frames(pixel_values, margin), patch).transpose(0, 1)
        _, encoder_states, final_h, final_c = self.encoder.encode(patches, output_hidden_states)
        truth = None
        if labels is not None and teacher_forcing_ratio > 0:
            truth = F.pixel_unshuffle(extend_frames(labels, margin), patch).transpose(0, 1)
        states, last_frame = self.forecaster.initial_states(final_h, final_c), patches[-1]
        if members is not None:
            states = [(repeat_members(h, members), repeat_members(c, members)) for h, c in states]
            last_frame = repeat_members(last_frame, members)
            truth = None if truth is None else repeat_members(truth, members, dim=1)
        predicted, forecaster_states, logits, motion = self.forecaster(
            last_frame,
            states,
            horizon,
            truth=truth,
            teacher_forcing_ratio=teacher_forcing_ratio,
            output_hidden_states=output_hidden_states,
            output_motion=output_motion,
            generator=generator,
        )
        if motion is not None:
            motion = _crop_margin(motion.transpose(0, 1), margin)
        predictions = F.pixel_shuffle(predicted.transpose(0, 1), patch).to(pixel_values.dtype)
        predictions = self._threshold_output(_crop_margin(predictions, margin))
        return predictions, logits, motion, forecaster_states, encoder_states

    def _threshold_output(self, predictions: torch.Tensor) -> torch.Tensor:
        """`config.output_threshold` applied at inference: values below it become exactly 0."""
        if self.config.output_threshold > 0 and not self.training:
            # At inference only, and not in what the forecaster is fed back, which stays the raw predictions it was
            # trained on. (Trained through, even with a straight-through gradient, the background below the
            # threshold gets no gradient that keeps it dark and drifts up to it.)
            predictions = predictions.masked_fill(predictions < self.config.output_threshold, 0.0)
        return predictions

    def _loss(
        self, pixel_values, predictions, labels, logits, loss_mask, motion, target_motion
    ) -> torch.Tensor:
        """`config.loss` (from the forecaster's patch `logits` for `"bce"`), plus the motion term with a
        `target_motion`."""
        patch, margin = self.config.patch_size, self.config.boundary_padding
        use_logits = self.config.loss == "bce" and logits is not None
        logits = _crop_margin(F.pixel_shuffle(logits.transpose(0, 1), patch), margin) if use_logits else None
        loss = self.compute_loss(predictions, labels, logits=logits, loss_mask=loss_mask)
        if target_motion is not None:
            moving = self._moving_pixels(pixel_values[:, -1:], labels, loss_mask)
            loss = loss + self.config.motion_loss_weight * motion_loss(motion, target_motion, moving)
        return loss

    def _ensemble_loss(self, pixel_values, members, labels, loss_mask, motion, target_motion) -> torch.Tensor:
        """The almost fair CRPS of `members` `(B, M, T_out, C, H, W)` against `labels` on the valid pixels, in the
        model's space, plus the FSS term and the motion term (each member scored alone, averaged over members)."""
        config, count = self.config, members.shape[1]
        loss = almost_fair_crps(members, labels, loss_mask, alpha=config.crps_alpha)
        repeated_mask = None if loss_mask is None else repeat_members(loss_mask, count)
        if config.fss_loss_weight:
            inverse = self.rain_rate_transform.inverse
            loss = loss + config.fss_loss_weight * fractions_skill_loss(
                inverse(members.flatten(0, 1).float()),
                inverse(repeat_members(labels, count).detach().float()),
                thresholds=config.fss_loss_thresholds,
                windows=config.fss_loss_windows,
                valid=repeated_mask,
            )
        if target_motion is not None:
            moving = repeat_members(self._moving_pixels(pixel_values[:, -1:], labels, loss_mask), count)
            target = repeat_members(target_motion, count)
            loss = loss + config.motion_loss_weight * motion_loss(motion, target, moving)
        return loss


ConvLSTMForFramePrediction.register_for_auto_class("AutoModel")

__all__ = [
    "ConvLSTMModelOutput",
    "FramePredictionOutput",
    "ConvLSTMPreTrainedModel",
    "ConvLSTMModel",
    "ConvLSTMForFramePrediction",
]
