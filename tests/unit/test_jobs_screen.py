# ruff: noqa: F811  (pytest fixtures imported from test_jobs are parameters here)
"""Issue 15 (items 15, 16, 18 and logs --follow / metrics DIR) for the job commands, against the fake
backend of tests/unit/test_jobs.py; the same commands run on the offline Azure stack in
tests/e2e/test_jobs_screen_stack.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.test_jobs import (  # noqa: F401  (fixtures)
    Backend,
    Clock,
    _submit,
    backend,
    cli,
    clock,
    project,
)

from phi3ft.targets.base import MetricPoint

LONG = "phi3ft-phi-3-mini-4k-instruct-20261203-115959-a1b2c3d4e5"


def _detached(cli: Any, project: Path, backend: Backend, statuses: list[str]) -> str:
    backend.script = statuses
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    return next(iter(backend.jobs))


def test_list_prints_whole_names_piped_and_wide(cli: Any, project: Path, backend: Backend) -> None:
    name = _detached(cli, project, backend, ["Running"] * 20)
    twin = backend.jobs[name]
    for suffix in ("1", "2"):
        backend.jobs[LONG + suffix] = type(twin)(info=type(twin.info)(name=LONG + suffix, status="Completed"))
    code, out, _ = cli("list")
    assert code == 0
    assert LONG + "1" in out and LONG + "2" in out and name in out
    assert "…" not in out
    code, out, _ = cli("list", "--wide")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[-3:] == ["MODEL", "BACKEND", "CONFIG"] and "serverless" in out


def test_status_prints_the_studio_url_on_one_line(cli: Any, project: Path, backend: Backend) -> None:
    name = _detached(cli, project, backend, ["Running"] * 20)
    url = "https://ml.azure.com/runs/" + name + "?wsid=/subscriptions/x/resourcegroups/y/workspaces/z" * 3
    backend.jobs[name].info.studio_url = url
    code, out, _ = cli("status")
    assert code == 0
    assert f"  studio: {url}\n" in out


def test_metrics_counts_steps_from_one_like_logs(cli: Any, project: Path, backend: Backend) -> None:
    _detached(cli, project, backend, ["Running"] * 20)
    fake = next(iter(backend.jobs.values()))
    fake.metrics = [MetricPoint("train_loss", i, 2.0 - i / 10) for i in range(10)]  # MLflow: 0..9
    code, out, _ = cli("metrics", "--json")
    assert code == 0
    assert [r["step"] for r in json.loads(out)["metrics"]] == list(range(1, 11))
    code, out, _ = cli("metrics")
    assert out.splitlines()[1].split()[0] == "1" and out.splitlines()[-1].split()[0] == "10"


def test_cancel_of_an_ended_last_job_asks_nothing(cli: Any, project: Path, backend: Backend) -> None:
    name = _detached(cli, project, backend, ["Completed"])
    code, _, err = cli("cancel")  # no --yes, no TTY: before the fix a usage error (exit 2)
    assert code == 0, err
    assert "already ended (Completed)" in err and "nothing to cancel" in err
    assert f"cancel:{name}" not in backend.calls


def test_ctrl_c_detach_is_not_printed_as_an_error(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    _detached(cli, project, backend, ["Queued"] * 50)
    clock.interrupt_after = 1
    code, _, err = cli("watch")
    assert code == 130
    assert "Detached from job" in err and "Error:" not in err


def test_watch_of_a_running_job_shows_no_queued_time(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    _detached(cli, project, backend, ["Running", "Running", "Running", "Completed"])
    clock.now = 0.0
    code, _, err = cli("watch")
    assert code == 0, err
    assert "queued" not in err


def test_watch_of_a_queued_job_still_shows_queued_time(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    _detached(cli, project, backend, ["Queued", "Queued", "Running", "Completed"])
    code, _, err = cli("watch")
    assert code == 0, err
    assert "queued 0m" in err


def test_logs_follow_streams_until_the_job_ends(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    name = _detached(cli, project, backend, ["Queued"] + ["Running"] * 9 + ["Completed"])
    fake = backend.jobs[name]
    texts = iter(["", "step 1\n", "step 1\nstep 2\n", "queued\nstep 1\nstep 2\ndone\n"])
    original = backend.job_logs

    def growing(job: str) -> Any:
        fake.logs = {"user_logs/std_log.txt": next(texts, "queued\nstep 1\nstep 2\ndone\n")}
        return original(job)

    backend.job_logs = growing  # type: ignore[method-assign,assignment]
    code, out, err = cli("logs", "--follow")
    assert code == 0, err
    assert out.splitlines() == ["step 1", "step 2", "queued", "done"]  # each line once
    assert f"Job {name} Completed" in err


def test_logs_follow_exits_5_when_the_job_fails(cli: Any, project: Path, backend: Backend) -> None:
    name = _detached(cli, project, backend, ["Running", "Failed"])
    backend.jobs[name].error = "Training data has 0 valid rows."
    backend.jobs[name].logs = {"std_log.txt": "boom\n"}
    code, out, err = cli("logs", name, "--follow")
    assert code == 5
    assert "boom" in out and "0 valid rows" in err


def _train_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "out"
    folder.mkdir(parents=True)
    records = [
        {"step": 1, "epoch": 0.5, "train_loss": 2.0, "learning_rate": 1e-4},
        {"step": 2, "epoch": 1.0, "train_loss": 1.5, "learning_rate": 1e-4},
        {"step": 2, "epoch": 1.0, "eval_loss": 1.7, "eval_perplexity": 5.47},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_metrics_reads_a_train_output_folder(cli: Any, project: Path, backend: Backend) -> None:
    folder = _train_folder(project)
    code, out, err = cli("metrics", str(folder), "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == [
        {"step": 1, "train_loss": 2.0},
        {"step": 2, "train_loss": 1.5, "eval_loss": 1.7},
    ]
    assert backend.calls == [c for c in backend.calls if not c.startswith("get_job")]  # Azure not asked
    code, out, _ = cli("metrics", "runs/out")  # relative to the working folder
    assert code == 0 and "1.5000" in out and "1.7000" in out


def test_metrics_plot_of_a_train_output_folder(cli: Any, project: Path) -> None:
    folder = _train_folder(project)
    chart = project / "loss.png"
    code, _, err = cli("metrics", str(folder), "--plot", str(chart))
    assert code == 0, err
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_of_a_folder_without_metrics_says_what_it_needs(cli: Any, project: Path) -> None:
    (project / "empty").mkdir()
    code, _, err = cli("metrics", str(project / "empty"))
    assert code == 3 and "metrics.jsonl" in err and "phi3ft train --output-dir" in err


def test_list_at_80_columns_on_a_terminal_keeps_names_whole(
    cli: Any, project: Path, backend: Backend, monkeypatch: Any
) -> None:
    import io

    from phi3ft.cli.context import AppContext
    from phi3ft.output import Output

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    name = _detached(cli, project, backend, ["Running"] * 20)
    backend.jobs[LONG] = type(backend.jobs[name])(
        info=type(backend.jobs[name].info)(name=LONG, status="Queued")
    )
    monkeypatch.setenv("COLUMNS", "80")
    stream = Tty()
    from typer.testing import CliRunner

    from phi3ft.cli import app

    ctx = AppContext(output=Output(stdout=stream, interactive=False), env={}, cwd=project,
                     backend_factory=lambda cfg: backend)  # fmt: skip
    result = CliRunner().invoke(app, ["list", "--config", str(project / "job.yaml")], obj=ctx)
    assert result.exit_code == 0, result.stderr
    names = [line.split()[0] for line in stream.getvalue().splitlines()[1:]]
    assert LONG in names and name in names
