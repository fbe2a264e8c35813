"""A 2x2 sweep (two learning rates x two LoRA ranks) on ``backend: local``, end to end on CPU: the real CLI
starts the real trainer (a tiny random Phi-3) for every point, two at a time (``max_parallel: 2``), then
``compare`` reports each point's final losses from its own ``metrics.jsonl`` and marks the best."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE, VALID_FILE, build_tiny_phi3

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

JOB_YAML = """\
backend: local
model: {{name: phi-3-mini-4k-instruct}}
data: {{train: {train}, validation: {valid}}}
deploy: {{enabled: false}}
training:
  base_model: {model}
  tokenizer: {tokenizer}
  max_steps: 2
  max_seq_length: 256
sweep:
  learning_rate: [0.0001, 0.001]
  r: [4, 8]
  max_parallel: 2
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))


@pytest.fixture
def cli(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(output=Output(interactive=False), env=dict(os.environ), cwd=tmp_path)
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    return run


def final(path: Path, series: str) -> float:
    values = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [v[series] for v in values if series in v][-1]  # type: ignore[no-any-return]


def test_2x2_sweep_trains_four_points_and_compare_marks_the_best(
    cli: Callable[..., tuple[int, str, str]], tiny_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        JOB_YAML.format(train=TRAIN_FILE, valid=VALID_FILE, model=tiny_model, tokenizer=PHI3_TOKENIZER_DIR)
    )
    code, out, err = cli("plan", "-c", str(config), "--json", "--tokenizer", str(PHI3_TOKENIZER_DIR))
    assert code == 0, err
    planned = json.loads(out)["sweep"]
    assert [p["values"] for p in planned["points"]] == [
        {"learning_rate": 0.0001, "r": 4},
        {"learning_rate": 0.0001, "r": 8},
        {"learning_rate": 0.001, "r": 4},
        {"learning_rate": 0.001, "r": 8},
    ]
    assert len({p["job"] for p in planned["points"]}) == 4 and planned["max_parallel"] == 2

    t0 = time.monotonic()
    code, out, err = cli(
        "submit", "-c", str(config), "--yes", "--json", "--tokenizer", str(PHI3_TOKENIZER_DIR)
    )
    wall = time.monotonic() - t0
    assert code == 0, err
    submitted = json.loads(out)
    assert submitted["sweep"] == planned["name"]
    assert [p["job"] for p in submitted["points"]] == [p["job"] for p in planned["points"]]
    assert {p["status"] for p in submitted["points"]} == {"Completed"}

    code, out, err = cli("compare", "--json")
    assert code == 0, err
    report = json.loads(out)
    store = StateStore(tmp_path / ".phi3ft")
    assert len(report["points"]) == 4
    for point in report["points"]:
        record = store.get("job", point["job"])
        assert record is not None and record["status"] == "Completed"
        metrics = Path(record["output_dir"]) / "metrics.jsonl"
        options = json.loads((tmp_path / ".phi3ft" / "jobs" / point["job"] / "options.json").read_text())
        assert options["settings"]["lora"]["r"] == point["values"]["r"]
        assert options["settings"]["learning_rate"] == point["values"]["learning_rate"]
        assert point["steps"] == 2
        assert point["train_loss"] == pytest.approx(final(metrics, "train_loss"))
        assert point["eval_loss"] == pytest.approx(final(metrics, "eval_loss"))
    best = min(report["points"], key=lambda p: p["eval_loss"])
    assert report["best"] == best["job"] and [p["best"] for p in report["points"]].count(True) == 1

    code, out, err = cli("compare")
    assert code == 0, err
    assert f"* best by validation loss: {best['job']}" in out

    # eval --baseline on the best point: its adapter against the base weights, both really generating
    code, out, err = cli("eval", best["job"], "--baseline", "--limit", "2", "--max-tokens", "4", "--json")
    assert code == 0, err
    scored = json.loads(out)
    assert scored["backend"] == "local" and scored["fine_tuned"]["endpoint"] == f"{best['job']} (adapter)"
    assert scored["fine_tuned"]["examples"] == scored["base"]["examples"] == 2
    results = scored["fine_tuned"]["results"] + scored["base"]["results"]
    assert all(0 < (r["completion_tokens"] or 0) <= 4 for r in results)
    assert sum(scored["counts"].values()) == 2

    # again: every point re-attaches, nothing trains twice
    code, out, err = cli("submit", "-c", str(config), "--yes", "--json", "--detach")
    assert code == 0, err
    assert [p["job"] for p in json.loads(out)["points"]] == [p["job"] for p in planned["points"]]
    assert len(list((tmp_path / ".phi3ft" / "jobs").iterdir())) == 4
    print(f"local 2x2 sweep: submit -> 4 points Completed in {wall:.1f} s (2 steps each, 2 at a time, CPU)")
