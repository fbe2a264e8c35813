"""Assistant-only masking against the template's token spans, and length-aware batching (no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.train.conftest import TRAIN_FILE

from phi3ft.train.data import (
    IGNORE_INDEX,
    build_examples,
    epoch_order,
    load_tokenizer,
    plan_batches,
    read_conversations,
    render_conversation,
    split_conversations,
    tokenize_conversation,
)

END, ASSISTANT, USER, SYSTEM, EOT = 32007, 32001, 32010, 32006, 32000

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello world"},
    {"role": "assistant", "content": "Hi! How can I help you today?"},
    {"role": "user", "content": "  Two\nlines "},
    {"role": "assistant", "content": "\n Sure:\nfirst\nsecond\n"},
]


@pytest.fixture
def tokenizer(phi3_tokenizer_dir: Path) -> object:
    return load_tokenizer(phi3_tokenizer_dir)


def test_render_matches_phi3_template() -> None:
    rendered = render_conversation(CONVERSATION[:3], "phi3")
    assert rendered.text == (
        "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello world<|end|>\n"
        "<|assistant|>\nHi! How can I help you today?<|end|>\n<|endoftext|>"
    )
    ((start, end),) = rendered.trainable_spans
    assert rendered.text[start:end] == "Hi! How can I help you today?<|end|>"


def test_worked_example_count_and_mask(tokenizer: object) -> None:
    example = tokenize_conversation(tokenizer, CONVERSATION[:3], "phi3")
    assert len(example) == 24  # the worked example of docs/architecture.md
    assert example.input_ids[0] == SYSTEM and example.input_ids[-1] == EOT


def test_mask_is_exactly_the_assistant_spans(tokenizer: object) -> None:
    """Trainable tokens = each assistant turn's own tokens (content encoded alone) + its <|end|>."""
    example = tokenize_conversation(tokenizer, CONVERSATION, "phi3")
    ids, labels = example.input_ids, example.labels
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(labels, ids, strict=True))
    # Walk the template's turns: role token, content tokens, <|end|>.
    expected: list[int] = []
    i = 0
    for message in CONVERSATION:
        role_token = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}[message["role"]]
        assert ids[i] == role_token
        content = tokenizer.encode(message["content"].lstrip(), add_special_tokens=False).ids  # type: ignore[attr-defined]
        assert ids[i + 1 : i + 1 + len(content)] == content
        assert ids[i + 1 + len(content)] == END
        trainable = message["role"] == "assistant"
        expected += [IGNORE_INDEX] + [t if trainable else IGNORE_INDEX for t in [*content, END]]
        i += 2 + len(content)
    assert ids[i:] == [EOT]
    expected.append(IGNORE_INDEX)
    assert labels == expected


def test_truncation_and_dropping(tokenizer: object) -> None:
    conversations = [CONVERSATION, [{"role": "user", "content": "no answer"}]]
    examples, stats = build_examples(tokenizer, conversations, "phi3", max_seq_length=30)
    assert stats.conversations == 2 and stats.used == 1 and stats.dropped_no_assistant == 1
    assert stats.truncated == 1 and len(examples[0]) == 30


def test_other_template_families(tokenizer: object) -> None:
    medium = render_conversation(CONVERSATION[:3], "phi3-medium")
    assert medium.text.startswith("<|user|>\nHello world") and "<|system|>" not in medium.text
    phi4 = render_conversation(CONVERSATION[:3], "phi4")
    ((start, end),) = phi4.trainable_spans
    assert phi4.text[start:end] == "Hi! How can I help you today?<|im_end|>"


@pytest.mark.parametrize("mode", ["packed", "bucketed", "padded"])
def test_every_example_lands_in_exactly_one_batch(mode: str) -> None:
    lengths = [5, 90, 17, 64, 3, 100, 41, 41, 8, 77, 12]
    batches = plan_batches(lengths, mode, batch_size=3, max_tokens=None, row_length=100, seed=1)
    members = sorted(i for b in batches for row in b.rows for i in row.members)
    assert members == list(range(len(lengths)))
    for batch in batches:
        assert len(batch.rows) <= 3
        for row in batch.rows:
            assert sum(lengths[i] for i in row.members) <= 100


