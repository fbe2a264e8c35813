"""job.yaml ``sweep:``: validation (strict keys, YAML lines, ranges per backend) and the points it expands to."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi3ft.config import JobConfigError, config_hash, derived_names, parse_job_config, training_hash
from phi3ft.errors import ExitCode
from phi3ft.records import SweepRecord
from phi3ft.sweep import compare, expand

BASE = """\
backend: {backend}
azure:
  subscription_id: 00000000-1111-2222-3333-444444444444
  resource_group: rg
  hub: {{name: hub-one}}
  project: {{name: proj-one}}
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl, validation: valid.jsonl}}
output: {{model_name: mine}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text("{}\n")
    (tmp_path / "valid.jsonl").write_text("{}\n")
    return tmp_path


def load(folder: Path, sweep: str, backend: str = "serverless") -> object:
    return parse_job_config(BASE.format(backend=backend) + sweep, base_dir=folder)


def problems(folder: Path, sweep: str, backend: str = "serverless") -> str:
    with pytest.raises(JobConfigError) as info:
        load(folder, sweep, backend)
    assert info.value.exit_code == ExitCode.INVALID
    return str(info.value.message)


def test_unknown_sweep_key_suggests_the_name_and_points_at_the_line(folder: Path) -> None:
    message = problems(folder, "sweep:\n  lr: [0.00002]\n")
    assert message == "job.yaml:11: sweep -> lr: unknown key; did you mean 'learning_rate'?"


def test_values_are_checked_against_the_backend_and_the_catalog_range(folder: Path) -> None:
    assert "sweep -> learning_rate -> 1: 0.5 is outside 2e-06..0.0002 for Phi-4-mini-instruct" in problems(
        folder, "sweep:\n  learning_rate:\n    - 0.00002\n    - 0.5\n"
    )
    assert problems(folder, "sweep:\n  learning_rate:\n    - 0.00002\n    - 0.5\n").startswith("job.yaml:13:")
    assert "LoRA r is set by Azure for backend serverless" in problems(folder, "sweep: {r: [8]}\n")
    assert "1.5: serverless epochs are whole numbers" in problems(folder, "sweep: {epochs: [1, 1.5]}\n")
    local = problems(folder, "sweep: {learning_rate: [0.0002, 2], r: [4, 0]}\n", backend="local")
    assert "learning_rate -> 1: 2 must be at most 1" in local and "r -> 1: 0 must be at least 1" in local
    assert "lists a value twice" in problems(folder, "sweep: {epochs: [1, 1]}\n")
    assert "lists no values to try" in problems(folder, "sweep: {max_parallel: 2}\n")
    assert "expands to 81 points; at most 64" in problems(
        folder, "sweep: {r: [1, 2, 3], alpha: [1, 2, 3], learning_rate: [0.1, 0.2, 0.3], epochs: [1, 2, 3]}\n",
        backend="local",
    )  # fmt: skip


def test_points_are_the_base_config_with_their_values_and_deterministic_names(folder: Path) -> None:
    cfg = load(folder, "sweep:\n  learning_rate: [0.00002, 0.0001]\n  epochs: [1, 2]\n")
    sweep = expand(cfg)
    assert [p.values for p in sweep.points] == [
        {"learning_rate": 0.00002, "epochs": 1},
        {"learning_rate": 0.00002, "epochs": 2},
        {"learning_rate": 0.0001, "epochs": 1},
        {"learning_rate": 0.0001, "epochs": 2},
    ]
    assert sweep.max_parallel == 4  # Azure default: all at once
    for point in sweep.points:
        assert point.cfg.sweep is None
        assert point.cfg.hyperparameters.learning_rate == point.values["learning_rate"]
        assert point.cfg.hyperparameters.epochs == point.values["epochs"]
        assert point.job == derived_names(point.cfg).job
        assert point.output_model.startswith("mine-") and point.output_model == point.cfg.output.model_name
    assert len({p.job for p in sweep.points}) == 4 and len({p.output_model for p in sweep.points}) == 4
    again = expand(load(folder, "sweep:\n  learning_rate: [0.00002, 0.0001]\n  epochs: [1, 2]\n"))
    assert again.name == sweep.name and [p.job for p in again.points] == [p.job for p in sweep.points]


def test_local_points_set_the_trainer_settings(folder: Path) -> None:
    cfg = load(folder, "sweep: {learning_rate: [0.0001, 0.001], r: [4, 8], alpha: [16]}\n", backend="local")
    sweep = expand(cfg)
    assert sweep.max_parallel == 1  # local default: one after another
    assert [(p.cfg.training.learning_rate, p.cfg.training.lora.r, p.cfg.training.lora.alpha) for p in sweep.points] == [
        (0.0001, 4, 16), (0.0001, 8, 16), (0.001, 4, 16), (0.001, 8, 16),
    ]  # fmt: skip


def test_a_config_without_sweep_hashes_as_before(folder: Path) -> None:
    cfg = load(folder, "")
    with_sweep = load(folder, "sweep: {epochs: [1, 2]}\n")
    assert cfg.sweep is None
    assert config_hash(cfg) == config_hash(with_sweep) and training_hash(cfg) == training_hash(with_sweep)


class FakeBackend:
    def __init__(self, metrics: dict[str, list[tuple[str, int, float]]]) -> None:
        self.metrics = metrics

    def get_job(self, name: str, *, with_error: bool = True) -> object:
        from phi3ft.targets.base import JobInfo

        return JobInfo(name=name, status="Completed")

    def job_metrics(self, name: str) -> list[object]:
        from phi3ft.targets.base import MetricPoint

        return [MetricPoint(series, step, value) for series, step, value in self.metrics[name]]


def test_compare_takes_the_last_losses_and_marks_the_lowest_validation_loss() -> None:
    backend = FakeBackend(
        {
            "a": [("train_loss", 1, 2.0), ("train_loss", 2, 1.5), ("eval_loss", 2, 1.7)],
            "b": [
                ("train_loss", 1, 2.0),
                ("train_loss", 2, 1.6),
                ("eval_loss", 1, 1.9),
                ("eval_loss", 2, 1.4),
            ],
        }
    )
    record = {
        "name": "sweep-x",
        "points": [
            {"index": 1, "values": {"learning_rate": 1e-5}, "job": "a", "status": "Running"},
            {"index": 2, "values": {"learning_rate": 5e-5}, "job": "b", "status": "Running"},
            {"index": 3, "values": {"learning_rate": 9e-5}, "job": "c", "status": "Pending"},
        ],
    }
    report = compare(backend, None, SweepRecord.parse(record))  # type: ignore[arg-type]
    rows = {r["job"]: r for r in report["points"]}
    assert (rows["a"]["train_loss"], rows["a"]["eval_loss"]) == (1.5, 1.7)
    assert (rows["b"]["train_loss"], rows["b"]["eval_loss"], rows["b"]["steps"]) == (1.6, 1.4, 2)
    assert rows["c"]["status"] == "Pending" and rows["c"]["eval_loss"] is None
    assert report["best"] == "b" and [r["best"] for r in report["points"]] == [False, True, False]


def test_the_shipped_example_sweep_expands_to_four_points() -> None:
    from tests.conftest import REPO

    from phi3ft.config import load_job_config

    sweep = expand(load_job_config(REPO / "examples" / "sweep.yaml", env={}))
    assert len(sweep.points) == 4 and sweep.max_parallel == 2
    assert {p.cfg.hyperparameters.batch_size for p in sweep.points} == {1}


def test_the_watch_table_has_a_row_per_point() -> None:
    import io

    from rich.console import Console

    from phi3ft.cli.sweep import sweep_table

    rows = [
        {
            "index": 1,
            "job": "j1",
            "status": "Running",
            "values": {"r": 4},
            "train_loss": 1.25,
            "eval_loss": None,
        },
        {
            "index": 2,
            "job": "j2",
            "status": "Pending",
            "values": {"r": 8},
            "train_loss": None,
            "eval_loss": None,
        },
    ]
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(sweep_table(rows, elapsed=65))
    text = buffer.getvalue()
    assert (
        "elapsed 1m05s" in text and "j1" in text and "1.2500" in text and "j2" in text and "Pending" in text
    )
