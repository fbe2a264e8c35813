"""No secret in anything phi3ft prints or stores, over a whole life cycle on the offline stack.

submit -> watch -> status -> list -> logs (log blob missing; also as a real process with ``--auth env``, the
client secret in its environment) -> deploy -> keys -> keys --show -> invoke -> delete --all, once normally and
once with ``PHI3FT_DEBUG=1``. Every command's stdout and stderr, and
every file under ``.phi3ft/``, is scanned for: the client secret, JWTs, ``Bearer <token>``, the endpoint keys
(``keys --show`` excepted: it was asked for), SAS signatures (``sig=``) and storage account keys.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.azurite import account_key
from tests.azure_stack.state import (
    LOCATION,
    RESOURCE_GROUP,
    SP_CLIENT_SECRET,
    STORAGE_POOL,
    SUBSCRIPTION_ID,
)
from tests.conftest import REPO, TOKENIZERS
from tests.e2e.helpers import FakeTime, chat_rows, grant_contributor

from phi3ft.cli.context import AppContext
from phi3ft.output import Output

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL = "hub-scan", "proj-scan", "phi4-scan-ft"
TOKENIZER = TOKENIZERS / "phi4-mini"
JOB_YAML = f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
output: {{model_name: {MODEL}}}
"""

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}")
SAS_SIG = re.compile(r"(?i)[?&]sig=(?!REDACTED)")


def rows(n: int) -> str:
    return chat_rows(n, lambda i: f"My controller {i} does not connect.", lambda i: "Restart the console.")


def scan(text: str, *, where: str, endpoint_keys: list[str]) -> list[str]:
    found = []
    if SP_CLIENT_SECRET in text:
        found.append(f"{where}: client secret")
    if JWT.search(text):
        found.append(f"{where}: JWT {JWT.search(text).group(0)[:20]}...")  # type: ignore[union-attr]
    if BEARER.search(text):
        found.append(f"{where}: {BEARER.search(text).group(0)[:20]}...")  # type: ignore[union-attr]
    if SAS_SIG.search(text):
        found.append(f"{where}: sig=")
    for name in STORAGE_POOL:
        if account_key(name) in text:
            found.append(f"{where}: account key of {name}")
    found += [f"{where}: endpoint key" for key in endpoint_keys if key and key in text]
    return found


def delete_log_blob(stack: Any, job: str) -> None:
    ws = stack.state.workspace(PROJECT)
    hub = stack.state.workspace(HUB)
    for workspace in (ws, hub):
        service = stack.azurite.service(workspace.storage_account)
        for container in service.list_containers():
            client = service.get_container_client(container.name)
            for blob in client.list_blobs():
                if blob.name.endswith(f"dcid.{job}/user_logs/std_log.txt"):
                    client.delete_blob(blob.name)
                    return
    raise AssertionError("log blob not found")


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "PHI3FT_DEBUG=1"])
def test_life_cycle_prints_and_stores_no_secret(
    stack: Any, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    if debug:
        monkeypatch.setenv("PHI3FT_DEBUG", "1")
    (tmp_path / "train.jsonl").write_text(rows(40))
    (tmp_path / "job.yaml").write_text(JOB_YAML)
    fake_time = FakeTime()
    transcript: list[tuple[str, str]] = []

    def cli(*args: str, expect: int = 0) -> tuple[str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(tmp_path / ".phi3ft")},
            cwd=tmp_path,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        code, out, err = run_cli(*args, ctx=ctx)
        assert code == expect, f"phi3ft {' '.join(args)} exited {code}\n{err}"
        transcript.append((" ".join(args), out + err))
        return out, err

    config = str(tmp_path / "job.yaml")
    # submit creates the hub (a storage account and key vault): that needs Contributor on the group.
    grant_contributor(stack)
    out, _ = cli("submit", "-c", config, "--tokenizer", str(TOKENIZER), "--yes", "--detach", "--json")
    job = json.loads(out)["job"]["name"]
    cli("watch", job)
    cli("status", job, "--json")
    cli("list")
    out, err = cli("logs", job)
    assert "step 1: train_loss=" in out

    # The log blob goes missing: the download error (requests' text holds the SAS URL) is printed redacted.
    delete_log_blob(stack, job)
    out, err = cli("logs", job, expect=1)
    assert "Could not download log user_logs/std_log.txt" in err
    assert "sig=REDACTED" in err and "sp=rl" in err  # the URL is still there to read, its signature is not
    assert not SAS_SIG.search(out + err)

    # The same as a real process: the real credential chain (client secret from the environment), real stderr.
    env = {**stack.env, "PHI3FT_STATE_DIR": str(tmp_path / ".phi3ft"), "PYTHONPATH": str(REPO / "src")}
    if debug:
        env["PHI3FT_DEBUG"] = "1"
    for args in (["logs", job], ["status", job, "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "phi3ft", *args, "--auth", "env"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == (1 if args[0] == "logs" else 0), proc.stderr
        transcript.append((f"(process) {' '.join(args)}", proc.stdout + proc.stderr))
    assert "sig=REDACTED" in transcript[-2][1]

    out, _ = cli("deploy", "--json")
    endpoint = json.loads(out)["endpoint"]
    out, _ = cli("keys", endpoint, "--json")
    assert json.loads(out)["shown"] is False
    out, _ = cli("keys", endpoint, "--show", "--json")
    shown = json.loads(out)
    keys = [shown["primary_key"], shown["secondary_key"]]
    assert keys[0] and len(keys[0]) >= 16
    transcript.pop()  # keys --show prints the keys: asked for, and the only exception
    stack.state.inference_reply = "Restart the console."
    cli("invoke", endpoint, "My controller does not connect.")
    cli("invoke", endpoint, "My controller does not connect.", "--auth-header", "api-key", "--json")
    cli("delete", "--all", "--yes")

    problems: list[str] = []
    for command, text in transcript:
        problems += scan(text, where=f"phi3ft {command}", endpoint_keys=keys)
    files = [p for p in (tmp_path / ".phi3ft").rglob("*") if p.is_file()]
    assert files, "the ledger was written"
    for path in files:
        problems += scan(path.read_text(errors="replace"), where=str(path), endpoint_keys=keys)
    assert problems == []
    print(
        f"\nsecret scan ({'debug' if debug else 'normal'}): {len(transcript)} commands, {len(files)} files, 0 hits"
    )
