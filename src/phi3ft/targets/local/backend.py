"""The local backend: ``backend: local`` runs the LoRA trainer on this machine as a detached job.

No Azure here. ``submit`` writes a job folder under the ledger (``.phi3ft/jobs/<name>/``) and starts a
small runner in its own session (``start_new_session=True``, so Ctrl+C on the terminal and the end of
the submitting process leave it alone)::

    python -m phi3ft.targets.local.backend <job folder>        # the runner (stdlib only, no torch)
      └─ python -m phi3ft.train options.json            # the trainer (the train extra)

The runner waits for the trainer and writes ``result.json`` (Completed / Failed / Canceled, with the
trainer's error message), so the outcome is recorded even when nobody is watching. Files in the job
folder::

    job.json       name, command, output_dir, runner pid (= process group), created_at, tags
    options.json   TrainOptions (the trainer's input)
    events.jsonl   the trainer's stdout: one TrainEvent per line, then {"kind": "result"|"error", ...}
    train.log      the trainer's stderr (warnings, tracebacks)
    result.json    written once, at the end: status, exit_code, error, hint, ended_at, result
    <output_dir>/  adapter/, metrics.jsonl, loss.png, checkpoints (``output/`` unless training.output_dir is set)

Contracts (shared rules in :mod:`phi3ft.targets.base`):

- status: ``Running`` while the runner lives and ``result.json`` is absent; then the file's status. A
  runner that died without writing it (SIGKILL, reboot) reads as ``Failed``.
- ``cancel_job`` sends SIGTERM to the job's process group, waits for ``result.json`` (a few seconds),
  then SIGKILLs and records ``Canceled`` itself. Cancelling a finished job returns it unchanged.
- ``job_logs`` reads the two log files; ``job_metrics`` reads ``metrics.jsonl``; both are empty until the
  trainer writes something. Everything is a local file read: polling is free, so watch polls every second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phi3ft.errors import NotFoundError, UsageError
from phi3ft.targets.base import TERMINAL_STATUSES, JobInfo, MetricPoint
from phi3ft.targets.local import OPTIONS_FILE

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "train.log"
RESULT_FILE = "result.json"
#: Seconds ``cancel_job`` waits for the runner to record the cancel before it SIGKILLs the group.
CANCEL_GRACE_S = 10.0
#: Children started by this process, reaped on every status read (else they linger as zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic: a reader sees the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _alive(pid: int | None) -> bool:
    """True while ``pid`` runs (zombies count as ended; our own children are reaped first).

    A runner this process started is alive until ``poll()`` reaps it: its pid cannot be reused before, and
    its ``/proc/PID/cmdline`` is not a reliable sign right after the start (a child just past ``exec``
    reads an empty command line until the loader has set it up, a window a loaded machine makes long).
    For another process's runner, an empty command line is read again briefly before it counts as gone.
    """
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
        cmdline = _cmdline(pid)
        for _ in range(20):  # at most 1 s: a process in the middle of exec has no command line yet
            if cmdline:
                break
            time.sleep(0.05)
            cmdline = _cmdline(pid)
        if b"phi3ft.targets.local.backend" not in cmdline:  # the pid was reused by something else
            return False
    return True


def _last_json_lines(path: Path, limit: int = 64 * 1024) -> list[dict[str, Any]]:
    """The JSON objects in the last ``limit`` bytes of a JSON-lines file (cheap on a long run)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict):
                out.append(item)
    return out


