"""``phi3ft eval --baseline`` on the local backend: the tiny random Phi-3 and an adapter trained on it, both
generating for real on CPU (random text, but real), scored by the same report as two endpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE, VALID_FILE

from phi3ft.cli.context import AppContext
from phi3ft.evaluate import token_f1
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.train import TrainingSettings, TrainOptions, run_training

pytestmark = pytest.mark.slow


def test_local_baseline_compares_base_and_adapter(tiny_model_dir: Path, tmp_path: Path, run_cli: Any) -> None:
    if not PHI3_TOKENIZER_DIR.is_dir():
        pytest.skip("the Phi-3 tokenizer fixture is not present")
    job, job_dir, out_dir = "local-job-1", tmp_path / ".phi3ft" / "jobs" / "local-job-1", tmp_path / "out"
    settings = {"base_model": str(tiny_model_dir), "tokenizer": PHI3_TOKENIZER_DIR, "output_dir": out_dir,
                "learning_rate": 5e-3, "per_device_batch_size": 1, "max_seq_length": 256, "max_steps": 30,
                "gradient_checkpointing": False, "warmup_ratio": 0.0, "lora": {"r": 8, "alpha": 64, "dropout": 0.1}}  # fmt: skip
    options = TrainOptions(
        model="phi-3-mini-4k-instruct",
        train_file=TRAIN_FILE,
        validation_file=VALID_FILE,
        settings=TrainingSettings.model_validate(settings),
        device="cpu",
    )
    result = run_training(options)
    job_dir.mkdir(parents=True)
    (job_dir / "options.json").write_text(options.model_dump_json())
    store = StateStore(tmp_path / ".phi3ft")
    store.record(
        "job",
        job,
        status="Completed",
        backend="local",
        model_id=str(tiny_model_dir),
        output_dir=str(out_dir),
        adapter_dir=str(result.adapter_dir),
        job_dir=str(job_dir),
        created_by_phi3ft=True,
    )
    ctx = AppContext(
        output=Output(interactive=False),
        env={**os.environ, "PHI3FT_STATE_DIR": str(tmp_path / ".phi3ft")},
        cwd=tmp_path,
    )
    args = ["eval", "--baseline", "--limit", "4", "--max-tokens", "8", "--show", "2", "--json"]
    # 30 steps teach the references' opening ("Happy to help with"); the base model is random
    args += ["--min-gain", "f1", "0.05"]
    code, out, err = run_cli(*args, ctx=ctx)
    assert code == 0, err
    report = json.loads(out)
    assert report["backend"] == "local"
    ft, base = report["fine_tuned"], report["base"]
    assert ft["endpoint"] == f"{job} (adapter)" and base["endpoint"] == f"{tiny_model_dir} (base)"
    assert ft["examples"] == base["examples"] == 4 and ft["errors"] == base["errors"] == 0
    assert ft["data"] == str(VALID_FILE)  # the job's validation file, from its options
    # real generations: at most 8 new tokens each, and the two models do not answer alike
    references = [
        json.loads(line)["messages"][-1]["content"] for line in VALID_FILE.read_text().splitlines()[:4]
    ]
    answers = {"ft": [r["answer"] for r in ft["results"]], "base": [r["answer"] for r in base["results"]]}
    assert all(0 < (r["completion_tokens"] or 0) <= 8 for r in ft["results"] + base["results"])
    assert answers["ft"] != answers["base"]
    # the numbers are those of the answers
    for side, key in (("ft", "fine_tuned"), ("base", "base")):
        f1s = [token_f1(a, ref) for a, ref in zip(answers[side], references, strict=True)]
        assert report[key]["f1"] == pytest.approx(sum(f1s) / 4)
        assert report[key]["completion_tokens"] == sum(r["completion_tokens"] for r in report[key]["results"])
        assert report[key]["perplexity"] is not None  # local generation has the log-probabilities
    assert sum(report["counts"].values()) == 4 and len(report["verdicts"]) == 4
    assert len(report["most_different"]) <= 2
    assert report["gate"]["passed"] is True and ft["f1"] > base["f1"]

    # the human report and the chart
    pytest.importorskip("matplotlib")
    code, out, err = run_cli(
        "eval", "--baseline", "--limit", "2", "--max-tokens", "4", "--plot", "cmp.png", ctx=ctx
    )
    assert code == 0, err
    assert "fine-tuned" in out and "token F1" in out and "per example" in out
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
