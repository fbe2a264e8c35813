"""LocalBackend with a stand-in trainer (a few lines of Python, no torch): status from the runner's pid and
result file, cancel kills the process group, logs and metrics are file reads, a killed runner reads Failed."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from phi3ft.errors import NotFoundError
from phi3ft.targets.local.backend import LocalBackend
from phi3ft.train.types import TrainOptions

#: A stand-in for ``python -m phi3ft.train OPTIONS.json``: same stdout protocol, same metrics.jsonl.
FAKE_TRAINER = r"""
import json, sys, time, pathlib
opts = json.loads(pathlib.Path(sys.argv[1]).read_text())
out = pathlib.Path(opts["settings"]["output_dir"]); out.mkdir(parents=True, exist_ok=True)
mode = pathlib.Path(opts["train_file"]).read_text().strip()
def emit(**kw): print(json.dumps(kw), flush=True)
emit(kind="start", step=0, total_steps=3, message="fake")
with (out / "metrics.jsonl").open("w") as m:
    for step in (1, 2, 3):
        m.write(json.dumps({"step": step, "train_loss": 2.0 / step}) + "\n"); m.flush()
        emit(kind="step", step=step, total_steps=3, loss=2.0 / step)
        if mode == "slow":
            time.sleep(60)
    m.write(json.dumps({"step": 3, "eval_loss": 0.9, "eval_perplexity": 2.46}) + "\n")
if mode == "fail":
    print("Traceback: something broke", file=sys.stderr)
    emit(kind="error", message="data/train.jsonl: no conversation has an assistant turn", hint="run validate")
    sys.exit(3)
if mode == "crash":
    print("Segmentation fault", file=sys.stderr); sys.exit(139)
