"""The logistic backend: a numpy logistic regression over the demo input's 16 features."""

from __future__ import annotations

from .backend import LogisticBackend, LogisticConfig

# `packflow.examples.logistic:Backend`, the name `packflow run --backend` examples use.
Backend = LogisticBackend

__all__ = ["Backend", "LogisticBackend", "LogisticConfig"]
