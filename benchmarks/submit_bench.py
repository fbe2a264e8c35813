"""Benchmark ``phi3ft submit`` against the offline Azure stack (real SDK, zero-delay job).

Measures:
1. HTTP requests of a full first ``submit`` (validate, check, hub + project, split, two uploads, job, watch
   to Completed), each listed by route so none is unaccounted for;
2. the same for a second ``submit`` of the same config (re-attach) and the bytes it uploads (expected 0);
3. upload throughput of a 200 MB file through ``upload_data`` (data asset get-or-create: SDK hash, blob
   upload, asset PUT) vs a bare azure-storage-blob ``upload_blob`` of the same file, same proxy, same run.

Run: ``.venv/bin/python benchmarks/submit_bench.py [--mb 200] [--json]`` (needs Azurite:
``scripts/install-azurite.sh``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.azure_stack.azurite import account_key  # noqa: E402
from tests.azure_stack.stack import AzureStack  # noqa: E402
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID  # noqa: E402

HUB, PROJECT = "hub-bench", "proj-bench"
JOB_YAML = f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
hyperparameters: {{epochs: 1}}
"""


def _rows(n: int) -> str:
    msg = {"role": "system", "content": "You answer arithmetic questions."}
    return "".join(
        json.dumps(
            {
                "messages": [
                    msg,
                    {"role": "user", "content": f"{i}+{i}?"},
                    {"role": "assistant", "content": f"{2 * i}"},
                ]
            }
        )
        + "\n"
        for i in range(n)
    )


def _run_submit(stack: AzureStack, folder: Path, *extra: str) -> tuple[int, dict[str, Any], float]:
    from typer.testing import CliRunner

    from phi3ft.cli import app
    from phi3ft.cli.context import AppContext
    from phi3ft.output import Output

    ctx = AppContext(
        output=Output(interactive=False),
        env=dict(os.environ),
        cwd=folder,
        sleep=lambda s: None,  # zero-delay job: poll without waiting
        credential_factory=lambda mode: stack.credential,
    )
    args = ["submit", "-c", str(folder / "job.yaml"), "--yes", "--json"]
    args += ["--tokenizer", str(REPO / "tests" / "fixtures" / "tokenizers" / "phi4-mini"), *extra]
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, args, obj=ctx, catch_exceptions=False)
    elapsed = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"submit failed ({result.exit_code}):\n{result.stderr}")
    return result.exit_code, json.loads(result.stdout), elapsed


def _by_route(stack: AzureStack) -> list[tuple[str, int]]:
    counts = collections.Counter(f"{r.method} {r.route}" for r in stack.requests)
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _upload_throughput(stack: AzureStack, folder: Path, mb: int) -> dict[str, Any]:
    from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

    line = (json.dumps({"messages": [{"role": "user", "content": "x" * 1000}]}) + "\n").encode()
    block = line * (1024 * 1024 // len(line))
    files = []
    for i in range(3):  # distinct content per run: the SDK skips a blob it already uploaded (same hash)
        path = folder / f"big-{i}.jsonl"
        with path.open("wb") as fh:
            for _ in range(mb):
                fh.write(block)
            fh.write(f'{{"run": {i}}}\n'.encode())
        files.append(path)
    size = files[0].stat().st_size
    backend = AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        hub=HUB,
        project=PROJECT,
        credential=stack.credential,
    )
    ws = stack.state.workspace(PROJECT) or stack.state.workspace(HUB)
    hub = stack.state.workspace(HUB)
    account = hub.storage_account
    container = ws.blob_container if hasattr(ws, "blob_container") else "bench"

    from azure.storage.blob import BlobServiceClient

    bare = BlobServiceClient(
        f"https://{account}.blob.core.windows.net",
        credential={"account_name": account, "account_key": account_key(account)},
    )
    cc = bare.get_container_client(container)
    results: dict[str, list[float]] = {"bare_upload_blob": [], "phi3ft_upload_data": []}
    for i, path in enumerate(files):  # alternate; best of three each (disk cache, Azurite warm-up)
        t0 = time.perf_counter()
        with path.open("rb") as fh:
            cc.upload_blob(f"bench/bare-{i}.jsonl", fh, overwrite=True)
        results["bare_upload_blob"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        asset = backend.upload_data(path, name=f"phi3ft-bench-{i}", version="1")
        results["phi3ft_upload_data"].append(time.perf_counter() - t0)
        assert asset.uploaded_bytes == size
    best = {k: min(v) for k, v in results.items()}
    return {
        "file_mb": round(size / 1e6, 1),
        "bare_upload_blob_s": round(best["bare_upload_blob"], 3),
        "phi3ft_upload_data_s": round(best["phi3ft_upload_data"], 3),
        "bare_mb_per_s": round(size / 1e6 / best["bare_upload_blob"], 1),
        "phi3ft_mb_per_s": round(size / 1e6 / best["phi3ft_upload_data"], 1),
        "ratio": round(best["bare_upload_blob"] / best["phi3ft_upload_data"], 3),
        "runs": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the upload-throughput file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with AzureStack() as stack, tempfile.TemporaryDirectory() as tmp:
        for k, v in stack.env_overrides.items():
            os.environ[k] = v
        folder = Path(tmp)
        (folder / "train.jsonl").write_text(_rows(200))
        (folder / "job.yaml").write_text(JOB_YAML)
        stack.state.jobs_advance_every = 1

        stack.requests.clear()
        _, doc, elapsed = _run_submit(stack, folder)
        report["first_submit"] = {
            "requests": len(stack.requests),
            "by_route": _by_route(stack),
            "seconds": round(elapsed, 2),
            "uploaded_bytes": doc["uploaded_bytes"],
            "status": doc["job"]["status"],
        }
        stack.requests.clear()
        _, doc, elapsed = _run_submit(stack, folder)
        report["second_submit"] = {
            "requests": len(stack.requests),
            "by_route": _by_route(stack),
            "seconds": round(elapsed, 2),
            "uploaded_bytes": doc["uploaded_bytes"],
            "resumed": doc["resumed"],
        }
        report["upload"] = _upload_throughput(stack, folder, args.mb)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key in ("first_submit", "second_submit"):
        r = report[key]
        print(f"{key}: {r['requests']} requests, {r['seconds']} s, uploaded {r['uploaded_bytes']:,} bytes")
        for route, n in r["by_route"]:
            print(f"  {n:3d}  {route}")
    u = report["upload"]
    print(
        f"upload {u['file_mb']} MB: bare upload_blob {u['bare_upload_blob_s']} s ({u['bare_mb_per_s']} MB/s), "
        f"phi3ft upload_data {u['phi3ft_upload_data_s']} s ({u['phi3ft_mb_per_s']} MB/s), ratio {u['ratio']}"
    )


if __name__ == "__main__":
    main()
