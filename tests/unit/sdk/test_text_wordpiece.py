"""The text-embedding backend's tokenising: `wordpiece.WordPiece` gives the fast tokenizer's
ids for every text it takes, leaves it every other, and the batch's tensors are the same
with it or without it. Only the tokenizer is loaded, not the model's weights."""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The torch extra (`make install`); the floors' run (`make test-floors`) goes without it.
torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")

from packflow.examples.text_embedding import TextEmbeddingBackend, packaged_model_dir
from packflow.examples.text_embedding.wordpiece import WordPiece
from packflow.runtime.contracts import load_schema
from packflow.runtime.generate import synthetic_records


def text_model_dir() -> Path:
    # As tests/unit/sdk/test_devices.py finds it: PACKFLOW_TEXT_MODEL, else the packaged one.
    given = os.environ.get("PACKFLOW_TEXT_MODEL")
    return Path(given) if given else packaged_model_dir()


class TokensOnly(TextEmbeddingBackend):
    """The backend with its tokenizer and no model."""

    def initialize(self) -> None:
        self.load_tokenizer(self.config.model_path or text_model_dir())


@pytest.fixture(scope="module")
def backend() -> TokensOnly:
    return TokensOnly(device="cpu")


def texts(seed: int, count: int) -> list[str]:
    """Texts of every kind a stream may carry, most of them plain ASCII."""
    rng = random.Random(seed)
    vocab = json.loads((text_model_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    words = [w.removeprefix("##") for w in vocab if w.isascii() and "[" not in w]
    printable = string.ascii_letters + string.digits + string.punctuation + " \t\n\r"
    out = [r["text"] for r in synthetic_records(load_schema("text_input"), count, seed=seed)]
    out += ["", " ", "\n\t", "a" * 100, "a" * 101, "x" * 500, " ".join(["word"] * 600)]
    out += ["CamelCase UPPER lower", "don't stop-me now!!", "3.14159 and 1,000,000", "a\x0bb"]
    out += ["[CLS] hello", "hello [SEP]", "a [MASK] b", "[unused0]", "[ not special ]"]
    out += ["café naïve", "東京 tower", "emoji 🙂 here", "soft\u00adhyphen", "\x00nul\x7f"]
    for _ in range(count):
        kind = rng.random()
        n = rng.randint(0, 300)
        if kind < 0.3:
            out.append("".join(rng.choice(printable) for _ in range(n)))
        elif kind < 0.7:
            glue = [" ", "", ".", ",", "-", "'", "  ", "\n", "_", "/"]
            out.append("".join(rng.choice(words) + rng.choice(glue) for _ in range(n // 3)))
        elif kind < 0.9:
            text = " ".join(rng.choice(words).upper() for _ in range(n // 4))
            out.append(text.replace("A", "á", 1) if rng.random() < 0.2 else text)
        else:
            out.append(" ".join(rng.choice(words) for _ in range(n)))
    return out


def tokenizer_ids(tokenizer: Any, batch: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(batch)]


@pytest.mark.parametrize("max_length", [256, 512, 16, 3])
def test_wordpiece_gives_the_tokenizers_ids_for_every_plain_text(
    backend: TokensOnly, max_length: int
) -> None:
    tokenizer = tokenizers.Tokenizer.from_str(backend.tokenizer.to_str())
    tokenizer.enable_truncation(max_length)
    wordpiece = WordPiece.of(tokenizer, max_length)
    assert wordpiece is not None
    batch = texts(max_length, 1500)
    found = [wordpiece.encode(text) for text in batch]
    expected = tokenizer_ids(tokenizer, batch)
    taken = [(text, ids, want) for text, ids, want in zip(batch, found, expected) if ids]
    assert [(t, ids) for t, ids, want in taken if ids != want] == []
    left = {text for text, ids in zip(batch, found) if ids is None}
    # It takes the plain texts, and leaves it those with `[` or any other character.
    assert len(taken) > 0.8 * len(batch)
    assert all("[" in t or not t.isascii() or any(c in t for c in "\x00\x0b\x7f") for t in left)
    assert {"[CLS] hello", "café naïve", "a\x0bb"} <= left
    assert all(
        wordpiece.encode(r["text"]) for r in synthetic_records(load_schema("text_input"), 50)
    )


def test_wordpiece_of_a_cased_bert_tokenizer_keeps_the_case(backend: TokensOnly) -> None:
    config = json.loads(backend.tokenizer.to_str())
    config["normalizer"]["lowercase"] = False
    tokenizer = tokenizers.Tokenizer.from_str(json.dumps(config))
    wordpiece = WordPiece.of(tokenizer, 256)
    assert wordpiece is not None
    batch = texts(7, 500)
    found = [wordpiece.encode(t) for t in batch]
    pairs = zip(batch, found, tokenizer_ids(tokenizer, batch), strict=True)
    assert [(t, ids) for t, ids, want in pairs if ids is not None and ids != want] == []
    assert wordpiece.encode("Kafka KAFKA kafka") != WordPiece.of(backend.tokenizer, 256).encode(  # type: ignore[union-attr]
        "Kafka KAFKA kafka"
    )


def _changed(backend: TokensOnly, change: Any) -> Any:
    config = json.loads(backend.tokenizer.to_str())
    change(config)
    return tokenizers.Tokenizer.from_str(json.dumps(config))


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["normalizer"].update(type="Lowercase"),
        lambda c: c.update(pre_tokenizer={"type": "Whitespace"}),
        lambda c: c["model"].update(unk_token="<unk>"),
        lambda c: c["added_tokens"].append({**c["added_tokens"][0], "id": 999, "content": "zz"}),
        lambda c: c["post_processor"]["single"][1]["Sequence"].update(type_id=1),
        lambda c: c["truncation"].update(direction="Left"),
        lambda c: c["truncation"].update(stride=4),
    ],
)
def test_wordpiece_leaves_any_other_tokenizer_to_itself(backend: TokensOnly, change: Any) -> None:
    assert WordPiece.of(backend.tokenizer, backend.config.max_length) is not None
    assert WordPiece.of(_changed(backend, change), backend.config.max_length) is None
    assert WordPiece.of(backend.tokenizer, backend.config.max_length + 1) is None  # not its length
    assert WordPiece.of(_changed(backend, lambda c: None), 2) is None  # room for no token
    padded = _changed(backend, lambda c: None)
    padded.enable_padding()
    assert WordPiece.of(padded, backend.config.max_length) is None


def test_the_batch_tensors_are_the_same_with_python_wordpiece_or_without(
    backend: TokensOnly,
) -> None:
    without = TokensOnly(device="cpu", python_wordpiece=False, chunk_size=64)
    with_it = TokensOnly(device="cpu", chunk_size=64)
    assert without.wordpiece is None and with_it.wordpiece is not None
    records = [{"text": t} for t in texts(11, 400)]
    a, b = without.transform_inputs(records), with_it.transform_inputs(records)
    assert np.array_equal(a.order, b.order) and len(a.tokens) == len(b.tokens) > 1
    for x, y in zip(a.tokens, b.tokens, strict=True):
        assert list(x) == list(y) == ["input_ids", "token_type_ids", "attention_mask"]
        for name in x:
            assert x[name].dtype == y[name].dtype == torch.int64
            assert torch.equal(x[name], y[name]), name


def test_a_text_that_is_not_a_string_fails_the_batch_naming_its_type(
    backend: TokensOnly,
) -> None:
    with pytest.raises(TypeError, match="'text' must be a string, got int"):
        backend.transform_inputs([{"text": "fine"}, {"text": 3}])
