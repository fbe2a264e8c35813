"""submit / watch / status / list / logs / metrics / cancel against the in-memory fake backend.

The real Typer app runs in-process with an AppContext whose backend factory returns the fake, a fake
clock and sleep, and the ledger in tmp_path. The same scenarios run end to end through the real SDK on
the offline Azure stack in tests/e2e/test_submit*.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TOKENIZERS
from tests.fakes.jobs import Crash, FakeJobBackend
from tests.fakes.prereqs import FakePrereqBackend, contributor_on_rg

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.targets.base import MetricPoint

PHI4_MINI_TOKENIZER = TOKENIZERS / "phi4-mini"

JOB_YAML = """\
backend: serverless
azure:
  subscription_id: 00000000-0000-0000-0000-000000000001
  resource_group: rg-phi
  location: eastus2
  hub: {{name: hub-phi}}
  project: {{name: proj-phi}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
{validation}hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
output: {{model_name: phi4-mini-support}}
"""


def _rows(n: int, offset: int = 0) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{2 * i}"},
                ]
            }
        )
        + "\n"
        for i in range(offset, offset + n)
    )


class Backend(FakeJobBackend):
    """Job fake + the prerequisite fake (for the real `check` step), sharing one workspace table."""

    def __init__(self) -> None:
        super().__init__()
        self.prereq = FakePrereqBackend(assignments=contributor_on_rg())  # submit creates the hub

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["prereq"], name)

    def find_workspace(self, name: str) -> Any:
        return self.workspaces.get(name)

    @property
    def subscription_scope(self) -> str:
        return self.prereq.subscription_scope

    @property
    def resource_group_scope(self) -> str:
        return self.prereq.resource_group_scope


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.interrupt_after: int | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.interrupt_after is not None and len(self.sleeps) > self.interrupt_after:
            raise KeyboardInterrupt
        self.now += seconds


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(_rows(40))
    (tmp_path / "job.yaml").write_text(JOB_YAML.format(validation=""))
    return tmp_path


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cli(
    run_cli: Callable[..., tuple[int, str, str]], project: Path, backend: Backend, clock: Clock
) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str, be: Backend | None = None) -> tuple[int, str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"},
            cwd=project,
            clock=clock,
            sleep=clock.sleep,
            backend_factory=lambda cfg: be or backend,
        )
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    return run


def _submit(cli: Callable[..., tuple[int, str, str]], project: Path, *extra: str) -> tuple[int, str, str]:
    return cli(
        "submit", "--config", str(project / "job.yaml"), "--tokenizer", str(PHI4_MINI_TOKENIZER), *extra
    )


def _store(project: Path) -> StateStore:
    return StateStore(project / ".phi3ft")


# ---- submit ---------------------------------------------------------------------------------------------
def test_submit_creates_everything_records_it_and_watches_to_completion(
    cli: Any, project: Path, backend: Backend
) -> None:
    code, out, err = _submit(cli, project, "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["job"]["status"] == "Completed"
    assert doc["resumed"] is False
    assert doc["uploaded_bytes"] > 0
    # hub, project, split (no validation file), two uploads, one job
    creates = [c for c in backend.calls if c.startswith(("create_", "upload:"))]
    assert [c.split(":")[0] for c in creates] == [
        "create_hub",
        "create_project",
        "upload",
        "upload",
        "create_job",
    ]
    job = next(iter(backend.jobs.values()))
    request = job.request
    assert request["model_id"] == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"
    assert request["hyperparameters"] == {
        "learning_rate": "0.00002",
        "num_train_epochs": "1",
        "per_device_train_batch_size": "1",
    }
    assert request["validation_data"] and request["training_data"]
    assert request["output_model_name"] == "phi4-mini-support"
    assert {"phi3ft", "phi3ft.config_hash", "phi3ft.data.train", "phi3ft.data.validation"} <= set(
        request["tags"]
    )
    store = _store(project)
    assert store.last_job == job.info.name
    record = store.get("job", job.info.name)
    assert record is not None
    assert record["status"] == "Completed"
    assert record["output_model_name"] == "phi4-mini-support"
    assert record["project"] == "proj-phi" and record["hub"] == "hub-phi"
    assert store.get("hub", "hub-phi")["created_by_phi3ft"] is True  # type: ignore[index]
    assert len(store.list("data")) == 2
    assert "Plan" in err and "Job " in err


def test_second_submit_reattaches_and_uploads_nothing(cli: Any, project: Path, backend: Backend) -> None:
    assert _submit(cli, project, "--yes")[0] == 0
    before = list(backend.calls)
    code, out, err = _submit(cli, project, "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["resumed"] is True
    assert doc["uploaded_bytes"] == 0
    new = backend.calls[len(before) :]
    assert not [c for c in new if c.startswith(("create_", "upload:"))]
    assert len(backend.jobs) == 1
    assert "Re-attached" in err
    # a reused hub keeps the fact that phi3ft created it (delete must still remove it)
    assert _store(project).get("hub", "hub-phi")["created_by_phi3ft"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    "point", ["hub", "project", "upload:train", "upload:validation", "before:job", "job"]
)
def test_crash_at_any_step_then_rerun_resumes_without_duplicates(
    cli: Any, project: Path, backend: Backend, point: str
) -> None:
    backend.crash_at = {point}
    with pytest.raises(Crash):
        _submit(cli, project, "--yes", "--detach")
    uploads_before = [c for c in backend.calls if c.startswith("upload:")]
    code, _, err = _submit(cli, project, "--yes", "--json")
    assert code == 0, err
    calls = backend.calls
    assert calls.count("create_hub:hub-phi") == 1
    assert calls.count("create_project:proj-phi") == 1
    uploads = [c for c in calls if c.startswith("upload:")]
    assert len(uploads) == 2  # each file uploaded exactly once across both runs
    assert set(uploads_before) <= set(uploads)
    assert len([c for c in calls if c.startswith("create_job:")]) == 1
    assert len(backend.jobs) == 1


def test_failed_job_exits_5_with_reason_and_resubmit_starts_attempt_2(
    cli: Any, project: Path, backend: Backend
) -> None:
    backend.script = ["Queued", "Running", "Failed"]
    backend.script_error = "Training data has fewer than 10 examples"
    code, _, err = _submit(cli, project, "--yes")
    assert code == 5
    assert "ended Failed: Training data has fewer than 10 examples" in err
    assert "phi3ft logs" in err
    first = next(iter(backend.jobs))
    assert _store(project).get("job", first)["status"] == "Failed"  # type: ignore[index]
    backend.script, backend.script_error = ["Completed"], None
    code, _, err = _submit(cli, project, "--yes")
    assert code == 0, err
    assert list(backend.jobs) == [first, f"{first}-2"]
    assert backend.jobs[f"{first}-2"].request["output_model_name"] == "phi4-mini-support-2"


def test_force_submits_a_new_job(cli: Any, project: Path, backend: Backend) -> None:
    assert _submit(cli, project, "--yes", "--detach")[0] == 0
    assert _submit(cli, project, "--yes", "--detach", "--force")[0] == 0
    assert len(backend.jobs) == 2


def test_invalid_data_exits_3_and_creates_nothing(cli: Any, project: Path, backend: Backend) -> None:
    (project / "train.jsonl").write_text('{"messages": "not a list"}\n' * 20)
    code, _, err = _submit(cli, project, "--yes")
    assert code == 3, err
    assert "Nothing was created" in err
    assert backend.calls == []
    assert not (project / ".phi3ft" / "state.json").exists()


def test_failed_check_exits_4_and_creates_nothing(cli: Any, project: Path, backend: Backend) -> None:
    backend.prereq.providers["Microsoft.Network"] = "NotRegistered"
    code, _, err = _submit(cli, project, "--yes")
    assert code == 4, err
    assert "prerequisite check(s) failed" in err
    assert not [c for c in backend.calls if c.startswith(("create_", "upload"))]


def test_no_tty_and_no_yes_is_a_usage_error(cli: Any, project: Path, backend: Backend) -> None:
    code, _, err = _submit(cli, project, "--skip-checks")
    assert code == 2
    assert "--yes" in err
    assert not [c for c in backend.calls if c.startswith(("create_", "upload"))]


def test_detach_prints_job_and_next_commands(cli: Any, project: Path, backend: Backend) -> None:
    code, out, err = _submit(cli, project, "--yes", "--detach", "--skip-checks", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["detached"] is True
    name = doc["job"]["name"]
    assert doc["job"]["status"] == "NotStarted"
    assert f"phi3ft watch {name}" in err and f"phi3ft cancel {name}" in err
    assert not [c for c in backend.calls if c.startswith("get_job")]


def test_validation_file_is_used_as_given(cli: Any, project: Path, backend: Backend) -> None:
    (project / "valid.jsonl").write_text(_rows(5, offset=100))
    (project / "job.yaml").write_text(JOB_YAML.format(validation="  validation: valid.jsonl\n"))
    code, _, err = _submit(cli, project, "--yes", "--detach", "--skip-checks")
    assert code == 0, err
    assert sorted(backend.data) == sorted(
        k for k in backend.data if k.startswith(("phi3ft-train", "phi3ft-valid"))
    )
    assert not (project / ".phi3ft" / "split").exists()


# ---- watch ----------------------------------------------------------------------------------------------
def test_watch_defaults_to_last_job_polls_fast_then_slow_and_shows_loss(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    name = next(iter(backend.jobs))
    backend.jobs[name].statuses = ["Queued"] * 7 + ["Running", "Running", "Completed"]
    backend.jobs[name].metrics = [MetricPoint("train_loss", 10, 1.5), MetricPoint("train_loss", 20, 1.25)]
    code, out, err = cli("watch", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "Completed"
    assert clock.sleeps[:5] == [2.0] * 5 and clock.sleeps[5] == 10.0
    assert "train_loss 1.2500" in err
    assert "queued" in err


def test_ctrl_c_during_watch_detaches_and_leaves_the_job_running(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    backend.script = ["Queued"] * 50
    clock.interrupt_after = 2
    code, _, err = _submit(cli, project, "--yes", "--skip-checks")
    assert code == 130
    name = next(iter(backend.jobs))
    assert f"phi3ft watch {name}" in err and f"phi3ft cancel {name}" in err
    assert not [c for c in backend.calls if c.startswith("cancel:")]
    assert backend.jobs[name].info.status == "Queued"


def test_watch_timeout_says_the_job_keeps_running(
    cli: Any, project: Path, backend: Backend, clock: Clock
) -> None:
    backend.script = ["Queued"] * 500
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    code, _, err = cli("watch", "--timeout", "1m")
    assert code == 1
    assert "Timed out" in err and "keeps running" in err
    assert clock.now <= 60


def test_watch_without_any_job_is_a_usage_error(cli: Any) -> None:
    code, _, err = cli("watch")
    assert code == 2
    assert "phi3ft submit" in err


def test_bad_timeout_is_a_usage_error(cli: Any) -> None:
    code, _, err = cli("watch", "somejob", "--timeout", "soon")
    assert code == 2 and "--timeout" in err


# ---- status / list / logs / metrics / cancel -------------------------------------------------------------
def test_status_list_logs_metrics_cancel(cli: Any, project: Path, backend: Backend, tmp_path: Path) -> None:
    backend.script = ["Running"] * 20
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    name = next(iter(backend.jobs))
    fake = backend.jobs[name]
    fake.logs = {"user_logs/std_log.txt": "epoch 1 loss 1.2\n"}
    fake.metrics = [
        MetricPoint("train_loss", 1, 2.0),
        MetricPoint("train_loss", 2, 1.5),
        MetricPoint("eval_loss", 2, 1.7),
    ]

    code, out, _ = cli("status", "--json")
    assert code == 0 and json.loads(out)["status"] == "Running"

    code, out, _ = cli("list", "--json")
    rows = json.loads(out)["jobs"]
    assert code == 0 and rows[0]["name"] == name and rows[0]["local"] is True and rows[0]["remote"] is True

    code, out, err = cli("logs", name)
    assert code == 0 and "epoch 1 loss 1.2" in out and "std_log.txt" in err

    chart = tmp_path / "loss.png"
    code, out, _ = cli("metrics", "--json", "--plot", str(chart))
    assert code == 0
    assert json.loads(out)["metrics"] == [
        {"step": 1, "train_loss": 2.0},
        {"step": 2, "train_loss": 1.5, "eval_loss": 1.7},
    ]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, out, err = cli("cancel", name, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "Canceled"
    assert _store(project).get("job", name)["status"] == "Canceled"  # type: ignore[index]
    # cancel again: idempotent
    assert cli("cancel", name)[0] == 0
    assert backend.calls.count(f"cancel:{name}") == 1


def test_cancel_last_job_without_name_needs_yes(cli: Any, project: Path, backend: Backend) -> None:
    backend.script = ["Running"] * 20
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    code, _, err = cli("cancel")
    assert code == 2 and "--yes" in err
    assert cli("cancel", "--yes")[0] == 0


def test_job_commands_on_unknown_job_without_config(cli: Any, project: Path) -> None:
    (project / "job.yaml").unlink()
    code, _, err = cli("status", "nope")
    assert code == 2
    assert "--config" in err


def test_status_of_missing_job_is_not_found(cli: Any, project: Path) -> None:
    code, _, err = cli("status", "nope", "--config", str(project / "job.yaml"))
    assert code == 1
    assert "nope" in err


def test_metrics_plot_must_be_png(cli: Any, project: Path, backend: Backend) -> None:
    backend.script = ["Running"] * 20
    assert _submit(cli, project, "--yes", "--detach", "--skip-checks")[0] == 0
    code, _, err = cli("metrics", "--plot", str(project / "loss.jpg"))
    assert code == 2 and ".png" in err
