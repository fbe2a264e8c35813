"""The LoRA trainer on a tiny random Phi-3 (CPU, real tokenizer, no network). Heavy: marked slow."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE, VALID_FILE

from phi3ft.errors import PrerequisiteError
from phi3ft.install import extra_install_command
from phi3ft.train import TrainingSettings, TrainOptions, run_training

pytestmark = pytest.mark.slow


def options(model_dir: Path, out: Path, **settings: object) -> TrainOptions:
    base: dict[str, object] = {
        "base_model": str(model_dir),
        "tokenizer": PHI3_TOKENIZER_DIR,
        "output_dir": out,
        "learning_rate": 5e-3,
        "per_device_batch_size": 1,
        "max_seq_length": 256,
        "gradient_checkpointing": False,
        "warmup_ratio": 0.0,
        "lora": {"r": 8, "alpha": 64, "dropout": 0.1},
    }
    base.update(settings)
    return TrainOptions(
        train_file=TRAIN_FILE,
        validation_file=VALID_FILE,
        settings=TrainingSettings.model_validate(base),
        device="cpu",
    )


def test_packed_row_equals_separate_conversations(tiny_model_dir: Path) -> None:
    """Packing is exact: one row holding three conversations has the loss of the three run alone."""
    import torch

    from phi3ft.train.data import MicroBatch, Row, build_examples, load_tokenizer, read_conversations
    from phi3ft.train.trainer import collate, load_lora_model, loss_sum

    tokenizer = load_tokenizer(PHI3_TOKENIZER_DIR)
    examples, _ = build_examples(tokenizer, read_conversations(TRAIN_FILE)[:3], "phi3", 256)
    opts = options(tiny_model_dir, Path("unused"), lora={"r": 8, "dropout": 0.0})
    model = load_lora_model(opts, str(tiny_model_dir), torch.device("cpu"), False)
    model.eval()
    cpu = torch.device("cpu")
    with torch.no_grad():
        packed, n_packed = loss_sum(
            model, collate(MicroBatch([Row([0, 1, 2])]), examples, "packed", 32000, cpu), False
        )
        alone = [
            loss_sum(model, collate(MicroBatch([Row([i])]), examples, "packed", 32000, cpu), False)
            for i in range(3)
        ]
        padded = loss_sum(
            model, collate(MicroBatch([Row([0]), Row([1]), Row([2])]), examples, "padded", 32000, cpu), False
        )
        bucketed = loss_sum(
            model,
            collate(MicroBatch([Row([0]), Row([1]), Row([2])]), examples, "bucketed", 32000, cpu),
            False,
        )
    assert n_packed == sum(n for _, n in alone) == sum(e.num_trainable for e in examples)
    expected = sum(float(loss) for loss, _ in alone)
    for got in (packed, padded[0], bucketed[0]):
        assert float(got) == pytest.approx(expected, rel=1e-4)


def test_thirty_steps_lower_the_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    events: list[str] = []
    result = run_training(
        options(tiny_model_dir, tmp_path, max_steps=30, eval_every_steps=15, save_every_steps=15),
        progress=lambda e: events.append(e.kind),
    )
    lines = [json.loads(line) for line in result.metrics_file.read_text().splitlines()]
    train = [line["train_loss"] for line in lines if "train_loss" in line]
    evals = [line["eval_loss"] for line in lines if "eval_loss" in line]
    assert len(train) == 30 and result.steps == 30
    assert sum(train[-5:]) / 5 < train[0] - 0.4, train  # from ~ln(32064)=10.4 (LoRA on a random model)
    assert evals[-1] < evals[0] and result.eval_perplexity == pytest.approx(math.exp(result.eval_loss or 0))
    assert events[0] == "start" and events[-1] == "done" and "eval" in events and "checkpoint" in events
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.adapter_dir / "tokenizer.json").is_file()
    assert result.chart_file is not None and result.chart_file.read_bytes()[:4] == b"\x89PNG"
    assert result.tokens_per_s > 0 and result.peak_memory_bytes > 0


def test_resume_continues_the_same_trajectory(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Steps 7-12 resumed from checkpoint-6 (adapter, optimizer, schedule, RNG) match the straight run."""
    straight = run_training(options(tiny_model_dir, tmp_path / "a", max_steps=12, save_every_steps=6))
    resumed = run_training(
        options(tiny_model_dir, tmp_path / "b", max_steps=12, resume=str(tmp_path / "a" / "checkpoint-6"))
    )
    assert resumed.resumed_from_step == 6 and resumed.steps == 12

    def losses(result_dir: Path) -> list[float]:
        lines = [json.loads(x) for x in (result_dir / "metrics.jsonl").read_text().splitlines()]
        return [x["train_loss"] for x in lines if "train_loss" in x]

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) == 12 and len(b) == 6
    assert b == pytest.approx(a[6:], rel=1e-5)
    assert resumed.eval_loss == pytest.approx(straight.eval_loss, rel=1e-5)