(out / "adapter").mkdir(exist_ok=True)
emit(kind="result", output_dir=str(out), adapter_dir=str(out / "adapter"), steps=3)
"""


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return LocalBackend(tmp_path / "jobs", trainer=[sys.executable, str(script)])


def options(tmp_path: Path, mode: str) -> TrainOptions:
    train = tmp_path / f"{mode}.txt"
    train.write_text(mode)
    opts = TrainOptions(train_file=train)
    opts.settings.output_dir = tmp_path / "out" / mode
    return opts


def wait_terminal(backend: LocalBackend, name: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.get_job(name).status
        if status != "Running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"{name} still running")


def test_completed_job_reports_adapter_metrics_and_logs(backend: LocalBackend, tmp_path: Path) -> None:
    job = backend.create_local_job(name="j1", options=options(tmp_path, "ok"), tags={"phi3ft": "x"})
    assert job.status in ("Running", "Completed") and job.backend == "local"
    assert wait_terminal(backend, "j1") == "Completed"
    info = backend.get_job("j1")
    assert info.output_model_name == str(tmp_path / "out" / "ok" / "adapter")
    assert info.extra["progress"] == {"step": 3, "total_steps": 3, "loss": pytest.approx(2.0 / 3)}
    assert info.extra["result"]["steps"] == 3
    points = backend.job_metrics("j1")
    assert [(p.name, p.step) for p in points] == [
        ("eval_loss", 3),
        ("train_loss", 1),
        ("train_loss", 2),
        ("train_loss", 3),
    ]
    logs = dict(backend.job_logs("j1"))
    assert '"kind": "result"' in logs["events.jsonl"]
    assert json.loads(logs["result.json"])["status"] == "Completed"
    assert [j.name for j in backend.list_jobs()] == ["j1"]
    assert backend.cancel_job("j1").status == "Completed"  # finished: left as it is


def test_failed_job_carries_the_trainer_message(backend: LocalBackend, tmp_path: Path) -> None:
    backend.create_local_job(name="bad", options=options(tmp_path, "fail"))
    assert wait_terminal(backend, "bad") == "Failed"
    assert backend.get_job("bad").error == "data/train.jsonl: no conversation has an assistant turn"
    assert "Traceback: something broke" in dict(backend.job_logs("bad"))["train.log"]


def test_crash_without_message_shows_the_log_tail(backend: LocalBackend, tmp_path: Path) -> None:
    backend.create_local_job(name="crash", options=options(tmp_path, "crash"))
    assert wait_terminal(backend, "crash") == "Failed"
    assert backend.get_job("crash").error == "the trainer exited with code 139: Segmentation fault"


def test_cancel_kills_the_process_group(backend: LocalBackend, tmp_path: Path) -> None:
    backend.create_local_job(name="slow", options=options(tmp_path, "slow"))
    deadline = time.monotonic() + 30
    while backend.get_job("slow").extra.get("progress", {}).get("step") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(backend.get_job("slow").extra["pid"])
    t0 = time.monotonic()
    info = backend.cancel_job("slow")
    assert info.status == "Canceled"
    assert time.monotonic() - t0 < 5
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group (runner + trainer) is gone
    assert backend.cancel_job("slow").status == "Canceled"


def test_runner_killed_without_result_reads_failed(backend: LocalBackend, tmp_path: Path) -> None:
    backend.create_local_job(name="killed", options=options(tmp_path, "slow"))
    pid = int(backend.get_job("killed").extra["pid"])
    os.killpg(pid, signal.SIGKILL)
    assert wait_terminal(backend, "killed") == "Failed"
    assert "without recording a result" in (backend.get_job("killed").error or "")


def test_unknown_job(backend: LocalBackend) -> None:
    assert backend.find_job("nope") is None
    with pytest.raises(NotFoundError):
        backend.get_job("../etc")
    assert backend.list_jobs() == []


def test_runner_that_ends_between_the_two_reads_is_completed_not_failed(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_job reads result.json, then asks whether the runner still runs. A runner that writes its result
    and exits between the two (a loaded machine makes that window long) finished: it did not crash. This
    race failed the local sweep e2e once (a Completed point read as Failed)."""
    import phi3ft.targets.local.backend as local

    backend.create_local_job(name="race", options=options(tmp_path, "ok"))
    assert wait_terminal(backend, "race") == "Completed"
    result_file = tmp_path / "jobs" / "race" / local.RESULT_FILE
    saved = result_file.read_text()
    result_file.unlink()

    def runner_finishes_now(pid: int | None) -> bool:
        result_file.write_text(saved)  # the runner writes result.json and exits right after the first read
        return False

    monkeypatch.setattr(local, "_alive", runner_finishes_now)
    info = backend.get_job("race")
    assert info.status == "Completed" and info.error is None
    assert info.output_model_name == str(tmp_path / "out" / "ok" / "adapter")


def test_runner_just_past_exec_is_running_not_failed(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the start, /proc/PID/cmdline of the runner can read empty (the child is past exec but
    the loader has not set its command line up yet; a loaded machine makes that window long). That is not
    a pid reused by something else: this failed the local-backend tests and the local sweep under load."""
    import phi3ft.targets.local.backend as local

    backend.create_local_job(name="fresh", options=options(tmp_path, "slow"))
    pid = int(backend.get_job("fresh").extra["pid"])
    real = local._cmdline
    monkeypatch.setattr(local, "_cmdline", lambda p: b"")  # mid-exec, as seen from /proc
    assert backend.get_job("fresh").status == "Running"  # our own child: poll() says it runs
    # a runner started by another phi3ft process: an empty command line is read again, not taken as gone
    deadline = time.monotonic() + 30
    while not real(pid):  # let the real one have its command line first
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = local._CHILDREN.pop(pid)
    calls = {"n": 0}

    def empty_twice(p: int) -> bytes:
        calls["n"] += 1
        return b"" if calls["n"] <= 2 else real(p)

    monkeypatch.setattr(local, "_cmdline", empty_twice)
    monkeypatch.setattr(local.time, "sleep", lambda s: None)
    try:
        assert backend.get_job("fresh").status == "Running" and calls["n"] == 3
    finally:
        local._CHILDREN[pid] = child
        monkeypatch.undo()
        backend.cancel_job("fresh")