def test_packing_wastes_less_than_padding() -> None:
    lengths = [5, 90, 17, 64, 3, 100, 41, 41, 8, 77, 12, 30, 22, 9]

    def padded_tokens(mode: str) -> int:
        total = 0
        for batch in plan_batches(lengths, mode, batch_size=4, max_tokens=None, row_length=100, seed=3):
            widths = [sum(lengths[i] for i in row.members) for row in batch.rows]
            total += max(widths) * len(widths)
        return total

    assert padded_tokens("packed") < padded_tokens("bucketed") < padded_tokens("padded")


def test_token_budget_in_bucketed_mode() -> None:
    lengths = [10] * 10 + [50] * 4
    batches = plan_batches(lengths, "bucketed", batch_size=1, max_tokens=100, row_length=50, seed=0)
    for batch in batches:
        assert len(batch.rows) * max(lengths[row.members[0]] for row in batch.rows) <= 100


def test_epoch_order_is_seeded() -> None:
    assert epoch_order(10, 0, 1) == epoch_order(10, 0, 1)
    assert epoch_order(10, 0, 1) != epoch_order(10, 1, 1)


def test_split_and_fixture_reading() -> None:
    conversations = read_conversations(TRAIN_FILE)
    train, held = split_conversations(conversations, 0.25, seed=5)
    assert len(held) == 16 and len(train) + len(held) == len(conversations)
    assert split_conversations(conversations, 0.25, seed=5) == (train, held)


def test_packed_long_conversations_get_their_own_row_and_budget_holds() -> None:
    from phi3ft.train.data import pack_row_length

    lengths = [300, 40, 35, 30, 25, 20, 15, 10, 250, 60]
    assert pack_row_length(lengths) == 256  # 2 x median 35 -> floor 256
    batches = plan_batches(lengths, "packed", batch_size=1, max_tokens=600, row_length=100, seed=0)
    rows = [row.members for b in batches for row in b.rows]
    assert [0] in rows and [8] in rows
    for batch in batches:
        widths = [sum(lengths[i] for i in row.members) for row in batch.rows]
        assert len(widths) * max(widths) <= 600 or len(widths) == 1


def test_weight_zero_assistant_turn_is_not_trained() -> None:
    messages = [
        *CONVERSATION[:3],
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "x"},
    ]
    messages[2] = {**messages[2], "weight": 0}
    rendered = render_conversation(messages, "phi3")
    assert [rendered.text[a:b] for a, b in rendered.trainable_spans] == ["x<|end|>"]


@pytest.mark.parametrize(
    "template", ["phi3", "phi3-original", "phi3-medium", "phi3-small", "phi4-mini", "phi4"]
)
def test_trainer_renders_through_the_validators_chat_format(template: str) -> None:
    """One source of truth: the trainer's text is ChatFormat.render; spans are content + end marker."""
    from phi3ft.data.tokens import chat_format

    fmt = chat_format(template)
    rendered = render_conversation(CONVERSATION, template)
    assert rendered.text == fmt.render(CONVERSATION)
    assert "".join(p.text for p in fmt.pieces(CONVERSATION)) == rendered.text
    marker = fmt.end_marker("assistant")
    assert marker in ("<|end|>", "<|im_end|>")
    answers = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert [rendered.text[a:b] for a, b in rendered.trainable_spans] == [c + marker for c in answers]


def test_unknown_template_is_a_data_error() -> None:
    from phi3ft.errors import DataError

    with pytest.raises(DataError, match="not supported"):
        render_conversation(CONVERSATION, "llama")


def test_medium_mask_skips_the_assistant_marker_in_the_user_footer(tokenizer: object) -> None:
    """Phi-3-medium: <|assistant|> closes the user chunk and stays masked; content + <|end|> is trained."""
    example = tokenize_conversation(tokenizer, CONVERSATION[1:3], "phi3-medium")
    trained = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    content = tokenizer.encode(CONVERSATION[2]["content"], add_special_tokens=False).ids  # type: ignore[attr-defined]
    assert trained == [*content, END]
    assert example.input_ids[:1] == [USER] and ASSISTANT in example.input_ids
