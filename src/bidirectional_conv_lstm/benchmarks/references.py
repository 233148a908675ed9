"""Two reference ConvLSTM designs our layer is measured against; both compute our function from our weights.

Both take ``(T, B, C, H, W)`` and return the last layer's output ``(T, B, directions * hidden, H, W)``, the
backward direction re-aligned in time, from zero initial states, with ``padding="same"`` and stride 1. Their
forward passes are written the way the designs are usually written (the time loop in plain sight), since they are
what our layer's speed is compared with.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.convlstm.convlstm import ConvLSTM


class ConcatConvLSTM(nn.Module):
    """Reference: one convolution over ``cat([x_t, h_{t-1}])`` per step (the design of the most used
    PyTorch ConvLSTM), multi-layer and bidirectional like ours; input ``(T, B, C, H, W)``."""

    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.hidden_channels, self.directions = hidden_channels, 2 if bidirectional else 1
        self.convs = nn.ModuleList()
        for layer in range(num_layers):
            channels = in_channels if layer == 0 else self.directions * hidden_channels
            for _ in range(self.directions):
                self.convs.append(
                    nn.Conv2d(
                        channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
                    )
                )

    def load_from(self, ours: ConvLSTM) -> ConcatConvLSTM:
        """Copy the weights of our ``ConvLSTM`` (same shapes, ``padding="same"``, stride 1)."""
        with torch.no_grad():
            for conv, cell in zip(self.convs, ours.cells):
                gate = cell.gate
                conv.weight.copy_(torch.cat([gate.input_conv.weight, gate.hidden_conv.weight], dim=1))
                conv.bias.copy_(gate.input_conv.bias)
        return self

    def forward(self, x):
        for layer in range(len(self.convs) // self.directions):
            outputs = []
            for direction in range(self.directions):
                conv = self.convs[layer * self.directions + direction]
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                h = c = x.new_zeros(x.shape[1], self.hidden_channels, *x.shape[-2:])
                out = [None] * x.shape[0]
                for t in steps:
                    i, f, g, o = conv(torch.cat([x[t], h], dim=1)).chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    out[t] = h
                outputs.append(torch.stack(out))
            x = torch.cat(outputs, dim=2)
        return x


class TwoConvConvLSTM(nn.Module):
    """Reference: ``W_x * x_t + W_h * h_{t-1}`` per step, nothing hoisted out of the time loop."""

    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.hidden_channels, self.directions = hidden_channels, 2 if bidirectional else 1
        self.input_convs, self.hidden_convs = nn.ModuleList(), nn.ModuleList()
        for layer in range(num_layers):
            channels = in_channels if layer == 0 else self.directions * hidden_channels
            for _ in range(self.directions):
                self.input_convs.append(
                    nn.Conv2d(channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
                )
                self.hidden_convs.append(
                    nn.Conv2d(
                        hidden_channels,
                        4 * hidden_channels,
                        kernel_size,
                        padding=kernel_size // 2,
                        bias=False,
                    )
                )

    def load_from(self, ours: ConvLSTM) -> TwoConvConvLSTM:
        """Copy the weights of our ``ConvLSTM`` (same shapes, ``padding="same"``, stride 1)."""
        with torch.no_grad():
            for x_conv, h_conv, cell in zip(self.input_convs, self.hidden_convs, ours.cells):
                x_conv.load_state_dict(cell.gate.input_conv.state_dict())
                h_conv.load_state_dict(cell.gate.hidden_conv.state_dict())
        return self

    def forward(self, x):
        for layer in range(len(self.input_convs) // self.directions):
            outputs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                h = c = x.new_zeros(x.shape[1], self.hidden_channels, *x.shape[-2:])
                out = [None] * x.shape[0]
                for t in steps:
                    gates = self.input_convs[index](x[t]) + self.hidden_convs[index](h)
                    i, f, g, o = gates.chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    out[t] = h
                outputs.append(torch.stack(out))
            x = torch.cat(outputs, dim=2)
        return x
