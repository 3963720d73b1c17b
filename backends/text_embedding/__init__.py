"""The text-embedding backend: all-MiniLM-L6-v2 sentence embeddings of text records."""

from __future__ import annotations

from .backend import (
    TextEmbeddingBackend,
    TextEmbeddingConfig,
    packaged_model_dir,
)

# `packflow.examples.text_embedding:Backend`, as for the other shipped backends.
Backend = TextEmbeddingBackend

__all__ = ["Backend", "TextEmbeddingBackend", "TextEmbeddingConfig", "packaged_model_dir"]
