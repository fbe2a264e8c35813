"""``phi3ft eval --baseline`` of an ``azureml-compute`` job on the offline Azure stack: the command job "writes"
a real LoRA adapter (trained here on the tiny random Phi-3) to its ``adapter`` output, Azure ML registers it as a
model, phi3ft downloads that model through the real SDK (datastore ``listSecrets`` + Azurite blobs) into the
cache and compares it with the base weights on CPU, with the local backend's report."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.e2e.helpers import grant_contributor
from tests.train.conftest import TRAIN_FILE, VALID_FILE, build_tiny_phi3

from phi3ft.cli.context import AppContext
from phi3ft.evaluate import token_f1
from phi3ft.output import Output

pytestmark = pytest.mark.e2e

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

HUB, PROJECT, CLUSTER, MODEL = "hub-phi3ft", "proj-phi3ft", "gpu-a100", "phi3-cluster-adapter"

JOB_YAML = f"""\
backend: azureml-compute
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
  auth: env
model: {{name: phi-3-mini-4k-instruct}}
data: {{train: train.jsonl, validation: validation.jsonl}}
deploy: {{enabled: false}}
training: {{max_steps: 30, learning_rate: 0.005, lora: {{r: 8, alpha: 64}}}}
compute: {{cluster_name: {CLUSTER}, vm_size: Standard_NC24ads_A100_v4, max_nodes: 1}}
output: {{model_name: {MODEL}}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny base model folder, the trainer's output folder): what the cluster job would have written."""
    from phi3ft.train import TrainingSettings, TrainOptions, run_training

    base = build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))
    out_dir = tmp_path_factory.mktemp("cluster-output")
    # the settings of tests/train/test_local_baseline.py: 30 steps teach the references' opening
    settings = {"base_model": str(base), "tokenizer": PHI3_TOKENIZER_DIR, "output_dir": out_dir,
                "learning_rate": 5e-3, "per_device_batch_size": 1, "max_seq_length": 256, "max_steps": 30,
                "gradient_checkpointing": False, "warmup_ratio": 0.0, "lora": {"r": 8, "alpha": 64, "dropout": 0.1}}  # fmt: skip
    options = TrainOptions(
        model="phi-3-mini-4k-instruct",
        train_file=TRAIN_FILE,
        validation_file=VALID_FILE,
        settings=TrainingSettings.model_validate(settings),
        device="cpu",
    )
    run_training(options)
    return base, out_dir


def judge_longer(last: str) -> str:
    """A scripted judge: the longer of answers A and B wins."""
    a = last.split("[Answer A]\n", 1)[1].split("\n\n[Answer B]", 1)[0]
    b = last.split("[Answer B]\n", 1)[1].split("\n\nWhich answer", 1)[0]
    winner = "tie" if len(a) == len(b) else ("A" if len(a) > len(b) else "B")
    return json.dumps({"winner": winner, "rationale": f"longer: {winner}"})


