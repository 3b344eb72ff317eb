"""Text to token ids with nothing to download: hashed lower-cased words (default) or UTF-8 bytes.

Hashing uses zlib.crc32, never Python's hash(), whose value changes from one process to the next.
"""
import re
import zlib

import torch

from utils.errors import UserError

_WORD = re.compile(r"\w+")


def encode_text(text: str, cfg) -> list[int]:
    """Token ids of `text` (never 0, which is padding), truncated to cfg.max_text_length."""
    if cfg.text_encoding == "hashed_words":
        buckets = cfg.vocab_size - 1
        ids = [1 + zlib.crc32(word.encode("utf-8")) % buckets for word in _WORD.findall(text.lower())]
    elif cfg.text_encoding == "bytes":
        ids = [byte + 1 for byte in text.encode("utf-8")]
    else:
        raise UserError(f"Unknown text encoding {cfg.text_encoding!r} in config '{cfg.name}'; "
                        "use 'hashed_words' or 'bytes'.")
    return ids[:cfg.max_text_length]


def encode_batch(texts, cfg) -> torch.Tensor:
    """int64 N x max_text_length, 0-padded on the right (padding mask = `x != 0`)."""
    batch = torch.zeros(len(texts), cfg.max_text_length, dtype=torch.int64)
    for row, text in enumerate(texts):
        ids = encode_text(text, cfg)
        batch[row, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return batch
