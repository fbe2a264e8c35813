"""Per-command overhead of phi3ft's Azure commands, against the offline Azure stack, before vs after.

    .venv/bin/python -m benchmarks.azure_cmds_bench [--baseline-ref main | --baseline-src DIR] [--repeats 5]

Starts the offline Azure stack (tests/azure_stack: fake ARM/AML/Entra ID over HTTPS + Azurite) in this
process, creates a real job and endpoint with the candidate's own ``phi3ft submit`` / ``deploy`` (so the
ledger holds what a user's would), then runs every command as a whole process (``python -m phi3ft``,
real ``EnvironmentCredential`` against the fake Entra ID), alternating the candidate (this checkout's
``src``) and the baseline (``--baseline-src``, or a temporary ``git worktree`` of ``--baseline-ref``) in
the same run: one warm-up each, then ``--repeats`` rounds, the order flipping every round. Reports the
median wall seconds, the requests each command sent, the time those requests took (timed inside the
process by ``benchmarks/_azure_probe.py``), and the overhead = wall - request time.

``chat`` is timed to its first prompt (the moment it says "Chatting with ..."), then sent ``/exit``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "benchmarks" / "_azure_probe.py"
HUB, PROJECT, MODEL = "hub-phi3ft", "proj-phi3ft", "phi4-bench"

JOB_YAML = """\
backend: serverless
azure:
  subscription_id: {sub}
  resource_group: {rg}
  location: {loc}
  hub: {{name: {hub}}}
  project: {{name: {project}}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
output: {{model_name: {model}}}
"""

#: name -> (arguments, target seconds or None). ``chat`` is special-cased (time to first prompt).
COMMANDS: dict[str, tuple[list[str], float | None]] = {
    "--help": (["--help"], 0.5),
    "validate": (["validate", "train.jsonl", "--no-tokens", "-m", "phi-4-mini-instruct"], 0.5),
    "status": (["status"], 1.0),
    "list": (["list"], 1.0),
    "logs": (["logs"], None),
    "keys": (["keys"], 1.0),
    "invoke": (["invoke", "Hello there", "--json"], 1.0),
    "chat": (["chat"], 1.0),
    "eval": (["eval", "--data", "eval.jsonl", "--limit", "2", "--json"], None),
    "submit --detach (re-attach)": (["submit", "-c", "job.yaml", "--yes", "--detach"], 2.0),
    "check": (["check", "-c", "job.yaml"], None),
    "watch (finished job)": (["watch"], None),
    "metrics": (["metrics"], None),
}


def rows(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer arithmetic questions."},
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{2 * i}"},
                ]
            }
        )
        + "\n"
        for i in range(n)
    )


@dataclass
class Run:
    wall: float
    rc: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    azure_ai_ml: bool = False
    modules: int = 0

    @property
    def request_seconds(self) -> float:
        return sum(r["seconds"] for r in self.requests)

    @property
    def token_seconds(self) -> float:
        """Time in Entra ID requests (the credential's share of the request time)."""
        return sum(r["seconds"] for r in self.requests if (r["host"] or "").startswith("login."))

    @property
    def first_request(self) -> float:
        """Seconds from process start to the first request: interpreter, imports, config, ledger."""
        return min((r["start"] for r in self.requests), default=float("nan"))


def run_once(src: Path, folder: Path, env: dict[str, str], name: str, args: list[str]) -> Run:
    out = folder / f".probe-{os.getpid()}.json"
    out.unlink(missing_ok=True)
    penv = dict(env)
    penv["PYTHONPATH"] = f"{src}{os.pathsep}{REPO}"
    cmd = [sys.executable, str(PROBE), str(out), *args]
    start = time.perf_counter()
    if name == "chat":
        proc = subprocess.Popen(
            cmd, cwd=folder, env=penv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None and proc.stdin is not None
        wall = None
        for line in proc.stderr:
            if "Chatting with" in line:
                wall = time.perf_counter() - start
                break
        proc.stdin.write("/exit\n")
        proc.stdin.close()
        proc.wait(timeout=120)
        rc = proc.returncode
        if wall is None:
            wall = float("nan")
            rc = rc or 1
    else:
        proc2 = subprocess.run(cmd, cwd=folder, env=penv, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - start
        rc = proc2.returncode
        if rc != 0:
            print(f"  ! {name} exited {rc}: {proc2.stderr.strip()[-400:]}", file=sys.stderr)
    doc = json.loads(out.read_text()) if out.exists() else {}
    reqs = doc.get("requests") or []
    if name == "chat":  # only what happened before the first prompt (the probe also times the exit)
        reqs = [r for r in reqs if r["start"] < wall]
    return Run(wall, rc, reqs, bool(doc.get("azure_ai_ml")), int(doc.get("modules") or 0))


def make_baseline(ref: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), ref], check=True,
                   capture_output=True)  # fmt: skip
    for so in (REPO / "src" / "phi3ft" / "data").glob("_speedups*.so"):
        shutil.copy2(so, into / "src" / "phi3ft" / "data" / so.name)
    return into / "src"


def setup(stack: Any, folder: Path, src: Path) -> dict[str, str]:
    from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, ROLE_CONTRIBUTOR, SUBSCRIPTION_ID, USER_OID

    stack.state.add_role_assignment(
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}", ROLE_CONTRIBUTOR, USER_OID
    )
    stack.state.default_job_script = ["Running", "Completed"]
    (folder / "train.jsonl").write_text(rows(60))
    (folder / "eval.jsonl").write_text(rows(4))
    names = {"sub": SUBSCRIPTION_ID, "rg": RESOURCE_GROUP, "loc": LOCATION, "hub": HUB, "project": PROJECT}
    (folder / "job.yaml").write_text(JOB_YAML.format(model=MODEL, **names))
    env = stack.env
    env.pop("PHI3FT_STATE_DIR", None)
    penv = {**env, "PYTHONPATH": f"{src}{os.pathsep}{REPO}"}
    for args in (
        ["submit", "-c", "job.yaml", "--yes", "--detach"],
        ["watch"],
        ["deploy", "--yes"],
        ["metrics"],
    ):
        proc = subprocess.run([sys.executable, "-m", "phi3ft", *args], cwd=folder, env=penv,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"setup step {args} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return env


def fmt_reqs(run: Run) -> str:
    login = sum(1 for r in run.requests if (r["host"] or "").startswith("login."))
    return f"{len(run.requests)} ({login})"


def render_table(names: list[str], results: dict[str, dict[str, list[Run]]]) -> str:
    def med(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    lines = [
        "| command | before s | after s | requests before -> after (Entra ID) | first request at s, before -> after "
        "| token s (after) | request s (after) | overhead s (after) | azure.ai.ml loaded before -> after "
        "| target | met |",
        "|---|---:|---:|---|---|---:|---:|---:|---|---|---|",
    ]
    for name in names:
        b, a = results[name]["before"], results[name]["after"]
        if not a or not b:
            continue
        target = COMMANDS[name][1]
        wall_a = med(a, "wall")
        met = "" if target is None else ("yes" if wall_a <= target else "no")
        first = f"{med(b, 'first_request'):.2f} -> {med(a, 'first_request'):.2f}" if a[0].requests else "-"
        lines.append(
            f"| `{name}` | {med(b, 'wall'):.2f} | **{wall_a:.2f}** | {fmt_reqs(b[0])} -> {fmt_reqs(a[0])} | "
            f"{first} | {med(a, 'token_seconds'):.2f} | {med(a, 'request_seconds'):.2f} | "
            f"{wall_a - med(a, 'request_seconds'):.2f} | "
            f"{'yes' if b[0].azure_ai_ml else 'no'} -> {'yes' if a[0].azure_ai_ml else 'no'} | "
            f"{'-' if target is None else f'<= {target:.1f} s'} | {met} |"
        )
        bad = [r.rc for r in a + b if r.rc != 0]
        if bad:
            lines.append(f"|  (nonzero exit codes: {bad}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--baseline-src", type=Path, help="the baseline's src/ folder (default: a worktree of --baseline-ref)"
    )
    ap.add_argument("--baseline-ref", default="main", help="git ref to compare with (default: main)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--commands", help=f"comma-separated subset of: {', '.join(COMMANDS)}")
    ap.add_argument("--json", type=Path, help="also write the raw runs here")
    ap.add_argument("--from-json", type=Path, help="only print the table of an earlier --json")
    args = ap.parse_args(argv)
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        loaded = {n: {w: [Run(**r) for r in rs] for w, rs in v.items()} for n, v in raw.items()}
        print(render_table(list(loaded), loaded))
        return 0
    sys.path.insert(0, str(REPO))
    from tests.azure_stack.stack import AzureStack

    names = [n.strip() for n in args.commands.split(",")] if args.commands else list(COMMANDS)
    tmp = Path(tempfile.mkdtemp(prefix="phi3ft-azbench-"))
    base_tree = tmp / "baseline"
    base_src = args.baseline_src or make_baseline(args.baseline_ref, base_tree)
    cand_src = REPO / "src"
    contenders = {"before": base_src, "after": cand_src}
    results: dict[str, dict[str, list[Run]]] = {n: {"before": [], "after": []} for n in names}
    try:
        with AzureStack() as stack:
            folder = tmp / "work"
            folder.mkdir()
            env = setup(stack, folder, cand_src)
            load0 = os.getloadavg()[0]
            for rnd in range(args.repeats + 1):
                order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
                for name in names:
                    for who in order:
                        run = run_once(contenders[who], folder, env, name, COMMANDS[name][0])
                        if rnd > 0:  # round 0 is the warm-up
                            results[name][who].append(run)
                print(f"round {rnd} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            load1 = os.getloadavg()[0]
    finally:
        if args.baseline_src is None and base_tree.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)],
                           capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)

    def med(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    print(f"\nmedian of {args.repeats} after one warm-up, alternating; load {load0:.1f} -> {load1:.1f}\n")
    print(render_table(names, results))
    if args.json:
        args.json.write_text(json.dumps({n: {w: [r.__dict__ for r in rs] for w, rs in v.items()}
                                         for n, v in results.items()}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