def output_files(out_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(TRAIN_FILE, tmp_path / "train.jsonl")
    shutil.copy(VALID_FILE, tmp_path / "validation.jsonl")
    (tmp_path / "job.yaml").write_text(JOB_YAML)
    return tmp_path


@pytest.fixture
def cli(
    stack: Any, folder: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> Callable[..., tuple[int, str, str]]:
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(output=Output(interactive=False), env=dict(os.environ), cwd=folder,
                         clock=lambda: clock["now"], sleep=sleep,
                         credential_factory=lambda mode: stack.credential)  # fmt: skip
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    grant_contributor(stack)
    return run


def submit(cli: Callable[..., tuple[int, str, str]], folder: Path, *extra: str) -> str:
    code, out, err = cli(
        "submit",
        "-c",
        str(folder / "job.yaml"),
        "--yes",
        "--json",
        "--tokenizer",
        str(PHI3_TOKENIZER_DIR),
        *extra,
    )
    assert code == 0, err
    return str(json.loads(out)["job"]["name"])


def test_compute_job_adapter_is_downloaded_and_compared_with_its_base(
    stack: Any, cli: Any, folder: Path, trained: tuple[Path, Path]
) -> None:
    base, out_dir = trained
    files = output_files(out_dir)
    assert "adapter/adapter_config.json" in files and "adapter/tokenizer.json" in files
    stack.state.command_output_files["adapter"] = files
    job = submit(cli, folder)

    args = [
        "eval",
        job,
        "--baseline",
        "--base-model",
        str(base),
        "--limit",
        "4",
        "--max-tokens",
        "8",
        "--json",
    ]
    code, out, err = cli(*args, "--show", "2", "--min-gain", "f1", "0.05")
    assert code == 0, err
    report = json.loads(out)
    cache = folder / ".phi3ft" / "adapters" / f"{MODEL}-1"
    assert report["backend"] == "azureml-compute" and report["model"] == f"{MODEL}:1"
    assert report["downloaded"] is True
    adapter_dir = Path(report["adapter_dir"])
    assert adapter_dir.is_relative_to(cache) and adapter_dir.name == "adapter"
    # the very bytes the job wrote, through listSecrets + the blob store
    assert (adapter_dir / "adapter_config.json").read_bytes() == files["adapter/adapter_config.json"]
    weights = [k for k in files if k.startswith("adapter/adapter_model")]
    assert weights and all((adapter_dir / Path(k).name).read_bytes() == files[k] for k in weights)
    assert stack.requests.find(route="datastores.list_secrets")
    assert f"Downloaded model {MODEL}:1 (job {job})" in err

    ft, base_side = report["fine_tuned"], report["base"]
    assert ft["endpoint"] == f"{job} (adapter)" and base_side["endpoint"] == f"{base} (base)"
    assert ft["examples"] == base_side["examples"] == 4 and ft["errors"] == base_side["errors"] == 0
    assert ft["data"] == str(folder / "validation.jsonl")  # data.validation of job.yaml
    references = [
        json.loads(line)["messages"][-1]["content"] for line in VALID_FILE.read_text().splitlines()[:4]
    ]
    for key in ("fine_tuned", "base"):
        answers = [r["answer"] for r in report[key]["results"]]
        assert all(0 < (r["completion_tokens"] or 0) <= 8 for r in report[key]["results"])
        f1s = [token_f1(a, ref) for a, ref in zip(answers, references, strict=True)]
        assert report[key]["f1"] == pytest.approx(sum(f1s) / 4)
        assert report[key]["perplexity"] is not None
    assert [r["answer"] for r in ft["results"]] != [r["answer"] for r in base_side["results"]]
    assert sum(report["counts"].values()) == 4 and len(report["verdicts"]) == 4
    assert report["gate"]["passed"] is True and ft["f1"] > base_side["f1"]

    # again: the cached adapter is used, Azure is not called at all; the gate fails with the numbers
    stack.requests.clear()
    blob_connects = [c for c in stack.connects if c[0].endswith(".blob.core.windows.net")]
    assert blob_connects  # the download went to the blob store
    code, out, err = cli(*args[:-1], "--min-gain", "f1", "0.9")
    assert code == 1, err
    assert f"Using the adapter downloaded earlier: model {MODEL}:1" in err
    assert "--min-gain not met" in err and "f1" in err
    assert not list(stack.requests)
    assert [c for c in stack.connects if c[0].endswith(".blob.core.windows.net")] == blob_connects

    # a judge deployment in the project judges each pair in both orders (it prefers the longer answer here)
    judge = "judge-chat"
    stack.state.add_endpoint(stack.state.workspace(PROJECT), judge)
    stack.state.inference_replies[judge] = judge_longer
    code, out, err = cli(*args[:5], "--limit", "2", "--max-tokens", "8", "--judge", judge, "--json")
    assert code == 0, err
    judged = json.loads(out)
    verdicts = judged["judge"]["verdicts"]
    assert judged["judge"]["deployment"] == judge and len(verdicts) == 2
    assert len(stack.requests.find(route="inference.chat_completions")) == 4  # 2 examples x 2 orders
    for v, ft_r, base_r in zip(
        verdicts, judged["fine_tuned"]["results"], judged["base"]["results"], strict=True
    ):
        longer = len(ft_r["answer"]) - len(base_r["answer"])
        assert v["verdict"] == ("win" if longer > 0 else "loss" if longer < 0 else "tie")
        assert {o["fine_tuned_as"] for o in v["orders"]} == {"A", "B"}
        assert all(o["rationale"].startswith("longer:") for o in v["orders"])

    # the human report, the chart, and a folder the user names
    pytest.importorskip("matplotlib")
    code, out, err = cli("eval", job, "--baseline", "--base-model", str(base), "--limit", "2", "--max-tokens",
                         "4", "--plot", "cmp.png", "--download-dir", "dl")  # fmt: skip
    assert code == 0, err
    downloaded = folder / "dl" / f"{MODEL}-1"
    assert json.loads((downloaded / ".phi3ft-download.json").read_text()) == {
        "model": MODEL,
        "version": "1",
        "job": job,
    }
    assert [p.name for p in downloaded.rglob("adapter_config.json")] == ["adapter_config.json"]
    assert f"Downloadedmodel{MODEL}:1(job{job})in{downloaded}" in "".join(err.split())  # paths may wrap
    assert not (folder / "dl" / "adapter").exists()  # only the model's own subfolder is written
    assert "fine-tuned" in out and "token F1" in out and "per example" in out
    assert (folder / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    stack.assert_no_server_errors()


def test_compute_job_not_completed_has_no_adapter_yet(stack: Any, cli: Any, folder: Path) -> None:
    stack.state.default_job_script = ["NotStarted", "Queued", *["Running"] * 50, "Completed"]
    job = submit(cli, folder, "--detach", "--skip-checks")
    code, _out, err = cli("eval", job, "--baseline", "--limit", "1")
    assert code == 4, err
    assert f"Job {job} is " in err and f"registered as model {MODEL} when it completes" in err
    assert f"phi3ft watch {job}" in err
    assert not (folder / ".phi3ft" / "adapters").exists() or not any(
        (folder / ".phi3ft" / "adapters").iterdir()
    )


def test_compute_job_without_adapter_files_says_so(stack: Any, cli: Any, folder: Path) -> None:
    job = submit(cli, folder, "--skip-checks")  # the fake job wrote nothing to its output
    code, _out, err = cli("eval", job, "--baseline", "--limit", "1", "--download-dir", "dl")
    assert code == 4, err
    assert f"Model {MODEL}:1 (the output of job {job}) has no adapter_config.json" in err
    assert f"phi3ft logs {job}" in err


def test_a_download_folder_phi3ft_did_not_make_is_left_alone(stack: Any, cli: Any, folder: Path) -> None:
    job = submit(cli, folder, "--skip-checks")
    theirs = folder / "models" / f"{MODEL}-1"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    stack.requests.clear()
    code, _out, err = cli("eval", job, "--baseline", "--limit", "1", "--download-dir", "models")
    assert code == 4, err
    assert f"{theirs}existsandisnotaphi3ftdownload;phi3ftdoesnotoverwriteit." in "".join(err.split())
    assert "--download-dirOTHER_DIR" in "".join(err.split())
    assert (theirs / "notes.txt").read_text() == "mine" and sorted(p.name for p in theirs.iterdir()) == [
        "notes.txt"
    ]
    assert not stack.requests.find(route="datastores.list_secrets")


def test_baseline_endpoint_is_refused_for_a_compute_job(stack: Any, cli: Any, folder: Path) -> None:
    job = submit(cli, folder, "--skip-checks")
    code, _out, err = cli("eval", job, "some-endpoint", "--baseline")
    assert code == 2, err
    assert f"Drop some-endpoint: phi3ft eval {job} --baseline" in err
