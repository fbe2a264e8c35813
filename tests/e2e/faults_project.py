"""The serverless project the fault tests (kills, races, retries) run against: job.yaml, data, role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.e2e.helpers import chat_rows, grant_contributor


def job_yaml(hub: str, project: str, model_name: str, extra: str = "") -> str:
    """A serverless job.yaml for ``hub``/``project``; ``extra`` adds YAML lines before ``output:``."""
    return f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {hub}}}
  project: {{name: {project}}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl, validation: validation.jsonl}}
hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
{extra}output: {{model_name: {model_name}}}
"""


def rows(n: int, tag: str) -> str:
    """``n`` distinct two-turn conversations (``tag`` keeps folders' data apart)."""
    return chat_rows(n, lambda i: f"{tag} {i}+{i}?", lambda i: str(2 * i))


def prepare(folder: Path, stack: Any, yaml_text: str) -> Path:
    """Write job.yaml and 40/8 train/validation rows into ``folder``; grant Contributor (submit creates the hub)."""
    (folder / "train.jsonl").write_text(rows(40, folder.name))
    (folder / "validation.jsonl").write_text(rows(8, folder.name + "v"))
    (folder / "job.yaml").write_text(yaml_text)
    grant_contributor(stack)
    return folder
