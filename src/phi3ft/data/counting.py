"""Exact token counting at dataset scale: encode each *distinct* message chunk once, then add up.

Phi chat templates render a conversation as independent chunks separated by added tokens, so the count
of a rendered conversation is the sum of its chunk counts (phi3ft.data.tokens). Datasets repeat long
system prompts and stock answers, so encoding only unseen chunks, in batches (``encode_batch_fast`` runs
on all cores), is both exact and much faster than encoding every rendered example.

Memory is bounded: the cache maps a 16-byte blake2b digest of the chunk text to its count, in two
generations (a cheap approximation of LRU): when the young generation is full it becomes the old one and
the previous old one is dropped; hits in the old generation are promoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Any

from phi3ft.data.tokens import ChatFormat, Encoder

Done = Callable[[Any, list[int]], None]


class ChunkCounter:
    """Queue conversations as chunk texts; ``done(ctx, counts)`` is called once their counts are known.

    Callbacks fire in submission order, at the latest on :meth:`flush`.
    """

    def __init__(
        self,
        encoder: Encoder,
        done: Done,
        *,
        cache_entries: int = 200_000,
        batch_chars: int = 2_000_000,
        batch_records: int = 4096,
    ) -> None:
        self._encoder = encoder
        self._done = done
        self._young: dict[bytes, int] = {}
        self._old: dict[bytes, int] = {}
        self._pending: dict[bytes, str] = {}
        self._pending_chars = 0
        self._records: list[tuple[Any, list[bytes]]] = []
        self._cache_entries = cache_entries
        self._batch_chars = batch_chars
        self._batch_records = batch_records
        self.encoded_chunks = 0  # distinct chunks sent to the tokenizer
        self.seen_chunks = 0

    def submit(self, ctx: Any, texts: Sequence[str]) -> None:
        keys = []
        young, old, pending = self._young, self._old, self._pending
        for text in texts:
            key = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            keys.append(key)
            if key in young or key in pending:
                continue
            hit = old.get(key)
            if hit is not None:
                young[key] = hit
                continue
            pending[key] = text
            self._pending_chars += len(text)
        self.seen_chunks += len(keys)
        self._records.append((ctx, keys))
        if self._pending_chars >= self._batch_chars or len(self._records) >= self._batch_records:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            texts = list(self._pending.values())
            counts = self._encoder.count_batch(texts)
            self._young.update(zip(self._pending.keys(), counts, strict=False))
            self.encoded_chunks += len(texts)
            self._pending = {}
            self._pending_chars = 0
        young, old = self._young, self._old
        for ctx, keys in self._records:
            self._done(ctx, [young[k] if k in young else old[k] for k in keys])
        self._records = []
        if len(young) > self._cache_entries:
            self._old, self._young = young, {}


def constant_counts(fmt: ChatFormat, encoder: Encoder) -> tuple[int, int, dict[str, int]]:
    """Token counts of the format's prefix, suffix and per-role headers (computed once per run)."""
    texts = [fmt.prefix, fmt.suffix, *fmt.header.values()]
    nonempty = [t for t in texts if t]
    counts = dict(zip(nonempty, encoder.count_batch(nonempty), strict=False)) if nonempty else {}
    headers = {role: counts.get(h, 0) for role, h in fmt.header.items()}
    return counts.get(fmt.prefix, 0), counts.get(fmt.suffix, 0), headers
