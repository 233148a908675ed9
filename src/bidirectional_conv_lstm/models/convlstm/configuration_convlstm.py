"""ConvLSTM frame-prediction model configuration.

This file travels with ``push_to_hub`` as remote code: it imports only the standard library, transformers and
its sibling ``rain_rate.py`` (numpy + torch, relatively), so ``trust_remote_code=True`` works where
``bidirectional_conv_lstm`` is not installed.
"""

import math
import sys

from transformers import PreTrainedConfig

from .argument_checks import check_int

LOSSES = ("mse", "l1", "mse+l1", "bce", "mse+ssim", "weighted_mse", "weighted_mae", "weighted_mse+mae")
WEIGHTED_LOSSES = ("weighted_mse", "weighted_mae", "weighted_mse+mae")
NORMS = (None, "group", "layer")
INIT_METHODS = ("pytorch", "xavier_uniform", "kaiming_normal")
ADVECTION_WARPS = ("previous", "origin")
ADVECTION_PADDINGS = ("zeros", "border", "persistence")  # advection_convlstm.PADDING_MODES
ENSEMBLE_PRODUCTS = ("mean", "median", "probability_matched_mean")  # ensemble_convlstm.ensemble_product


class ConvLSTMConfig(PreTrainedConfig):
    r"""
    This is the configuration class to store the configuration of a [`ConvLSTMForFramePrediction`] (and of its
    encoder, [`ConvLSTMModel`]). It is used to instantiate the model according to the specified arguments, defining
    the model architecture. The defaults give the Moving MNIST setting: 64x64 single-channel frames cut into 4x4
    patches, two ConvLSTM layers of 64 channels, 10 observed frames, 10 predicted frames.

    Configuration objects inherit from [`PreTrainedConfig`] and can be used to control the model outputs. Read the
    documentation from [`PreTrainedConfig`] for more information.

    Every value is checked at construction: an invalid one raises a `ValueError` naming the field.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            The number of channels of each frame (1 for Moving MNIST, 3 for RGB video).
        patch_size (`int`, *optional*, defaults to 4):
            The space-to-depth factor: each frame of `H x W x C` becomes `H/p x W/p x C*p*p` before the ConvLSTM
            layers, and predictions are mapped back with the inverse (pixel shuffle). Frame sizes must be divisible
            by it.
        hidden_sizes (`list[int]`, *optional*, defaults to `[64, 64]`):
            The hidden (and cell) state channels of each ConvLSTM layer; one entry per layer. The encoder and the
            forecaster have the same number of layers and the same sizes.
        kernel_size (`int`, *optional*, defaults to 3):
            The size of the square kernel of both convolutions (input-to-state and state-to-state) of every layer,
            applied with "same" padding on the patch grid.
        bidirectional (`bool`, *optional*, defaults to `True`):
            Whether the encoder reads the observed frames in both directions. The final states of the two
            directions of each layer are merged by a 1x1 convolution into the initial state of the matching
            forecaster layer. The forecaster is always unidirectional and never sees future frames.
        peephole (`bool`, *optional*, defaults to `False`):
            Whether the ConvLSTM cells have the paper's peephole connections (one weight per channel).
        norm (`str`, *optional*):
            Normalisation of the gate pre-activations: `None`, `"group"` or `"layer"`.
        norm_groups (`int`, *optional*, defaults to 8):
            Groups per gate for `norm="group"`; must divide every entry of `hidden_sizes`.
        dropout (`float`, *optional*, defaults to 0.0):
            The dropout probability on the hidden states passed from one layer to the next (encoder and
            forecaster), in `[0, 1)`.
        forget_bias (`float`, *optional*, defaults to 1.0):
            The initial value of the forget-gate bias of every cell (Jozefowicz et al. 2015).
        num_input_frames (`int`, *optional*, defaults to 10):
            The number of observed frames the model is trained on. The model accepts any number at inference; data
            pipelines and scripts read this value.
        num_output_frames (`int`, *optional*, defaults to 10):
            The number of frames predicted when neither `labels` nor `num_output_frames` is given to `forward`.
        loss (`str`, *optional*, defaults to `"mse"`):
            The training loss on the predicted frames: `"mse"` (mean squared error over all elements), `"l1"` (mean
            absolute error), `"mse+l1"` (MSE plus `l1_weight` times L1), `"bce"` (binary cross-entropy of each pixel
            value as a probability, the loss Shi et al. 2015 trained Moving MNIST with; targets must lie in `[0, 1]`)
            or `"mse+ssim"` (MSE plus `ssim_weight` times `1 - SSIM`, SSIM as the evaluation computes it). MSE and
            BCE are minimised by the mean of what may come, which on an uncertain future is a faint haze that SSIM
            punishes; the L1 and SSIM terms trade a little MSE for darker backgrounds and sharper digits.
            For rain rate, `"weighted_mse"`, `"weighted_mae"` and `"weighted_mse+mae"` (B-MSE plus `l1_weight`
            times B-MAE) are the balanced losses of Shi et al. 2017 (arXiv:1706.03458): each pixel's error, taken in
            the model's (transformed) space, is weighted by the target's rain rate in mm/h (`loss_thresholds`,
            `loss_weights`), so heavy rain counts; they need `rain_rate_transform`. Every loss is a mean over the
            valid pixels when `forward` gets a `loss_mask`.
        l1_weight (`float`, *optional*, defaults to 1.0):
            The weight of the L1 term in `"mse+l1"` and of the B-MAE term in `"weighted_mse+mae"`. A small weight (e.g. 0.1) pushes the faint haze a blurry
            prediction leaves on an empty background to exactly dark (which SSIM rewards) without the collapse to
            all-dark frames that L1 alone tends to on sparse data like Moving MNIST.
        ssim_weight (`float`, *optional*, defaults to 1.0):
            The weight of the `1 - SSIM` term in `"mse+ssim"`.
        init_method (`str`, *optional*, defaults to `"pytorch"`):
            The initialisation of convolution weights: `"pytorch"` (PyTorch's default for `Conv2d`, the layer's own
            initialisation, with PyTorch's default biases), `"xavier_uniform"` or `"kaiming_normal"` (with zero
            biases). Gate biases are always zero except the forget gate's (`forget_bias`); peephole weights start at
            zero.
        output_threshold (`float`, *optional*, defaults to 0.0):
            At inference (`model.eval()`), predicted pixel values below it become exactly 0 in the returned
            predictions; the forecaster is still fed its raw predictions, and training sees them, like dropout. On sparse frames (Moving
            MNIST, radar echoes) a mean-seeking loss leaves a faint haze wherever the future is uncertain; SSIM
            punishes haze on an empty background hard (a pixel of 0.01 on black halves a window's luminance term)
            while MSE barely notices it. 0 turns it off.
        prediction_prior (`float`, *optional*, defaults to 0.5):
            The pixel value the untrained model predicts everywhere: the head's bias starts at
            `logit(prediction_prior)`, in `(0, 1)`. Set it to the data's mean pixel value (about 0.05 for Moving
            MNIST) to skip the early phase in which a sigmoid output trained with MSE only learns that the background
            is dark.
        advection (`bool`, *optional*, defaults to `False`):
            Whether the forecaster moves the previous frame along a motion field it predicts (a backward warp at full
            resolution) and blends it, pixel by pixel through a learned gate, with the frame it draws. Extrapolation
            moves rain without blurring it; a ConvLSTM drawing every pixel from patch-level states blurs it. The
            untrained head moves nothing (the model starts close to persistence). See `advection_convlstm.py`.
        advection_warp (`str`, *optional*, defaults to `"previous"`):
            What the advection head warps at each forecast step: `"previous"`, the previous predicted frame along
            that step's motion; or `"origin"`, the last observed frame along the motion summed over the steps so far
            (semi-Lagrangian from the forecast's origin, as optical-flow extrapolation does), so repeated bilinear
            interpolation does not smooth the moved rain step after step.
        advection_padding (`str`, *optional*, defaults to `"zeros"`):
            What the advection head's warp brings in across the frame's edge: `"zeros"` (no rain), `"border"` (the
            nearest edge pixel, as if the field went on beyond the frame) or `"persistence"` (a pixel whose
            trajectory starts beyond the edge keeps its own value, as persistence forecasts: what arrives from
            beyond the edge is unknown). With `"zeros"` every moved field loses its inflow edge, which costs more
            than staying put wherever the field reaches the edge: trained that way, the head learns to move rain
            little or not at all. `"border"` and `"persistence"` let it learn the motion; `"border"` streaks the
            edge pixels inwards, `"persistence"` keeps the band the rain streams in across as it was.
        boundary_padding (`int`, *optional*, defaults to 0):
            Pixels of margin the model works with around the frame, a multiple of `patch_size`: the observed frames
            are extended by repeating their edge pixels, and each predicted frame is cropped and extended the same
            way before it is fed back (a zero-gradient boundary, as numerical weather models treat a domain's edge);
            `predictions` are the frame's size. Without it, the convolutions' zero padding reads "no rain" beyond
            the edge, and a forecast that smooths rain also drains it from the frame's edges as the hour goes on.
            The convolutions work on `(H + 2 m) x (W + 2 m)` pixels: 80 x 80 for a 64-pixel tile and `m = 8`, 1.56x
            the pixels (a training step measured 1.4x on 2 CPU cores).
        rain_rate_transform (`dict`, *optional*):
            For rain-rate models, the transform between rain rate in mm/h and the model's `[0, 1]`-ish space, as
            `RainRateTransform.to_dict()` writes it (e.g. `{"kind": "dbr", ...}`); `pixel_values`, `labels` and
            `predictions` are in that space, and `ConvLSTMForFramePrediction.forecast_rain_rate` maps frames in
            mm/h in and forecasts in mm/h out through it. `None` (the default) for image models.
        loss_thresholds (`list[float]`, *optional*, defaults to `[2.0, 5.0, 10.0, 30.0]`):
            Increasing rain rates (mm/h, `>=`) at which the weight of the weighted losses steps up.
        loss_weights (`list[float]`, *optional*, defaults to `[1.0, 2.0, 5.0, 10.0, 30.0]`):
            The weights of the weighted losses: the first below `loss_thresholds[0]`, then one per threshold (Shi
            et al. 2017's values by default). One more entry than `loss_thresholds`, each positive.
        probability_matching (`str`, *optional*):
            For rain-rate models, `"mean"` makes `forecast_rain_rate` scale each forecast frame's wet pixels
            (>= 0.1 mm/h) to the geometric mean rain rate of the last observed frame, the "mean" probability
            matching of pysteps' S-PROG: a model trained with a mean-seeking loss fades uncertain rain with lead
            time, and this restores the observed intensity without moving or growing any rain area. `None` (the
            default) returns the model's forecast as it is. `predictions` of `forward` are never changed.
        fss_loss_weight (`float`, *optional*, defaults to 0.0):
            For the weighted (rain-rate) losses, the weight of an added `1 - FSS` term: the fractions skill score of
            the batch at `fss_loss_thresholds` (mm/h) over `fss_loss_windows` (pixels), with the forecast's events
            thresholded softly so it has a gradient (`losses_convlstm.fractions_skill_loss`): the pixel-wise loss
            scores each pixel alone, this term the rain's coverage over neighbourhoods, as the verification does.
            0 turns it off.
        fss_loss_thresholds (`list[float]`, *optional*, defaults to `[1.0]`):
            The rain rates (mm/h, `>=`) of the FSS term.
        fss_loss_windows (`list[int]`, *optional*, defaults to `[16]`):
            The window sizes (pixels) of the FSS term.
        motion_loss_weight (`float`, *optional*, defaults to 0.0):
            For advection models, the weight of an added motion term: the mean squared difference (pixels per step,
            squared) between the advection head's motion fields and a known motion passed as `target_motion` (the
            synthetic rain's own velocities: `RainRateCollator` hands them out as `target_motion`), over the pixels
            with rain in the frame a step moves or in the frame it should give (a dry area's motion cannot be seen).
            The frame loss alone teaches the head the motion only through the warp's gradient, which does not always
            find it; this term tells it. Batches without `target_motion` train without it. 0 turns it off.
        pixel_size (`float`, *optional*):
            For rain-rate models, the size in metres of one pixel of the frames the model was trained on (e.g.
            4000.0 for a 4 km grid; the radar recipe fills it from its windows). Given frames with coordinates (an
            `xarray.DataArray`), `forecast_rain_rate` block-averages a finer grid to it. `None`: unknown, frames are
            taken as they come.
        time_step (`float`, *optional*):
            For rain-rate models, the minutes between the frames the model was trained on (e.g. 5.0). Given frames
            with times, `forecast_rain_rate` refuses frames of another step (a 5-minute model run on 10-minute
            frames forecasts half the motion) unless told not to check. `None`: unknown, not checked.
        ensemble_noise_channels (`int`, *optional*, defaults to 0):
            Channels of the noise that makes the model an ensemble: at every forecast step a new standard-normal
            tensor of this many channels on the forecaster's patch grid `(B, K, h, w)` goes through a 3x3
            convolution (`forecaster.noise_injection`, initialised from normal(0, 0.02) with a zero bias) and is
            added to the input gates of the first forecaster layer, so each draw of the noise is one member of an
            ensemble. 0 (the default) is the deterministic model, with no such convolution.
        ensemble_train_members (`int`, *optional*, defaults to 1):
            Members drawn per window when `forward` gets `labels` (`M`): with `M >= 2` the encoder runs once, the
            forecaster rolls `M` members with independent noise, and the loss is the almost fair CRPS of the
            members (`losses_convlstm.almost_fair_crps`, `crps_alpha`) in the model's space, in place of
            `loss`. Needs `ensemble_noise_channels > 0`.
        crps_alpha (`float`, *optional*, defaults to 0.95):
            The `alpha` of the almost fair CRPS, in `[0, 1]`: 1 is the fair CRPS, 0 the plain ensemble CRPS.
        ensemble_members (`int`, *optional*, defaults to 20):
            For ensemble models (`ensemble_noise_channels > 0`), how many members `forecast_rain_rate` and
            `forecast_exceedance_probability` draw when not told.
        ensemble_product (`str`, *optional*, defaults to `"mean"`):
            The deterministic forecast `forecast_rain_rate` of an ensemble model returns without `num_members`,
            from `ensemble_members` members: `"mean"`, `"median"` or `"probability_matched_mean"` (the members'
            mean field's spatial pattern with the pooled members' values, per frame; Ebert 2001, see
            `ensemble_convlstm.probability_matched_mean`).

    Example:

    ```python
    >>> from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction

    >>> # Initializing a Moving MNIST style configuration
    >>> configuration = ConvLSTMConfig(hidden_sizes=[64, 64], kernel_size=3, patch_size=4)

    >>> # Randomly initializing a model from the configuration
    >>> model = ConvLSTMForFramePrediction(configuration)

    >>> # Accessing the model configuration
    >>> configuration = model.config
    ```"""

    model_type = "convlstm"

    num_channels: int = 1
    patch_size: int = 4
    hidden_sizes: list[int] | tuple[int, ...] = (64, 64)
    kernel_size: int = 3
    bidirectional: bool = True
    peephole: bool = False
    norm: str | None = None
    norm_groups: int = 8
    dropout: float = 0.0
    forget_bias: float = 1.0
    num_input_frames: int = 10
    num_output_frames: int = 10
    loss: str = "mse"
    l1_weight: float = 1.0
    ssim_weight: float = 1.0
    init_method: str = "pytorch"
    prediction_prior: float = 0.5
    output_threshold: float = 0.0
    advection: bool = False
    advection_warp: str = "previous"
    advection_padding: str = "zeros"
    boundary_padding: int = 0
    rain_rate_transform: dict | None = None
    loss_thresholds: list[float] | tuple[float, ...] = (2.0, 5.0, 10.0, 30.0)
    loss_weights: list[float] | tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    probability_matching: str | None = None
    fss_loss_weight: float = 0.0
    fss_loss_thresholds: list[float] | tuple[float, ...] = (1.0,)
    fss_loss_windows: list[int] | tuple[int, ...] = (16,)
    motion_loss_weight: float = 0.0
    pixel_size: float | None = None
    time_step: float | None = None
    ensemble_noise_channels: int = 0
    ensemble_train_members: int = 1
    crps_alpha: float = 0.95
    ensemble_members: int = 20
    ensemble_product: str = "mean"

    def __post_init__(self, **kwargs):
        # transformers passes a config.json's `model_type` through here; refuse another model's config instead of
        # warning and building a model from unrelated fields.
        model_type = kwargs.pop("model_type", None)
        if model_type is not None and model_type != self.model_type:
            raise ValueError(
                f"model_type must be {self.model_type!r} for {type(self).__name__}, got {model_type!r}: this "
                "config.json describes another kind of model"
            )
        for name in (
            "hidden_sizes",
            "loss_thresholds",
            "loss_weights",
            "fss_loss_thresholds",
            "fss_loss_windows",
        ):
            if isinstance(getattr(self, name), (list, tuple)):
                setattr(self, name, list(getattr(self, name)))  # what config.json gives back
        super().__post_init__(**kwargs)
        check_config(self)
        if self.rain_rate_transform is not None:
            # Every parameter spelled out (defaults resolved), so the saved model means the same under later
            # versions whose defaults differ.
            from .rain_rate import RainRateTransform

            self.rain_rate_transform = RainRateTransform.from_dict(self.rain_rate_transform).to_dict()

    @property
    def custom_pipelines(self) -> dict:
        """`config.json`'s `custom_pipelines` (task -> the pipeline class saved with the model, which `pipeline()` runs
        only with `trust_remote_code=True`), less the tasks whose pipeline is installed here: with
        `bidirectional_conv_lstm` imported, `pipeline("frame-prediction", model=repo)` then runs the installed
        pipeline without remote code, as `AutoModel` runs the installed model. config.json keeps them all."""
        saved = self.__dict__.get("custom_pipelines") or {}
        return {task: spec for task, spec in saved.items() if not _pipeline_installed(task, spec)}

    @custom_pipelines.setter
    def custom_pipelines(self, value: dict) -> None:
        self.__dict__["custom_pipelines"] = value  # serialised as is by to_dict()


