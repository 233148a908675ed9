"""The benchmarked shapes (a)-(c) and the FLOP counts of the layer and the frame-prediction model.

FLOPs count the convolutions: ``2 * B * H' * W' * k^2 * C_in * C_out`` each; a training step counts three times
the forward (forward, input gradient, weight gradient), inference once. The same nominal count is used for every
variant of a configuration, so GFLOP/s ratios are speed ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig


@dataclass
class LayerConfig:
    """One benchmarked layer shape: input ``(T=steps, B=batch, in_channels, size, size)``, ``hidden`` channels,
    a ``kernel`` x ``kernel`` convolution, ``num_layers`` layers, one or two directions."""

    name: str
    title: str
    batch: int
    steps: int
    in_channels: int
    size: int
    hidden: int
    kernel: int
    num_layers: int = 1
    bidirectional: bool = False

    def layer_kwargs(self) -> dict:
        """Keyword arguments of ``ConvLSTM(in_channels, hidden, **kwargs)`` for this shape ("same" padding)."""
        return dict(
            kernel_size=self.kernel,
            padding=self.kernel // 2,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
        )

    def forward_flops(self) -> float:
        """Convolution FLOPs of one forward pass (nominal: the first step's recurrent conv counted)."""
        directions = 2 if self.bidirectional else 1
        pixels = self.batch * self.steps * self.size * self.size * self.kernel**2
        total = 0.0
        for layer in range(self.num_layers):
            channels = self.in_channels if layer == 0 else directions * self.hidden
            total += directions * 2 * pixels * (channels + self.hidden) * 4 * self.hidden
        return total

    def describe(self) -> str:
        """The shape in one line, as the report's section header prints it."""
        return (
            f"B={self.batch}, T={self.steps}, {self.in_channels} ch at {self.size}x{self.size}, "
            f"{self.hidden} hidden, kernel {self.kernel}, {self.num_layers} layer(s), "
            f"{'bidirectional' if self.bidirectional else 'unidirectional'}; "
            f"{self.forward_flops() / 1e9:.1f} GFLOP forward"
        )


LAYER_CONFIGS = {
    "a": LayerConfig("a", "OpenSTL ConvLSTM-S layer", 16, 10, 16, 16, 128, 5),
    "b": LayerConfig("b", "bidirectional, 2 layers", 16, 10, 16, 16, 64, 5, num_layers=2, bidirectional=True),
    "c": LayerConfig("c", "full resolution 64x64", 16, 10, 1, 64, 32, 3),
}
QUICK_CONFIGS = {
    "a": LayerConfig("a", "tiny (a)", 2, 3, 4, 8, 8, 5),
    "b": LayerConfig("b", "tiny (b)", 2, 3, 4, 8, 4, 5, num_layers=2, bidirectional=True),
    "c": LayerConfig("c", "tiny (c)", 2, 3, 1, 8, 4, 3),
}


def model_forward_flops(config: ConvLSTMConfig, batch: int, size: int) -> float:
    """Convolution FLOPs of one forward pass of ``ConvLSTMForFramePrediction`` (nominal, as for the layers: every
    step's recurrent convolution counted): encoder and forecaster gates, the state bridges and the 1x1 head."""
    pixels = batch * (size // config.patch_size) ** 2
    kernel_area = config.kernel_size**2
    patch_channels = config.num_channels * config.patch_size**2
    directions = 2 if config.bidirectional else 1
    total, channels = 0.0, patch_channels
    for hidden in config.hidden_sizes:  # encoder, over the observed frames
        total += (
            config.num_input_frames * directions * 2 * pixels * kernel_area * (channels + hidden) * 4 * hidden
        )
        channels = directions * hidden
    channels = patch_channels
    for hidden in config.hidden_sizes:  # forecaster, over the predicted frames
        total += config.num_output_frames * 2 * pixels * kernel_area * (channels + hidden) * 4 * hidden
        channels = hidden
    if config.bidirectional:  # 1x1 bridges from both directions' (h, c) to the forecaster's
        total += sum(2 * pixels * (4 * hidden) * (2 * hidden) for hidden in config.hidden_sizes)
    total += config.num_output_frames * 2 * pixels * sum(config.hidden_sizes) * patch_channels  # head
    return total
