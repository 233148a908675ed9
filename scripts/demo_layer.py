"""A quick look at the layer: shapes, parameter count and a gradient step on random frames."""

import torch

from bidirectional_conv_lstm import ConvLSTM


def main() -> None:
    torch.manual_seed(0)
    batch_size, seq_len, height, width = 4, 10, 64, 64
    conv_lstm = ConvLSTM(
        in_channels=1,
        hidden_channels=64,
        kernel_size=3,
        padding=1,
        stride=1,
        bias=True,
        batch_first=True,
        bidirectional=True,
    )
    print(conv_lstm)
    frames = torch.randn(batch_size, seq_len, 1, height, width)
    output, (hidden_state, cell_state) = conv_lstm(frames)
    print(f"output {tuple(output.shape)}, h_n {tuple(hidden_state.shape)}, c_n {tuple(cell_state.shape)}")
    output.mean().backward()
    parameters = sum(p.numel() for p in conv_lstm.parameters())
    print(
        f"{parameters:,} parameters, all with gradients:",
        all(p.grad is not None for p in conv_lstm.parameters()),
    )


if __name__ == "__main__":
    main()
