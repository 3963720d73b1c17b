"""The MLP's architecture, shared by the backend and the script that makes its weights."""

from __future__ import annotations

import itertools

import torch
from torch import nn

FEATURES = 16
HIDDEN = (64, 32)
CLASSES = 3


def build_mlp(
    features: int = FEATURES, hidden: tuple[int, ...] = HIDDEN, classes: int = CLASSES
) -> nn.Sequential:
    """Linear layers with ReLU between them; the last layer gives one logit per class."""
    sizes = (features, *hidden, classes)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp_for(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """An MLP shaped like the layers of `state` (weights of Linear layers 0, 2, 4, ...),
    with `state` loaded: the weights file decides the sizes."""
    weights = [
        state[k]
        for k in sorted(
            (k for k in state if k.endswith(".weight")), key=lambda k: int(k.split(".")[0])
        )
    ]
    if not weights:
        raise ValueError("the state dict holds no Linear weights")
    hidden = tuple(w.shape[0] for w in weights[:-1])
    model = build_mlp(weights[0].shape[1], hidden, weights[-1].shape[0])
    model.load_state_dict(state)
    return model


def labels_of(x: torch.Tensor) -> torch.Tensor:
    """The synthetic task the weights are trained on: which of three regions a record's
    features fall in (what the demo's standard-normal features make roughly balanced)."""
    s = x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3]
    return (s > -0.4).long() + (s > 0.4).long()
