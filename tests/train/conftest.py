"""Fixtures for the trainer tests: a tiny random Phi-3 model on disk and the example data."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TRAIN_FILE = FIXTURES / "train.jsonl"
VALID_FILE = FIXTURES / "valid.jsonl"


def build_tiny_phi3(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Phi-3 (real vocabulary size) saved as a local model folder."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    config = Phi3Config(
        vocab_size=32064,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        max_position_embeddings=4096,
        pad_token_id=32000,
        bos_token_id=1,
        eos_token_id=32000,
    )
    Phi3ForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))
