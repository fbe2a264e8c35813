"""The tokenizer saved with the adapter and the merged model encodes exactly as training did (issue 19 #11).

transformers 5's ``AutoTokenizer.from_pretrained`` on the Phi-3 tokenizer folder (``tokenizer_class:
LlamaTokenizer``) rebuilds the pipeline from the vocabulary and drops the space-prefix rule of
``tokenizer.json`` (``Hello`` instead of ``▁Hello`` after every role token). The trainer encodes with
``tokenizer.json`` itself, so what it saves must load, through ``AutoTokenizer``, to those same ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR, REPO

from phi3ft.train import TrainingSettings, TrainOptions, run_training
from phi3ft.train.data import load_tokenizer, read_conversations, render_conversation, tokenize_conversation

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "examples" / "data"


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PHI3_TOKENIZER_DIR.is_dir():
        pytest.skip("the Phi-3 tokenizer fixture is not present")
    out = tmp_path_factory.mktemp("saved-tokenizer")
    settings = TrainingSettings.model_validate(
        {"base_model": str(tiny_model_dir), "tokenizer": PHI3_TOKENIZER_DIR, "output_dir": out, "max_steps": 1,
         "max_seq_length": 4096, "gradient_checkpointing": False, "merge": True}
    )  # fmt: skip
    options = TrainOptions(
        train_file=EXAMPLES / "train.jsonl",
        validation_file=EXAMPLES / "validation.jsonl",
        settings=settings,
        device="cpu",
    )
    result = run_training(options)
    assert result.merged_dir is not None
    return out


@pytest.mark.parametrize("folder", ["adapter", "merged"])
def test_auto_tokenizer_of_the_output_reproduces_the_training_ids(trained: Path, folder: str) -> None:
    from transformers import AutoTokenizer

    conversations = read_conversations(EXAMPLES / "train.jsonl") + read_conversations(
        EXAMPLES / "validation.jsonl"
    )
    training = load_tokenizer(PHI3_TOKENIZER_DIR)
    saved = AutoTokenizer.from_pretrained(trained / folder)
    differing = 0
    tokens = 0
    for messages in conversations:
        ids = tokenize_conversation(training, messages, "phi3").input_ids
        text = render_conversation(messages, "phi3").text
        tokens += len(ids)
        served = saved(text, add_special_tokens=False)["input_ids"]
        templated = saved.apply_chat_template(messages, tokenize=False)
        differing += served != ids or templated != text
    assert (len(conversations), tokens) == (155, 34607)
    assert differing == 0
    config = json.loads((trained / folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["eos_token"] == "<|endoftext|>" and "chat_template" in config
    assert saved.convert_ids_to_tokens(saved("<|user|>\nHello", add_special_tokens=False)["input_ids"]) == [
        "<|user|>",
        "▁Hello",
    ]
