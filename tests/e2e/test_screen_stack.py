"""Issue 15 on the offline Azure stack: `phi3ft doctor` (a test per finding), `logs --follow` until the
job ends, `status` start/end times of a finished job, `list` once the project is gone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import FakeTime
from tests.e2e.test_stack_jobs import ml, submit, upload

from phi3ft.cli.context import AppContext
from phi3ft.output import Output

pytestmark = pytest.mark.e2e
PHI4 = TOKENIZERS / "phi4-mini"

JOB_YAML = f"""\
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {{rg}}
  location: eastus2
  hub: {{{{name: hub-phi3ft}}}}
  project: {{{{name: {{project}}}}}}
  auth: env
model: {{{{name: phi-4-mini-instruct}}}}
data: {{{{train: train.jsonl}}}}
"""


def _job_yaml(tmp_path: Path, *, project: str = "proj-phi3ft", rg: str = RESOURCE_GROUP) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB_YAML.format(rg=rg, project=project))
    return path


def _cli(
    stack: Any, tmp_path: Path, run_cli: Any, credential: Any = None, env: dict[str, str] | None = None
) -> Any:
    clock = FakeTime()

    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(tmp_path / ".phi3ft"), **(env or {})},
            cwd=tmp_path,
            clock=clock,
            sleep=clock.sleep,
            credential_factory=credential or (lambda mode: stack.credential),
        )
        return run_cli(*args, ctx=ctx)

    run.clock = clock  # type: ignore[attr-defined]
    return run


def _doctor(cli: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("doctor", "--json", "-m", "phi-4-mini-instruct", *args)
    doc = json.loads(out)
    assert doc["exit_code"] == code, err
    return code, {f["id"]: f for f in doc["findings"]}


# ---- doctor -------------------------------------------------------------------------------------------------
def test_doctor_all_fine_on_the_stack(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    stack.state.add_project("proj-phi3ft", "hub-phi3ft")
    _job_yaml(tmp_path)
    code, found = _doctor(_cli(stack, tmp_path, run_cli), "--tokenizer", str(PHI4))
    assert code == 0
    assert found["python"]["status"] == "ok" and found["phi3ft"]["status"] == "ok"
    assert found["sdk"]["status"] == "ok" and "azure-ai-ml 1.35" in found["sdk"]["detail"]
    assert found["credential"]["status"] == "ok"
    assert found["credential"]["data"]["credential"] == type(stack.credential).__name__
    assert found["credential"]["data"]["elapsed_s"] >= 0
    assert found["proxy"]["data"]["HTTPS_PROXY"] == stack.proxy_url  # the stack's proxy, as configured
    assert found["ca:REQUESTS_CA_BUNDLE"]["status"] == "ok"
    assert found["arm"]["status"] == "ok" and RESOURCE_GROUP in found["arm"]["detail"]
    assert found["workspace"]["status"] == "ok" and "proj-phi3ft" in found["workspace"]["detail"]
    assert found["tokenizer:phi-4-mini-instruct"]["data"]["origin"] == "--tokenizer"
    assert not [r for r in stack.requests if r.method in ("PUT", "POST", "DELETE", "PATCH")]  # read-only


def test_doctor_project_not_created_yet_is_a_warning(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    _job_yaml(tmp_path, project="proj-missing")
    code, found = _doctor(_cli(stack, tmp_path, run_cli))
    assert code == 0
    assert found["workspace"]["status"] == "warn" and "phi3ft submit" in found["workspace"]["fix"]


def test_doctor_missing_resource_group_fails_with_the_az_command(
    stack: Any, tmp_path: Path, run_cli: Any
) -> None:
    _job_yaml(tmp_path, rg="rg-nope")
    code, found = _doctor(_cli(stack, tmp_path, run_cli))
    assert code == 4
    assert found["arm"]["status"] == "fail"
    assert found["arm"]["fix"] == "Create it: az group create --name rg-nope --location eastus2"


def test_doctor_refused_credential_fails_with_its_fix(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    class Refused:
        def get_token(self, *scopes: str, **kw: Any) -> Any:
            raise ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")

    _job_yaml(tmp_path)
    cli = _cli(stack, tmp_path, run_cli, credential=lambda mode: Refused())
    code, found = _doctor(cli)
    assert code == 4
    assert found["credential"]["status"] == "fail"
    assert found["credential"]["fix"] and "AZURE_CLIENT_ID" in found["credential"]["fix"]


def test_doctor_missing_ca_bundle_fails(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    cli = _cli(stack, tmp_path, run_cli, env={"SSL_CERT_FILE": str(tmp_path / "nope.pem")})
    code, found = _doctor(cli, "--offline")
    assert code == 4
    assert (
        found["ca:SSL_CERT_FILE"]["status"] == "fail"
        and "unset SSL_CERT_FILE" in found["ca:SSL_CERT_FILE"]["fix"]
    )
    assert "credential" not in found and "arm" not in found  # --offline asks nothing


def test_doctor_reports_the_native_speedups(
    stack: Any, tmp_path: Path, run_cli: Any, monkeypatch: Any
) -> None:
    from phi3ft.cli import doctor

    monkeypatch.setattr(doctor, "_stale_extension", lambda: None)
    code, found = _doctor(_cli(stack, tmp_path, run_cli), "--offline")
    assert code == 0
    assert found["speedups"]["status"] == "ok" and "orjson" in found["speedups"]["detail"]
    stale = tmp_path / "_speedups.cpython-311-x86_64-linux-gnu.so"
    monkeypatch.setattr(doctor, "_stale_extension", lambda: stale)
    code, found = _doctor(_cli(stack, tmp_path, run_cli), "--offline")
    assert code == 0
    assert found["speedups"]["status"] == "warn" and found["speedups"]["fix"] == f"Delete it: rm {stale}"


def test_doctor_shows_where_each_tokenizer_loads_from(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    hub = tmp_path / "hf" / "hub" / "models--microsoft--Phi-4-mini-instruct" / "snapshots" / "0123abc"
    hub.mkdir(parents=True)
    for f in PHI4.iterdir():
        if f.is_file():
            shutil.copy(f, hub / f.name)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PHI3FT_TOKENIZER_DIR": ""}
    code, found = _doctor(_cli(stack, tmp_path, run_cli, env=env), "--offline")
    tok = found["tokenizer:phi-4-mini-instruct"]
    assert code == 0 and tok["status"] == "ok" and tok["data"]["origin"] == "hub-cache"
    assert tok["data"]["path"].startswith(str(hub))
    code, found = _doctor(
        _cli(stack, tmp_path, run_cli, env={**env, "PHI3FT_TOKENIZER_DIR": str(PHI4)}), "--offline"
    )
    assert found["tokenizer:phi-4-mini-instruct"]["data"]["origin"] == "PHI3FT_TOKENIZER_DIR"
    code, out, _ = _cli(
        stack,
        tmp_path,
        run_cli,
        env={"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1", "PHI3FT_TOKENIZER_DIR": ""},
    )("doctor", "--offline")
    assert code == 0
    assert (
        "warn  Tokenizer phi-3-mini-4k-instruct: no tokenizer.json" in out
        and "PHI3FT_TOKENIZER_DIR=FOLDER" in out
    )


# ---- logs --follow, status, list ------------------------------------------------------------------------------
def _stack_job(stack: Any, tmp_path: Path, name: str) -> None:
    stack.state.add_project("proj-phi3ft", "hub-phi3ft")
    client = ml(stack)
    submit(client, name, upload(client, tmp_path, "train"))


def test_logs_follow_streams_until_the_job_ends(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    _stack_job(stack, tmp_path, "ft-follow")
    cfg = _job_yaml(tmp_path)
    cli = _cli(stack, tmp_path, run_cli)
    code, out, err = cli("logs", "ft-follow", "--follow", "--config", str(cfg))
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.endswith("job ft-follow: Running") for line in lines)
    assert any(line.endswith("job ft-follow: Completed") for line in lines)
    assert [line for line in lines if line.startswith("step ")][-1].startswith("step 10:")
    assert len(lines) == len(set(lines))  # each line once, though the service rewrites the file
    assert "Job ft-follow Completed" in err
    assert cli.clock.sleeps  # it waited between reads (fake time)


def test_logs_follow_of_a_failed_job_exits_5(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    stack.faults.fail_job("ft-boom", message="Training data has 0 valid rows.")
    _stack_job(stack, tmp_path, "ft-boom")
    code, out, err = _cli(stack, tmp_path, run_cli)(
        "logs", "ft-boom", "--follow", "--config", str(_job_yaml(tmp_path))
    )
    assert code == 5
    assert "0 valid rows" in out + err


def test_status_of_a_finished_job_has_start_and_end_times(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    _stack_job(stack, tmp_path, "ft-times")
    cfg = _job_yaml(tmp_path)
    cli = _cli(stack, tmp_path, run_cli)
    assert cli("watch", "ft-times", "--config", str(cfg))[0] == 0
    code, out, _ = cli("status", "ft-times", "--config", str(cfg), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "Completed"
    assert doc["start_time"] and doc["end_time"] and doc["start_time"] <= doc["end_time"]
    code, out, _ = cli("status", "ft-times", "--config", str(cfg))
    assert "  started: " in out and "  ended: " in out


def test_list_after_the_project_is_gone_says_so(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    cfg = _job_yaml(tmp_path, project="proj-deleted")
    code, _, err = _cli(stack, tmp_path, run_cli)("list", "--config", str(cfg))
    assert code == 1
    assert "ResourceNotFound" not in err and "(ResourceNotFound)" not in err
    assert "proj-deleted" in err and "does not exist" in err
    assert f"phi3ft submit --config {cfg}" in " ".join(err.split())