def test_resume_without_checkpoint_is_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    from phi3ft.errors import ConfigError

    with pytest.raises(ConfigError, match="no checkpoint"):
        run_training(options(tiny_model_dir, tmp_path, max_steps=1, resume=True))


def test_cli_train_json_and_merge(tiny_model_dir: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    code, out, err = run_cli(
        "train", "--train-file", str(TRAIN_FILE), "--validation-file", str(VALID_FILE),
        "--base-model", str(tiny_model_dir), "--tokenizer", str(PHI3_TOKENIZER_DIR), "--output-dir", str(tmp_path), "--max-steps", "2",
        "--device", "cpu", "--merge", "--json",
        env={"PHI3FT_TEST": "1"},
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] == 2 and result["merged_dir"]
    assert "Training:" in err
    merged = AutoModelForCausalLM.from_pretrained(result["merged_dir"])
    assert merged.config.hidden_size == 64


def test_cli_bad_input_is_one_line(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run_cli("train", "--train-file", str(tmp_path / "missing.jsonl"), "--device", "gpu")
    assert code == 2 and "--device" in err and "Traceback" not in err
    code, _out, err = run_cli("train", "--train-file", str(tmp_path / "missing.jsonl"), "--device", "cpu")
    assert code == 3 and "not found" in err


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi3ft.train.trainer import require_train_extra

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(PrerequisiteError) as info:
        require_train_extra()
    assert "peft" in info.value.message
    assert (info.value.hint or "").startswith(extra_install_command("train"))


def test_child_process_entry_streams_json_lines(tiny_model_dir: Path, tmp_path: Path) -> None:
    opts = options(tiny_model_dir, tmp_path / "out", max_steps=1)
    (tmp_path / "opts.json").write_text(opts.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft.train", str(tmp_path / "opts.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [json.loads(line)["kind"] for line in proc.stdout.splitlines()]
    assert kinds[0] == "start" and kinds[-1] == "result" and kinds.count("step") == 1


def test_cli_train_from_job_yaml(tiny_model_dir: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """--config reads model, data and the training: block; relative output_dir is next to job.yaml."""
    job = tmp_path / "job.yaml"
    job.write_text(
        f"""
backend: local
model: {{name: phi-3-mini-4k-instruct}}
data:
  train: {TRAIN_FILE}
  split: {{fraction: 0.2}}
training:
  base_model: {tiny_model_dir}
  tokenizer: {PHI3_TOKENIZER_DIR}
  max_steps: 2
  max_seq_length: 128
  gradient_checkpointing: false
  output_dir: runs/tiny
"""
    )
    code, out, err = run_cli("train", "--config", str(job), "--device", "cpu", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert Path(result["output_dir"]) == tmp_path / "runs" / "tiny"
    assert result["steps"] == 2 and result["eval_loss"] is not None  # validation from the split
    code, _out, err = run_cli("train", "--config", str(job), "--device", "cpu", "--resume")
    assert code == 3 and "no checkpoint" in err  # 2 steps < 1 epoch: no checkpoint was written
