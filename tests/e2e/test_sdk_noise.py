"""Issue 15 item 13: no Azure SDK log noise on stderr by default (``-q`` or not); ``--verbose`` shows it.

Runs check, submit, watch, deploy, invoke and delete through the real SDKs against the offline stack.
azure-ai-ml prints each experimental warning once per process, so its cache is cleared before each run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import grant_contributor
from tests.e2e.test_lifecycle import FakeTime, conversations

from phi3ft.cli.context import AppContext
from phi3ft.output import Output

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL = "hub-noise", "proj-noise", "phi4-noise-ft"
NOISE = re.compile(
    r"experimental (class|method)|Creating AzureML|DefaultAzureCredential|Total time|"
    r"^(WARNING|INFO|DEBUG) (azure|msal|urllib3)",
    re.M,
)


def test_sdk_logs_only_with_verbose(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    from azure.ai.ml._utils import _experimental

    folder = tmp_path
    fake_time = FakeTime()

    def cli(*args: str, code: int = 0) -> str:
        _experimental._warning_cache.clear()
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(folder / ".phi3ft")},
            cwd=folder,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        rc, _out, err = run_cli(*args, ctx=ctx)
        assert rc == code, f"phi3ft {' '.join(args)} exited {rc}\n{err}"
        return str(err)

    cli("init", "-m", "phi-4-mini-instruct", "-o", str(folder / "job.yaml"))
    text = (folder / "job.yaml").read_text()
    for old, new in (
        (r"subscription_id: .*", f"subscription_id: {SUBSCRIPTION_ID}"),
        (r"resource_group: .*", f"resource_group: {RESOURCE_GROUP}"),
        (r"name: hub-phi-ft", f"name: {HUB}"),
        (r"name: phi-ft\n", f"name: {PROJECT}\n"),
        (r"model_name: .*", f"model_name: {MODEL}"),
        (r"auth: auto .*", "auth: env"),
    ):
        text = re.sub(old, new, text, count=1)
    (folder / "job.yaml").write_text(text)
    (folder / "data").mkdir()
    (folder / "data" / "train.jsonl").write_text(conversations(20, "Restart it."))
    (folder / "data" / "validation.jsonl").write_text(conversations(4, "Restart it."))
    grant_contributor(stack)
    cfg, tok = str(folder / "job.yaml"), str(TOKENIZERS / "phi4-mini")

    quiet = {
        "check": cli("check", "-c", cfg),
        "submit": cli("submit", "-c", cfg, "--tokenizer", tok, "--yes", "--detach"),
    }
    quiet["watch"] = cli("watch")
    quiet["deploy"] = cli("deploy")
    quiet["invoke"] = cli("invoke", "hello")
    quiet["invoke -q"] = cli("-q", "invoke", "hello")
    for name, err in quiet.items():
        assert not NOISE.search(err), f"{name} printed SDK noise:\n{err}"

    # invoke no longer loads azure-ai-ml (issue 16): what --verbose shows is azure-core's logging.
    loud = cli("--verbose", "invoke", "hello")
    assert re.search(r"^(WARNING|INFO) azure", loud, re.M)
    assert "Authorization': 'REDACTED'" in loud or "Authorization" not in loud

    assert not NOISE.search(cli("delete", "--all", "--yes"))
