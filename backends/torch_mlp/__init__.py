"""The torch MLP backend: a small torch classifier over the demo input's 16 features."""

from __future__ import annotations

from .backend import TorchMLPBackend, TorchMLPConfig

# `packflow.examples.torch_mlp:Backend`, as for the other shipped backends.
Backend = TorchMLPBackend

__all__ = ["Backend", "TorchMLPBackend", "TorchMLPConfig"]
