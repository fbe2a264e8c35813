"""Files of a registered workspace model on this machine (``eval --baseline`` of an ``azureml-compute`` job).

The command job's ``adapter`` output (``custom_model``) is registered by Azure ML when the job completes;
the model version points at the job's output folder in the workspace blob store
(``azureml://.../datastores/workspaceblobstore/paths/azureml/{job}/adapter/``). ``ml.models.download``
reads the datastore's credential (``listSecrets``) and copies every blob under that prefix; phi3ft
downloads into a temporary sibling folder and renames it into place, so an interrupted download never
looks like a complete adapter.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from phi3ft.targets.azureml.sdk._core import AzureSession, call


def download_model(session: AzureSession, name: str, version: str, dest: Path) -> Path:
    """Copy model ``name:version``'s files into ``dest`` (replaced if it exists); returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        ml: Any = session.ml
        call(
            f"download model {name}:{version}",
            lambda: ml.models.download(name=name, version=version, download_path=str(tmp)),
        )
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
