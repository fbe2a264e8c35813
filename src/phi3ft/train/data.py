"""Training data: chat JSONL -> token ids with an assistant-only loss mask -> length-aware batches.

Torch-free (tokenizers + stdlib) so masking and batching are testable and reusable without the
``train`` extra. The collation to tensors lives in :mod:`phi3ft.train.trainer`.

Masking: the conversation is rendered once with the model family's chat template
(:func:`phi3ft.data.tokens.chat_format`, the validator's single source of truth for templates), recording
the character span of every assistant turn's *content plus its end-of-turn token*; the string is encoded
once with the ``tokenizer.json`` pipeline itself (``tokenizers``, ``add_special_tokens=False``; what
transformers 4 and vLLM do — transformers 5's ``AutoTokenizer`` on the model's own folder rebuilds Phi-3's
pipeline and drops the space prefix after role tokens, so the trainer saves the tokenizer with the adapter
in a form that reproduces these ids) and a token is trainable when its first character lies inside such
a span. Role tokens strip the whitespace after them, so
their offsets end past the template's ``\\n`` and never fall inside a content span. Everything else is
masked, including a closing ``<|endoftext|>``; ``weight: 0`` assistant turns are context only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3ft.errors import DataError

IGNORE_INDEX = -100


@dataclass
class Rendered:
    """A conversation rendered to text, with the character spans that carry loss."""

    text: str
    trainable_spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Example:
    """One tokenized conversation. ``labels[i]`` is ``input_ids[i]`` where it is trained, else -100."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def num_trainable(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


def render_conversation(messages: Sequence[dict[str, Any]], template: str) -> Rendered:
    """Render ``messages`` with a chat-template family (no generation prompt; the training form)."""
    from phi3ft.data.tokens import chat_format

    try:
        fmt = chat_format(template)
    except ValueError:
        raise DataError(
            f"chat template '{template}' is not supported by the local trainer",
            "pick a catalog model (phi3ft models) whose template phi3ft knows",
        ) from None
    normalised = [
        {
            "role": str(m.get("role")),
            "content": "" if m.get("content") is None else str(m.get("content")),
        }
        for m in messages
    ]
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for piece in fmt.pieces(normalised):
        # weight: 0 = context only (OpenAI format)
        trained = piece.role == "assistant" and messages[piece.index or 0].get("weight", 1) != 0
        if piece.index is not None and trained:
            spans.append((pos + piece.content[0], pos + piece.end[1]))
        parts.append(piece.text)
        pos += len(piece.text)
    return Rendered("".join(parts), spans)


def load_tokenizer(path: Path) -> Any:
    """Load a ``tokenizers.Tokenizer`` from ``tokenizer.json`` or a folder holding one (never the hub)."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise DataError(
            f"no tokenizer.json at {path}",
            "pass training.tokenizer (a tokenizer.json or its folder) or a base_model folder that has one",
        )
    return Tokenizer.from_file(str(file))


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[dict[str, Any]], template: str, max_seq_length: int | None = None
) -> Example:
    """Token ids and assistant-only labels of one conversation, truncated to ``max_seq_length``."""
    rendered = render_conversation(messages, template)
    encoding = tokenizer.encode(rendered.text, add_special_tokens=False)
    ids: list[int] = list(encoding.ids)
    labels = [IGNORE_INDEX] * len(ids)
    spans = rendered.trainable_spans
    for i, (start, _end) in enumerate(encoding.offsets):
        if any(lo <= start < hi for lo, hi in spans):
            labels[i] = ids[i]
    truncated = False
    if max_seq_length is not None and len(ids) > max_seq_length:
        ids, labels, truncated = ids[:max_seq_length], labels[:max_seq_length], True
    return Example(ids, labels, truncated)


def read_conversations(path: Path) -> list[list[dict[str, Any]]]:
    """Read chat-completion JSONL (``{"messages": [...]}`` per line) through the one JSONL reader
    (:func:`phi3ft.data.records.read_records`: BOM, CRLF, blank lines and encoding as ``validate`` reads them)."""
    from phi3ft.data.records import read_records

    if not path.is_file():
        raise DataError(
            f"data file not found: {path}", "check the path (phi3ft validate FILE checks the data)"
        )
    hint = f"run: phi3ft validate {path}"
    conversations: list[list[dict[str, Any]]] = []
    for rec in read_records(path, hint=hint):
        messages = rec.value.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise DataError(f"{path}:{rec.line}: no 'messages' list", hint)
        conversations.append(messages)
    if not conversations:
        raise DataError(f"{path} holds no conversations", "add at least one line of chat JSONL")
    return conversations


def split_conversations(
    conversations: list[list[dict[str, Any]]], fraction: float, seed: int
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Seeded hold-out: (train, validation); at least one of each when there are two or more."""
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    held = min(max(1, round(fraction * len(order))), len(order) - 1)
    held_set = set(order[:held])
    train = [c for i, c in enumerate(conversations) if i not in held_set]
    return train, [conversations[i] for i in sorted(held_set)]


