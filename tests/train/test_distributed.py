"""Data parallel (two gloo processes on CPU) and MLflow logging of the trainer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from tests.train.test_trainer import options

from phi3ft.train import run_training
from phi3ft.train.trainer import DistInfo, _MlflowSink, dist_info, rank_micro_batches

NO_DROPOUT = {"r": 8, "alpha": 64, "dropout": 0.0}  # dropout masks differ per process; the math must not


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _losses(metrics: Path, key: str) -> list[float]:
    lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [line[key] for line in lines if key in line]


def test_ranks_split_the_single_process_step_exactly() -> None:
    for world in (1, 2, 3):
        for accum in (1, 2, 4):
            for step in (0, 1, 7):
                ranks = [rank_micro_batches(step, accum, DistInfo(world, r, r)) for r in range(world)]
                assert all(len(r) == accum for r in ranks)  # every rank steps together
                merged = sorted(i for r in ranks for i in r)
                assert merged == rank_micro_batches(step, accum * world, DistInfo())


def test_dist_info_reads_the_launcher_environment() -> None:
    assert dist_info({}) == DistInfo() and not dist_info({"WORLD_SIZE": "1", "RANK": "0"}).enabled
    info = dist_info({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert info == DistInfo(4, 3, 1) and info.enabled and not info.is_main
    from phi3ft.errors import ConfigError

    with pytest.raises(ConfigError):
        dist_info({"WORLD_SIZE": "two"})
    with pytest.raises(ConfigError):
        dist_info({"WORLD_SIZE": "2", "RANK": "2"})


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    """WORLD_SIZE=2 x accumulation 1 == one process x accumulation 2: same losses, rank 0 writes alone."""
    steps = 3
    single = run_training(
        options(
            tiny_model_dir,
            tmp_path / "single",
            max_steps=steps,
            gradient_accumulation_steps=2,
            lora=NO_DROPOUT,
        )
    )
    port = _free_port()
    procs = []
    for rank in (0, 1):
        opts = options(tiny_model_dir, tmp_path / f"rank{rank}", max_steps=steps, lora=NO_DROPOUT)
        (tmp_path / f"opts{rank}.json").write_text(opts.model_dump_json())
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
        env.update(
            WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "phi3ft.train", str(tmp_path / f"opts{rank}.json")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=150) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    lines = [[json.loads(x) for x in out.splitlines()] for out, _ in outputs]
    results = [x[-1] for x in lines]
    assert [r["kind"] for r in results] == ["result", "result"]
    assert [(r["rank"], r["world_size"]) for r in results] == [(0, 2), (1, 2)]
    # only rank 0 reports progress and writes outputs
    assert [x["kind"] for x in lines[1]] == ["result"]
    assert [x["kind"] for x in lines[0]].count("step") == steps
    assert not (tmp_path / "rank1").exists()
    out0 = tmp_path / "rank0"
    assert (out0 / "adapter" / "adapter_model.safetensors").is_file() and (out0 / "loss.png").is_file()
    # the same optimisation as one process with the same global batch
    assert _losses(out0 / "metrics.jsonl", "train_loss") == pytest.approx(
        _losses(single.metrics_file, "train_loss"), rel=1e-4
    )
    # gradient norms too (Adam would hide a wrong gradient scale in the losses)
    assert _losses(out0 / "metrics.jsonl", "grad_norm") == pytest.approx(
        _losses(single.metrics_file, "grad_norm"), rel=1e-4
    )
    assert results[0]["eval_loss"] == pytest.approx(single.eval_loss, rel=1e-4)
    assert results[0]["train_tokens"] == single.train_tokens


def test_mlflow_sink_logs_finite_values_and_survives_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float, int]] = []
    fake = types.ModuleType("mlflow")

    def log_metric(key: str, value: float, step: int | None = None) -> None:
        if key == "boom":
            raise ConnectionError("unreachable\nsecond line")
        calls.append((key, value, step or 0))

    fake.log_metric = log_metric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert _MlflowSink(True).module is None  # no tracking URI: nothing is logged
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "azureml://example")
    assert _MlflowSink(False).module is None  # not rank 0
    sink = _MlflowSink(True)
    sink.log({"train_loss": 1.5, "eval_loss": None, "learning_rate": float("nan")}, 3)
    assert calls == [("train_loss", 1.5, 3)]
    sink.log({"boom": 1.0}, 4)
    sink.log({"train_loss": 1.0}, 5)
    assert sink.failure == "ConnectionError: unreachable" and calls == [("train_loss", 1.5, 3)]
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed: silently off
    assert _MlflowSink(True).module is None


@pytest.mark.slow
def test_training_logs_train_and_eval_loss_to_mlflow(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[tuple[str, float, int]] = []
    fake = types.ModuleType("mlflow")
    fake.log_metric = lambda key, value, step=None: logged.append((key, value, step))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "azureml://example")
    result = run_training(options(tiny_model_dir, tmp_path, max_steps=2))
    train = [(v, s) for k, v, s in logged if k == "train_loss"]
    evals = [(v, s) for k, v, s in logged if k == "eval_loss"]
    assert [s for _, s in train] == [1, 2] and train[-1][0] == pytest.approx(result.train_loss)
    assert evals == [(pytest.approx(result.eval_loss), 2)]


def test_cluster_environment_installs_mlflow() -> None:
    from phi3ft.targets.azureml.sdk.compute import environment_files

    requirements = environment_files()["requirements.txt"].splitlines()
    assert any(r.startswith("mlflow-skinny") for r in requirements)
    assert any(r.startswith("azureml-mlflow") for r in requirements)  # resolves azureml:// tracking URIs
