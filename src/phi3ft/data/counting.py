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
from concurrent.futures import Future, ThreadPoolExecutor
from hashlib import blake2b
from typing import Any

from phi3ft.data.tokens import ChatFormat, Encoder

Done = Callable[[Any, list[int]], None]


class ChunkCounter:
    """Queue conversations as chunk texts; ``done(ctx, counts)`` is called once their counts are known.

    Callbacks fire in submission order, on the caller's thread, at the latest on :meth:`flush`. With
    ``background=True`` (the default) a full batch is encoded on a worker thread while the caller goes on
    parsing and checking lines (the tokenizers release the GIL while they encode); at most one batch is in
    flight, so memory stays bounded.
    """

    def __init__(
        self,
        encoder: Encoder,
        done: Done,
        *,
        cache_entries: int = 100_000,
        batch_chars: int = 2_000_000,
        batch_records: int = 4096,
        background: bool = True,
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
        # the batch being encoded: (future of counts, its keys, its records)
        self._inflight: tuple[Future[list[int]], list[bytes], list[tuple[Any, list[bytes]]]] | None = None
        self._inflight_keys: set[bytes] = set()
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="phi3ft-tokens") if background else None
        )
        self.encoded_chunks = 0  # distinct chunks sent to the tokenizer
        self.seen_chunks = 0

    def submit(self, ctx: Any, texts: Sequence[str]) -> None:
        """Queue one conversation's chunk texts (each keyed by the blake2b digest of its text)."""
        keys = [blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        self.submit_keyed(ctx, keys, texts.__getitem__)

    def submit_keyed(self, ctx: Any, keys: list[bytes], text: Callable[[int], str]) -> None:
        """:meth:`submit` with the caller's keys: ``keys[i]`` stands for the text ``text(i)``, which is only
        asked for when that key is not known yet. Equal keys must mean equal texts (the caller digests what
        makes the text: the validator keys a chunk by its role and a digest of the content, remembered per
        distinct content). One counter must be fed keys of one kind."""
        young, old, pending, inflight = self._young, self._old, self._pending, self._inflight_keys
        for i, key in enumerate(keys):
            if key in young or key in pending or key in inflight:
                continue
            hit = old.get(key)
            if hit is not None:
                young[key] = hit
                continue
            t = pending[key] = text(i)
            self._pending_chars += len(t)
        self.seen_chunks += len(keys)
        self._records.append((ctx, keys))
        if self._pending_chars >= self._batch_chars or len(self._records) >= self._batch_records:
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand the pending batch to the encoder (in the background when possible)."""
        self._resolve()  # the previous batch first: callbacks stay in order, one batch in flight
        keys, texts = list(self._pending), list(self._pending.values())
        records = self._records
        self._pending, self._pending_chars, self._records = {}, 0, []
        self.encoded_chunks += len(texts)
        if self._pool is None:
            self._finish(keys, self._encoder.count_batch(texts) if texts else [], records)
            return
        future: Future[list[int]] = self._pool.submit(self._encoder.count_batch, texts)
        self._inflight = (future, keys, records)
        self._inflight_keys = set(keys)

    def _resolve(self) -> None:
        if self._inflight is not None:
            future, keys, records = self._inflight
            self._inflight = None
            counts = future.result() if keys else []
            self._inflight_keys = set()
            self._finish(keys, counts, records)

    def _finish(self, keys: list[bytes], counts: list[int], records: list[tuple[Any, list[bytes]]]) -> None:
        young, old = self._young, self._old
        young.update(zip(keys, counts, strict=True))
        for ctx, rkeys in records:
            self._done(ctx, [young[k] if k in young else old[k] for k in rkeys])
        if len(young) > self._cache_entries:
            self._old, self._young = young, {}

    def flush(self) -> None:
        """Encode what is queued and fire every outstanding callback."""
        if self._pending or self._records:
            self._dispatch()
        self._resolve()

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def constant_counts(fmt: ChatFormat, encoder: Encoder) -> tuple[int, int, dict[str, int]]:
    """Token counts of the format's prefix, suffix and per-role headers (computed once per run)."""
    texts = [fmt.prefix, fmt.suffix, *fmt.header.values()]
    nonempty = [t for t in texts if t]
    counts = dict(zip(nonempty, encoder.count_batch(nonempty), strict=False)) if nonempty else {}
    headers = {role: counts.get(h, 0) for role, h in fmt.header.items()}
    return counts.get(fmt.prefix, 0), counts.get(fmt.suffix, 0), headers