def _non_negative_float(config, name: str) -> float:
    value = getattr(config, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value >= 0)
    ):
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return value


def _boolean(config, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


def _choice(config, name: str, choices: tuple) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_config(config: ConvLSTMConfig) -> None:
    """Raise a `ValueError` naming the first invalid field of `config`; models call it again before building."""
    for name in (
        "num_channels",
        "patch_size",
        "kernel_size",
        "norm_groups",
        "num_input_frames",
        "num_output_frames",
    ):
        check_int(name, getattr(config, name))
    sizes = config.hidden_sizes
    if (
        not isinstance(sizes, (list, tuple))
        or len(sizes) == 0
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise ValueError(
            f"hidden_sizes must be a non-empty list of positive ints (one per layer), got {sizes!r}"
        )
    _boolean(config, "bidirectional")
    _boolean(config, "peephole")
    _boolean(config, "advection")
    _choice(config, "advection_warp", ADVECTION_WARPS)
    _choice(config, "advection_padding", ADVECTION_PADDINGS)
    _choice(config, "norm", NORMS)
    if config.norm == "group" and any(size % config.norm_groups for size in sizes):
        raise ValueError(
            f"norm_groups={config.norm_groups} must divide every entry of hidden_sizes={list(sizes)} for norm='group'"
        )
    dropout = config.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    forget_bias = config.forget_bias
    if (
        isinstance(forget_bias, bool)
        or not isinstance(forget_bias, (int, float))
        or not math.isfinite(forget_bias)
    ):
        raise ValueError(f"forget_bias must be a finite float, got {forget_bias!r}")
    _choice(config, "loss", LOSSES)
    margin = config.boundary_padding
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0 or margin % config.patch_size:
        raise ValueError(
            f"boundary_padding must be an int >= 0 and a multiple of patch_size={config.patch_size} (pixels), "
            f"got {margin!r}"
        )
    for name in ("l1_weight", "ssim_weight"):
        _non_negative_float(config, name)
    _choice(config, "init_method", INIT_METHODS)
    threshold = config.output_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
        raise ValueError(f"output_threshold must be a float in [0, 1), got {threshold!r}")
    prior = config.prediction_prior
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0.0 < prior < 1.0:
        raise ValueError(f"prediction_prior must be a float in (0, 1), got {prior!r}")
    _check_rain_rate_options(config)
    _check_ensemble_options(config)


def _check_ensemble_options(config: ConvLSTMConfig) -> None:
    """The ensemble fields: the noise, the members drawn in training and at inference, the CRPS and the product."""
    noise = check_int("ensemble_noise_channels", config.ensemble_noise_channels, minimum=0)
    train_members = check_int("ensemble_train_members", config.ensemble_train_members)
    if train_members >= 2 and noise == 0:
        raise ValueError(
            f"ensemble_train_members={train_members} draws members that differ only by their noise, but "
            "ensemble_noise_channels=0 (no noise); set ensemble_noise_channels > 0 or ensemble_train_members to 1"
        )
    alpha = config.crps_alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"crps_alpha must be a float in [0, 1], got {alpha!r}")
    check_int("ensemble_members", config.ensemble_members)
    _choice(config, "ensemble_product", ENSEMBLE_PRODUCTS)


def _check_rain_rate_options(config: ConvLSTMConfig) -> None:
    """The rain-rate fields: the transform, the losses that need it, and their thresholds, weights and windows."""
    _check_rain_rate_transform(config)
    _check_loss_weighting(config)
    _check_probability_matching(config)
    _check_auxiliary_losses(config)
    for name, unit in (("pixel_size", "metres"), ("time_step", "minutes")):
        value = getattr(config, name)
        if value is not None and not (_finite_numbers([value]) and value > 0):
            raise ValueError(f"{name} must be None or a positive number of {unit}, got {value!r}")


def _finite_numbers(values) -> bool:
    return isinstance(values, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_rain_rate_transform(config: ConvLSTMConfig) -> None:
    transform = config.rain_rate_transform
    if transform is not None:
        # Imported here: image models never need numpy and torch to read a config.
        from .rain_rate import RainRateTransform

        if not isinstance(transform, dict):
            raise ValueError(
                "rain_rate_transform must be a dict (RainRateTransform.to_dict()) or None, got "
                f"{type(transform).__name__} {transform!r}"
            )
        try:
            RainRateTransform.from_dict(transform)
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(
                f"rain_rate_transform={transform!r} is not a valid transform: {error}"
            ) from error
    if config.loss in WEIGHTED_LOSSES and transform is None:
        raise ValueError(
            f"loss={config.loss!r} weights pixels by their rain rate in mm/h and needs rain_rate_transform "
            "(e.g. RainRateTransform('dbr').to_dict()); use 'mse' or 'l1' for frames that are not rain rate"
        )


def _check_loss_weighting(config: ConvLSTMConfig) -> None:
    """`loss_thresholds` (mm/h) and `loss_weights`, the steps of the weighted losses."""
    thresholds, weights = config.loss_thresholds, config.loss_weights
    if (
        not _finite_numbers(thresholds)
        or not all(t > 0 for t in thresholds)
        or any(b <= a for a, b in zip(thresholds, thresholds[1:]))
    ):
        raise ValueError(
            f"loss_thresholds must be a list of strictly increasing rain rates > 0 (mm/h), got {thresholds!r}"
        )
    if not _finite_numbers(weights) or len(weights) != len(thresholds) + 1 or not all(w > 0 for w in weights):
        raise ValueError(
            f"loss_weights must be a list of len(loss_thresholds) + 1 = {len(thresholds) + 1} positive weights "
            f"(one below the first threshold, one per threshold), got {weights!r}"
        )


def _check_probability_matching(config: ConvLSTMConfig) -> None:
    if config.probability_matching not in (None, "mean"):
        raise ValueError(f"probability_matching must be None or 'mean', got {config.probability_matching!r}")
    if config.probability_matching is not None and config.rain_rate_transform is None:
        raise ValueError(
            f"probability_matching={config.probability_matching!r} applies to rain-rate forecasts and needs "
            "rain_rate_transform"
        )


def _check_auxiliary_losses(config: ConvLSTMConfig) -> None:
    """The FSS and motion loss terms: their weights, and the FSS thresholds (mm/h) and windows (pixels)."""
    fss_weight = _non_negative_float(config, "fss_loss_weight")
    if fss_weight and config.loss not in WEIGHTED_LOSSES:
        raise ValueError(
            f"fss_loss_weight={fss_weight!r} adds an FSS term to the rain-rate losses {WEIGHTED_LOSSES}, but "
            f"loss={config.loss!r}; set fss_loss_weight to 0 or use a weighted loss"
        )
    motion_weight = _non_negative_float(config, "motion_loss_weight")
    if motion_weight and not config.advection:
        raise ValueError(
            f"motion_loss_weight={motion_weight!r} trains the advection head's motion, but advection=False; set "
            "advection=True or motion_loss_weight to 0"
        )
    fss_thresholds = config.fss_loss_thresholds
    if not _finite_numbers(fss_thresholds) or not fss_thresholds or not all(t > 0 for t in fss_thresholds):
        raise ValueError(
            f"fss_loss_thresholds must be a non-empty list of rain rates > 0 (mm/h), got {fss_thresholds!r}"
        )
    fss_windows = config.fss_loss_windows
    if (
        not isinstance(fss_windows, (list, tuple))
        or not fss_windows
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in fss_windows)
    ):
        raise ValueError(
            f"fss_loss_windows must be a non-empty list of window sizes >= 1 (pixels), got {fss_windows!r}"
        )


def _pipeline_installed(task: str, spec) -> bool:
    """Whether transformers' pipeline registry holds, for `task`, the class `spec` names from installed code (not
    from a repo's remote code, which `trust_remote_code` guards)."""
    pipelines = sys.modules.get("transformers.pipelines")  # not imported: nothing registered
    if pipelines is None or not isinstance(spec, dict):
        return False
    registered = pipelines.PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
    return (
        registered is not None
        and not registered.__module__.startswith("transformers_modules")
        and str(spec.get("impl", "")).rsplit(".", 1)[-1] == registered.__name__
    )


ConvLSTMConfig.register_for_auto_class()

__all__ = ["ConvLSTMConfig"]
