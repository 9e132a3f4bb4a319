"""Chapter 4, section 4.4: why the transformer block has shortcut (residual) connections.

A deep stack of small layers passes its gradient back through every layer's Jacobian; when those
shrink it, the first layers hardly learn (vanishing gradients). Adding each layer's input to its
output (``x = x + layer(x)``) gives the gradient a path that skips the layer: d(x + f(x))/dx =
1 + f'(x), so it reaches the first layer undiminished.

    model = ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], use_shortcut=False)
    print_gradients(model, np.array([[1.0, 0.0, -1.0]], dtype=np.float32))
    # layers.0.0.weight has gradient mean of 0.0002...   (tiny: it vanished on the way back)

This is the book's demo, not part of the GPT; the model itself uses the same idea in
:class:`gpt.model.TransformerBlock`.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import nn

from gpt.model import GELU

__all__ = ["ExampleDeepNeuralNetwork", "print_gradients"]


class ExampleDeepNeuralNetwork(nn.Module):
    """Five ``Linear + GELU`` layers; with ``use_shortcut`` each layer's input is added to its
    output wherever the shapes allow. x: (batch, layer_sizes[0]) -> (batch, layer_sizes[-1])."""

    def __init__(self, layer_sizes, use_shortcut: bool):
        super().__init__()
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got {list(layer_sizes)}")
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList(
            [nn.Sequential(nn.Linear(n_in, n_out), GELU()) for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]
        )

    def forward(self, x):
        for layer in self.layers:
            layer_output = layer(x)
            if self.use_shortcut and x.shape == layer_output.shape:
                x = x + layer_output        # the shortcut: the gradient also flows around the layer
            else:
                x = layer_output            # the last layer changes the width: no shortcut there
        return x


def print_gradients(model: nn.Module, x, target=None) -> dict[str, float]:
    """One backward pass of the mean squared error between ``model(x)`` and ``target`` (default: all
    zeros, as in the book); print and return the mean absolute gradient of every weight matrix.

    The model's gradients are cleared first, so repeated calls do not accumulate.
    """
    model.zero_grad()
    output = model(x)
    target = np.zeros(output.shape, dtype=output.dtype) if target is None else np.asarray(target, dtype=output.dtype)
    loss = ((output - target) ** 2).mean()          # nn.MSELoss()
    loss.backward()
    means = {}
    for name, param in model.named_parameters():
        if "weight" in name:
            means[name] = float(np.abs(param.grad).mean())
            print(f"{name} has gradient mean of {means[name]}")
    return means


def _demo() -> None:  # pragma: no cover - the example script shows the same
    sample_input = mg.tensor([[1.0, 0.0, -1.0]])
    for use_shortcut in (False, True):
        mg.manual_seed(123)
        print(f"use_shortcut={use_shortcut}")
        print_gradients(ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], use_shortcut), sample_input)


if __name__ == "__main__":  # pragma: no cover
    _demo()