class LocalBackend:
    """Jobs are folders under ``jobs_dir``; the trainer runs detached on this machine."""

    name = "local"
    #: File reads cost nothing: watch polls every second and reads the loss on every poll.
    metrics_every_s = 0.0

    def __init__(
        self,
        jobs_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        trainer: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.env = dict(os.environ if env is None else env)
        self.python = python
        #: argv prefix of the trainer; the options file is appended (tests use a stand-in trainer).
        self.trainer = list(trainer or [python, "-m", "phi3ft.train"])
        self.clock = clock
        self.sleep = sleep

    def poll_schedule(self) -> Iterator[float]:
        while True:
            yield 1.0

    # ---- create ---------------------------------------------------------------------------------------
    def create_local_job(
        self,
        *,
        name: str,
        options: Any,
        display_name: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> JobInfo:
        """Write the job folder and start the runner; returns at once (status ``Running``).

        ``options`` is a :class:`phi3ft.train.TrainOptions`; its ``settings.output_dir`` says where the
        adapter goes. A folder left by an earlier attempt of the same name is refused (the caller picks
        a fresh name via ``find_job``).
        """
        job_dir = self.jobs_dir / name
        if (job_dir / JOB_FILE).exists():
            raise UsageError(f"Local job {name} already exists in {job_dir}.", f"Run `phi3ft status {name}`.")
        job_dir.mkdir(parents=True, exist_ok=True)
        options_path = job_dir / OPTIONS_FILE
        options_path.write_text(options.model_dump_json(indent=2), encoding="utf-8")
        output_dir = Path(options.settings.output_dir)
        meta: dict[str, Any] = {
            "name": name,
            "display_name": display_name or name,
            "description": description,
            "tags": dict(tags or {}),
            "model": getattr(options, "model", None),
            "created_at": _now(),
            "command": [*self.trainer, str(options_path)],
            "output_dir": str(output_dir),
            "adapter_dir": str(output_dir / "adapter"),
        }
        _write_json(job_dir / JOB_FILE, meta)
        env = {**self.env, "PYTHONUNBUFFERED": "1"}
        src = str(Path(__file__).resolve().parents[2])  # the folder holding the phi3ft package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [self.python, "-m", "phi3ft.targets.local.backend", str(job_dir)],
            cwd=str(job_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own process group: cancel signals it whole; Ctrl+C here spares it
        )
        _CHILDREN[proc.pid] = proc
        meta["pid"] = proc.pid
        meta["started_at"] = _now()
        _write_json(job_dir / JOB_FILE, meta)
        return self.get_job(name)

    # ---- read -----------------------------------------------------------------------------------------
    def _job_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise NotFoundError(f"Local job {name!r} not found.", "List jobs with `phi3ft list`.")
        return self.jobs_dir / name

    def find_job(self, name: str) -> JobInfo | None:
        try:
            return self.get_job(name)
        except NotFoundError:
            return None

    def get_job(self, name: str, *, with_error: bool = True) -> JobInfo:
        """Status from the runner's pid and ``result.json``; raises :class:`NotFoundError` when absent."""
        job_dir = self._job_dir(name)
        meta = _read_json(job_dir / JOB_FILE)
        if meta is None:
            raise NotFoundError(
                f"Local job {name!r} not found in {self.jobs_dir}.", "List jobs with `phi3ft list`."
            )
        result = _read_json(job_dir / RESULT_FILE)
        alive = result is None and _alive(meta.get("pid"))
        if result is None and not alive:
            # the runner writes result.json, then exits: one that ended between the read above and the
            # pid check left its result, so read it again before calling the run a crash
            result = _read_json(job_dir / RESULT_FILE)
        error: str | None = None
        end_time = None
        if result is not None:
            status = str(result.get("status") or "Failed")
            error = result.get("error")
            end_time = result.get("ended_at")
        elif alive:
            status = "Running"
        elif meta.get("pid") is None:
            status = "NotStarted"
        else:
            status = "Failed"
            error = "the training process ended without recording a result (killed, or the machine restarted)"
        extra: dict[str, Any] = {
            "job_dir": str(job_dir),
            "output_dir": meta.get("output_dir"),
            "pid": meta.get("pid"),
        }
        progress = _progress(job_dir / EVENTS_FILE)
        if progress:
            extra["progress"] = progress
        if status == "Completed":
            extra["adapter_dir"] = meta.get("adapter_dir")
            if result and isinstance(result.get("result"), dict):
                extra["result"] = result["result"]
        return JobInfo(
            name=name,
            status=status,
            backend=self.name,
            display_name=meta.get("display_name"),
            created_at=meta.get("created_at"),
            start_time=meta.get("started_at"),
            end_time=end_time,
            model_id=meta.get("model"),
            output_model_name=meta.get("adapter_dir") if status == "Completed" else None,
            error=error,
            tags=dict(meta.get("tags") or {}),
            extra=extra,
        )

    def list_jobs(self, *, max_results: int = 100) -> list[JobInfo]:
        """Every job folder, newest first."""
        if not self.jobs_dir.is_dir():
            return []
        jobs = [self.get_job(p.name) for p in self.jobs_dir.iterdir() if (p / JOB_FILE).is_file()]
        jobs.sort(key=lambda j: j.created_at or "", reverse=True)
        return jobs[:max_results]

    # ---- cancel ---------------------------------------------------------------------------------------
    def cancel_job(self, name: str) -> JobInfo:
        """SIGTERM the job's process group; a job that already ended is returned unchanged."""
        info = self.get_job(name, with_error=False)
        if info.status in TERMINAL_STATUSES:
            return info
        job_dir = self._job_dir(name)
        meta = _read_json(job_dir / JOB_FILE) or {}
        pid = int(meta.get("pid") or 0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        if not (job_dir / RESULT_FILE).exists():
            _write_json(
                job_dir / RESULT_FILE,
                {"status": "Canceled", "exit_code": None, "error": "canceled", "ended_at": _now()},
            )
        return self.get_job(name, with_error=False)

    # ---- logs and metrics -----------------------------------------------------------------------------
    def job_logs(self, name: str) -> Iterator[tuple[str, str]]:
        """``(file name, text)`` for the trainer's stderr log and its event stream."""
        self.get_job(name, with_error=False)
        job_dir = self._job_dir(name)
        for file in (LOG_FILE, EVENTS_FILE, RESULT_FILE):
            path = job_dir / file
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                if text.strip():
                    yield file, text

    def job_metrics(self, name: str) -> list[MetricPoint]:
        """``train_loss`` / ``eval_loss`` per step from the trainer's ``metrics.jsonl``."""
        self.get_job(name, with_error=False)
        meta = _read_json(self._job_dir(name) / JOB_FILE) or {}
        path = Path(str(meta.get("output_dir") or "")) / "metrics.jsonl"
        points: dict[tuple[str, int], MetricPoint] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                continue  # a line being written, or a foreign one
            for series in ("train_loss", "eval_loss"):
                value = record.get(series)
                if isinstance(value, (int, float)):
                    points[(series, step)] = MetricPoint(series, step, float(value))
        return sorted(points.values(), key=lambda p: (p.name, p.step))


def _progress(events: Path) -> dict[str, Any]:
    """Latest step / total / loss from the trainer's event stream."""
    progress: dict[str, Any] = {}
    for event in _last_json_lines(events):
        if event.get("kind") in ("start", "step") and "total_steps" in event:
            progress["step"] = event.get("step")
            progress["total_steps"] = event.get("total_steps")
            if event.get("loss") is not None:
                progress["loss"] = event["loss"]
        elif event.get("kind") == "eval" and event.get("eval_loss") is not None:
            progress["eval_loss"] = event["eval_loss"]
    return progress


# ---- the runner (a detached process per job) ------------------------------------------------------------
def run_job(job_dir: Path) -> int:
    """Run the trainer for ``job_dir``, wait, and write ``result.json``. Entry of the detached runner."""
    meta = _read_json(job_dir / JOB_FILE)
    if meta is None:
        return 2
    canceled = {"flag": False}
    proc: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, _frame: Any) -> None:
        canceled["flag"] = True
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with (job_dir / EVENTS_FILE).open("ab") as events, (job_dir / LOG_FILE).open("ab") as log:
        try:
            proc = subprocess.Popen(
                [str(part) for part in meta["command"]],
                cwd=str(job_dir),
                stdin=subprocess.DEVNULL,
                stdout=events,
                stderr=log,
            )
        except OSError as exc:
            _write_json(
                job_dir / RESULT_FILE,
                {"status": "Failed", "exit_code": None, "error": f"cannot start the trainer: {exc}",
                 "ended_at": _now()},
            )  # fmt: skip
            return 1
        code = proc.wait()
    final: dict[str, Any] = {}
    for event in reversed(_last_json_lines(job_dir / EVENTS_FILE)):
        if event.get("kind") in ("result", "error"):
            final = event
            break
    record: dict[str, Any] = {"exit_code": code, "ended_at": _now()}
    if canceled["flag"]:
        record.update(status="Canceled", error="canceled")
    elif code == 0 and final.get("kind") == "result":
        record.update(status="Completed", result={k: v for k, v in final.items() if k != "kind"})
    else:
        message = final.get("message") if final.get("kind") == "error" else None
        if not message:
            tail = _tail_text(job_dir / LOG_FILE)
            message = f"the trainer exited with code {code}" + (f": {tail}" if tail else "")
        record.update(status="Failed", error=message, hint=final.get("hint"))
    _write_json(job_dir / RESULT_FILE, record)
    return 0


def _tail_text(path: Path) -> str:
    """The last non-empty line of a log (usually the exception of a crash)."""
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        if lines:
            return lines[-1][:500]
    return ""


if __name__ == "__main__":  # python -m phi3ft.targets.local.backend <job folder>
    sys.exit(run_job(Path(sys.argv[1])) if len(sys.argv) == 2 else 2)
