"""BERT's WordPiece tokenising of plain ASCII text in Python: the same ids as the model's fast
tokenizer (the `tokenizers` library), several times faster for short texts.

The library keeps, for every character, where it came from in the input (the offsets of
its `Encoding`s), through each of its normalising and splitting steps: for a sentence that
costs more than the model's forward pass on a GPU. On text of printable ASCII, tabs and
newlines, BERT's steps are simple, and Python's own string methods do them:

- the normaliser (`BertNormalizer`): removing control characters, spacing CJK characters
  and stripping accents change nothing in such text; lowercasing is `str.lower`;
- the pre-tokenizer (`BertPreTokenizer`): words are the runs of letters and digits, each
  punctuation character is a word of its own, whitespace separates and is dropped;
- the model (`WordPiece`): the greedy longest-match-first split of each word into pieces
  of the vocabulary, `[UNK]` for a word that has none; remembered per run of characters
  between whitespace (`end.` gives the pieces of `end` and of `.`);
- the post-processor (the `[CLS] ... [SEP]` template) and truncation to `max_length`.

Anything else goes to the tokenizer: a text with any other character, or with `[` (the
special tokens, `[CLS]` and the like, are matched in the raw text, before any of the
steps above), and every text of a tokenizer whose configuration is not exactly this one
(`WordPiece.of` then returns None). tests/unit/sdk/test_text_wordpiece.py holds the ids
equal to the tokenizer's over generated texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain
from typing import Any

# Printable ASCII but `[`, and tab, newline, carriage return.
_PLAIN = re.compile(r"[\t\n\r -Z\\-~]*").fullmatch
_WORDS_LOWER = re.compile(r"[a-z0-9]+|[^\t\n\r a-z0-9]").findall
_WORDS_CASED = re.compile(r"[A-Za-z0-9]+|[^\t\n\r A-Za-z0-9]").findall

# Runs of non-whitespace remembered with their pieces; forgotten all at once past this many.
CACHE_WORDS = 100_000


class WordPiece:
    """The ids of plain texts, or None for a text it leaves to the tokenizer."""

    def __init__(
        self,
        vocab: dict[str, int],
        unk_id: int,
        prefix: str,
        max_word: int,
        lowercase: bool,
        head: Sequence[int],
        tail: Sequence[int],
        max_length: int,
    ) -> None:
        self.vocab, self.unk, self.prefix, self.max_word = vocab, (unk_id,), prefix, max_word
        self.words = _WORDS_LOWER if lowercase else _WORDS_CASED
        self.lowercase = lowercase
        self.head, self.tail = list(head), list(tail)
        # The tokens kept: the head's and the text's, then the tail.
        self.keep = max_length - len(self.tail)
        self.cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def of(cls, tokenizer: Any, max_length: int) -> WordPiece | None:
        """For a `tokenizers.Tokenizer` configured as BERT's (and truncating to
        `max_length`, padding nothing), its equal for plain texts; None for any other."""
        config = json.loads(tokenizer.to_str())
        normalizer, model = config.get("normalizer") or {}, config.get("model") or {}
        truncation, post = config.get("truncation") or {}, config.get("post_processor") or {}
        added = [token.get("content", "") for token in config.get("added_tokens") or []]
        vocab = model.get("vocab")
        if not (
            normalizer.get("type") == "BertNormalizer"
            and isinstance(normalizer.get("lowercase"), bool)
            and (config.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and model.get("type") == "WordPiece"
            and isinstance(vocab, dict)
            and model.get("unk_token") in vocab
            and isinstance(model.get("continuing_subword_prefix"), str)
            and isinstance(model.get("max_input_chars_per_word"), int)
            and config.get("padding") is None
            and truncation.get("max_length") == max_length
            and truncation.get("stride") == 0
            and truncation.get("direction") == "Right"
            and all("[" in content for content in added)  # never in a plain text
        ):
            return None
        template = _template(post)
        if template is None or max_length <= len(template[0]) + len(template[1]):
            return None
        return cls(
            vocab,
            vocab[model["unk_token"]],
            model["continuing_subword_prefix"],
            model["max_input_chars_per_word"],
            normalizer["lowercase"],
            *template,
            max_length,
        )

    def encode(self, text: str) -> list[int] | None:
        """The ids of `text` (special tokens included, truncated), or None when it is not
        plain: the tokenizer's to make."""
        if _PLAIN(text) is None:
            return None
        cache, pieces_of = self.cache, self._pieces
        ids = self.head.copy()
        # Between whitespace: a word, or words and punctuation (`end.`), remembered whole.
        for chunk in (text.lower() if self.lowercase else text).split():
            pieces = cache.get(chunk)
            ids += pieces_of(chunk) if pieces is None else pieces
        if len(ids) > self.keep:
            del ids[self.keep :]
        ids += self.tail
        return ids

    def _pieces(self, chunk: str) -> tuple[int, ...]:
        """The pieces of the words of `chunk` (no whitespace in it), remembered."""
        if len(self.cache) >= CACHE_WORDS:
            self.cache.clear()
        pieces = tuple(chain.from_iterable(map(self._split, self.words(chunk))))
        self.cache[chunk] = pieces
        return pieces

    def _split(self, word: str) -> tuple[int, ...]:
        """WordPiece: the longest piece of the vocabulary at each position, the prefix marking
        a piece that continues a word; `[UNK]` for a word that cannot be split so."""
        if len(word) > self.max_word:
            return self.unk
        vocab, pieces, start = self.vocab, [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    pieces.append(found)
                    start = end
                    break
            else:
                return self.unk
        return tuple(pieces)


def _template(post: dict[str, Any]) -> tuple[list[int], list[int]] | None:
    """The ids before and after a single text, from a `TemplateProcessing` or
    `BertProcessing` post-processor whose type ids are all 0; None for any other."""
    if post.get("type") == "BertProcessing":
        return [int(post["cls"][1])], [int(post["sep"][1])]
    if post.get("type") != "TemplateProcessing":
        return None
    head: list[int] = []
    tail: list[int] = []
    side = head
    specials = post.get("special_tokens") or {}
    sequences = 0
    for piece in post.get("single") or []:
        if "Sequence" in piece and piece["Sequence"].get("id") == "A":
            if piece["Sequence"].get("type_id") != 0:
                return None
            sequences += 1
            side = tail
        elif "SpecialToken" in piece:
            token = piece["SpecialToken"]
            ids = (specials.get(token.get("id")) or {}).get("ids")
            if token.get("type_id") != 0 or not ids:
                return None
            side.extend(int(i) for i in ids)
        else:
            return None
    return (head, tail) if sequences == 1 else None
