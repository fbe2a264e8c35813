"""The LoRA adapter of an ``azureml-compute`` job, on this machine (for ``phi3ft eval --baseline``).

The command job's ``adapter`` output is registered as workspace model ``output_model_name`` version
``output_model_version`` (1) when the job completes (:mod:`phi3ft.targets.azureml.sdk.compute`). Its files
are the trainer's output folder: ``adapter/`` (``adapter_config.json``, the weights, ``tokenizer.json``)
plus ``metrics.jsonl``. They are downloaded once into ``.phi3ft/adapters/{model}-{version}`` (or
``{the folder the user names}/{model}-{version}``) and reused from there: a second comparison reads no Azure at
all. A marker file says which model version a folder holds; a folder phi3ft did not download is neither reused
nor overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi3ft.errors import PrerequisiteError

#: Folder under the state dir (``.phi3ft``) holding downloaded adapters, one per model version.
ADAPTERS_DIR = "adapters"
ADAPTER_CONFIG = "adapter_config.json"
#: Written into a download folder once the download is complete: which model version it holds. A folder
#: without it is never reused as a download, and never overwritten either (it is not phi3ft's).
MARKER = ".phi3ft-download.json"


@dataclass
class FetchedAdapter:
    adapter_dir: Path  # the folder holding adapter_config.json
    folder: Path  # where the model's files were downloaded
    model: str
    version: str
    downloaded: bool  # False: found in the folder from an earlier download


def download_folder(state_dir: Path, model: str, version: str, parent: Path | None = None) -> Path:
    """``{parent or .phi3ft/adapters}/{model}-{version}``: one folder per model version."""
    return (Path(parent) if parent is not None else Path(state_dir) / ADAPTERS_DIR) / f"{model}-{version}"


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_adapter(folder: Path) -> Path | None:
    """The shallowest folder under ``folder`` (itself included) holding ``adapter_config.json``."""
    if not folder.is_dir():
        return None
    found = sorted(folder.rglob(ADAPTER_CONFIG), key=lambda p: (len(p.parts), str(p)))
    return found[0].parent if found else None


def fetch_job_adapter(
    backend_factory: Any, job: str, record: dict[str, Any], *, folder: Path, refresh: bool = False
) -> FetchedAdapter:
    """The adapter of compute job ``job``: from ``folder`` when an earlier download left it there, else
    downloaded from the model the job registered (the job must have completed).

    ``backend_factory()`` connects to Azure; it is called only when a download is needed.
    """
    model = str(record.get("output_model_name") or "")
    version = str(record.get("output_model_version") or "1")
    if not model:
        raise PrerequisiteError(
            f"The ledger has no output model for job {job}.",
            f"Re-attach to the job with `phi3ft submit` (it records the model), then `phi3ft eval {job} --baseline`.",
        )
    marker = _marker(folder)
    if (
        not refresh
        and marker is not None
        and (marker.get("model"), marker.get("version")) == (model, version)
    ):
        cached = find_adapter(folder)
        if cached is not None:
            return FetchedAdapter(cached, folder, model, version, downloaded=False)
    if marker is None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise PrerequisiteError(
            f"{folder} exists and is not a phi3ft download; phi3ft does not overwrite it.",
            "Remove it, or download elsewhere: phi3ft eval JOB --baseline --download-dir OTHER_DIR",
        )
    backend = backend_factory()
    status = backend.get_job(job, with_error=False).status
    if status != "Completed":
        raise PrerequisiteError(
            f"Job {job} is {status}; its adapter is registered as model {model} when it completes.",
            f"Wait for it with `phi3ft watch {job}`, then run `phi3ft eval {job} --baseline` again.",
        )
    if hasattr(backend, "download_model"):
        backend.download_model(model, version, folder)
    else:
        from phi3ft.targets.azureml.sdk.artifacts import download_model

        download_model(backend.session, model, version, folder)
    (folder / MARKER).write_text(
        json.dumps({"model": model, "version": version, "job": job}, indent=2) + "\n", encoding="utf-8"
    )
    adapter = find_adapter(folder)
    if adapter is None:
        raise PrerequisiteError(
            f"Model {model}:{version} (the output of job {job}) has no {ADAPTER_CONFIG}; downloaded to {folder}.",
            f"Read the job's log for the trainer's last lines: `phi3ft logs {job}`.",
        )
    return FetchedAdapter(adapter, folder, model, version, downloaded=True)