@dataclass
class DatasetStats:
    conversations: int
    used: int
    dropped_no_assistant: int
    truncated: int
    tokens: int
    trainable_tokens: int
    longest: int


def build_examples(
    tokenizer: Any,
    conversations: Iterable[Sequence[dict[str, Any]]],
    template: str,
    max_seq_length: int | None,
) -> tuple[list[Example], DatasetStats]:
    """Tokenize every conversation; drop those with no trainable token left after truncation."""
    examples: list[Example] = []
    total = dropped = truncated = 0
    for messages in conversations:
        total += 1
        example = tokenize_conversation(tokenizer, messages, template, max_seq_length)
        if example.num_trainable == 0:
            dropped += 1
            continue
        truncated += example.truncated
        examples.append(example)
    stats = DatasetStats(
        conversations=total,
        used=len(examples),
        dropped_no_assistant=dropped,
        truncated=truncated,
        tokens=sum(len(e) for e in examples),
        trainable_tokens=sum(e.num_trainable for e in examples),
        longest=max((len(e) for e in examples), default=0),
    )
    return examples, stats


# ---- batching ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of a micro-batch: one or more whole conversations laid end to end."""

    members: list[int]  # indices into the example list


@dataclass
class MicroBatch:
    rows: list[Row]


def pack_row_length(lengths: Sequence[int], configured: int | None = None) -> int:
    """Packed row length: ``configured``, else 2 x the median length, within [256, longest]."""
    longest = max(lengths)
    if configured is not None:
        return configured
    median = sorted(lengths)[len(lengths) // 2]
    return min(longest, max(256, 2 * median))


def plan_batches(
    lengths: Sequence[int],
    mode: str,
    *,
    batch_size: int,
    max_tokens: int | None,
    row_length: int,
    seed: int,
) -> list[MicroBatch]:
    """Group examples into micro-batches (a fixed plan; the trainer shuffles its order per epoch).

    - ``packed``: first-fit-decreasing into rows of ``row_length`` tokens (a longer conversation gets
      a row of its own), rows of similar fill grouped ``batch_size`` per batch (or as many as
      ``max_tokens`` allows with padding to the widest). No padding inside rows.
    - ``bucketed``: sorted by length, ``batch_size`` conversations per batch (or as many as fit
      ``max_tokens`` with padding to the longest), so each batch pads to a similar length.
    - ``padded``: shuffled (seeded) then chunked; the plain Hugging Face behaviour.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[MicroBatch] = []
    if mode == "packed":
        rows: list[Row] = []
        used: list[int] = []
        open_rows: list[int] = []  # rows with room left; searching only the newest keeps this O(n)
        for i in order:
            for r in open_rows[-64:]:
                if used[r] + lengths[i] <= row_length:
                    rows[r].members.append(i)
                    used[r] += lengths[i]
                    break
            else:
                rows.append(Row([i]))
                used.append(lengths[i])
                open_rows.append(len(rows) - 1)
            open_rows = (
                [r for r in open_rows[-64:] if used[r] < row_length] if len(open_rows) > 128 else open_rows
            )
        # Conversations longer than row_length sit alone in their row; rows of similar fill share a
        # batch, so padding to the batch's longest row stays small.
        ranked = sorted(range(len(rows)), key=lambda r: (-used[r], r))
        group: list[int] = []
        for r in ranked:
            if group:
                width = used[group[0]]  # rows are in decreasing fill: the first is the widest
                full = (len(group) + 1) * width > max_tokens if max_tokens else len(group) >= batch_size
                if full:
                    batches.append(MicroBatch([rows[k] for k in group]))
                    group = []
            group.append(r)
        if group:
            batches.append(MicroBatch([rows[k] for k in group]))
        return batches
    if mode == "padded":
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
    elif mode != "bucketed":
        raise ValueError(f"unknown batching mode {mode!r}")
    current: list[int] = []
    for i in order:
        if current:
            longest = max(lengths[j] for j in [*current, i])
            too_many = (len(current) + 1) * longest > max_tokens if max_tokens else len(current) >= batch_size
            if too_many:
                batches.append(MicroBatch([Row([j]) for j in current]))
                current = []
        current.append(i)
    if current:
        batches.append(MicroBatch([Row([j]) for j in current]))
    return batches


def epoch_order(num_batches: int, epoch: int, seed: int) -> list[int]:
    """The micro-batch order of one epoch: a seeded shuffle, identical on resume."""
    order = list(range(num_batches))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


__all__ = [
    "IGNORE_INDEX",
    "DatasetStats",
    "Example",
    "MicroBatch",
    "Rendered",
    "Row",
    "build_examples",
    "epoch_order",
    "load_tokenizer",
    "pack_row_length",
    "plan_batches",
    "read_conversations",
    "render_conversation",
    "split_conversations",
    "tokenize_conversation",
]
