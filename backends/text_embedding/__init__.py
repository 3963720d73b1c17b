"""The text-embedding backend: all-MiniLM-L6-v2 sentence embeddings of text records."""

from __future__ import annotations

from backends.text_embedding.backend import (
    TextEmbeddingBackend,
    TextEmbeddingConfig,
    packaged_model_dir,
)

# `backends.text_embedding:Backend`, as for the other shipped backends.
Backend = TextEmbeddingBackend

__all__ = ["Backend", "TextEmbeddingBackend", "TextEmbeddingConfig", "packaged_model_dir"]
