"""Speed and memory of ``phi3ft convert`` on a large generated input (a benchmark, not a timed test).

``.venv/bin/python -m benchmarks.convert_bench [--size-mb 300] [--formats sharegpt-jsonl,alpaca-array,csv,fix,fix-messy]``
writes synthetic inputs under ``benchmarks/.data/`` (ShareGPT JSON Lines with 1-4 turns and a system
prompt on a third of the records, an Alpaca JSON array document, a question/answer CSV; distinct text in
several scripts), then runs ``phi3ft convert IN -o OUT --force`` once per input, each in its own process,
and reports wall seconds, CPU seconds and that process's peak RSS (``ru_maxrss`` of the child). ``fix``
runs ``phi3ft validate --no-tokens --workers 1 --fix`` on the chat JSONL converted from the ShareGPT input
(the file is clean, so this is the cost of the two validations and the copy); ``fix-messy`` on a copy
of it with a finding in every record (:func:`make_messy`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / ".data"

_WORDS = [
    "the",
    "model",
    "data",
    "answer",
    "question",
    "customer",
    "order",
    "invoice",
    "delivery",
    "account",
    "password",
    "reset",
    "network",
    "server",
    "latency",
    "build",
    "test",
    "deploy",
    "rollback",
    "schema",
    "index",
    "query",
    "cache",
    "token",
    "request",
    "response",
    "Rechnung",
    "Lieferung",
    "Konto",
    "Frage",
    "Antwort",
    "commande",
    "livraison",
    "facture",
    "réponse",
    "question",
    "пользователь",
    "заказ",
    "ответ",
    "вопрос",
    "注文",
    "配送",
    "質問",
    "回答",
    "订单",
    "问题",
    "答案",
]


def _text(rng: random.Random, n: int) -> str:
    words = rng.choices(_WORDS, k=n)
    return " ".join(words).capitalize() + f" ({rng.randrange(10**9)})."


def _pairs(rng: random.Random) -> list[tuple[str, str]]:
    return [
        (_text(rng, rng.randint(8, 60)), _text(rng, int(rng.lognormvariate(4.6, 0.8)) + 5))
        for _ in range(rng.randint(1, 4))
    ]


def generate(fmt: str, path: Path, size_mb: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    target = size_mb * 2**20
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            w = csv.writer(f)
            w.writerow(["id", "question", "answer"])
        elif fmt == "alpaca-array":
            f.write("[\n")
        i = 0
        while written < target:
            pairs = _pairs(rng)
            if fmt == "sharegpt-jsonl":
                conv = [{"from": "system", "value": "You are a support agent."}] if i % 3 == 0 else []
                for q, a in pairs:
                    conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
                line = json.dumps({"id": f"c{i}", "conversations": conv}, ensure_ascii=False) + "\n"
            elif fmt == "alpaca-array":
                q, a = pairs[0]
                rec = {"instruction": q, "input": "" if i % 2 else pairs[-1][0], "output": a}
                line = ("" if i == 0 else ",\n") + json.dumps(rec, ensure_ascii=False, indent=2)
            else:
                q, a = pairs[0]
                w.writerow([i, q, a])
                written = f.tell()
                i += 1
                continue
            f.write(line)
            written += len(line.encode("utf-8"))
            i += 1
        if fmt == "alpaca-array":
            f.write("\n]\n")
    os.replace(tmp, path)


SUFFIX = {"sharegpt-jsonl": ".jsonl", "alpaca-array": ".json", "csv": ".csv"}


def make_messy(clean: Path, messy: Path) -> None:
    """A copy of a chat JSONL with something for --fix in every record: a leading space on each user turn
    (M14), every 100th record's roles in title case (M05) and every 50th record written twice (Q01)."""
    with open(clean, "rb") as f, open(messy, "wb") as w:
        for i, raw in enumerate(f):
            rec = json.loads(raw)
            for m in rec["messages"]:
                if m["role"] == "user":
                    m["content"] = " " + m["content"]
                if i % 100 == 0:
                    m["role"] = m["role"].title()
            line = json.dumps(rec, ensure_ascii=False).encode() + b"\n"
            w.write(line * (2 if i % 50 == 0 else 1))


def run(path: Path, out: Path, fix: bool = False) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if fix:
        args = [
            "validate",
            str(path),
            "--no-tokens",
            "--workers",
            "1",
            "--fix",
            str(out),
            "--force",
            "--json",
        ]
    else:
        args = ["convert", str(path), "-o", str(out), "--force", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {proc.stderr}")
    summary = json.loads(proc.stdout)
    if fix:
        files = summary["fix"]["files"][0]
        summary = {"converted": files["records_out"], "skipped": files["records_in"] - files["records_out"]}
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run the smallest input first or
        # read each figure as "at most"; each input runs in a fresh process here
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "input_mb": round(path.stat().st_size / 2**20, 1),
        "output_mb": round(out.stat().st_size / 2**20, 1),
        "converted": summary["converted"],
        "skipped": summary["skipped"],
    }


def _measure(path: Path, out: Path, fix: bool = False) -> dict[str, object]:
    """:func:`run` in a fresh interpreter, so ru_maxrss of its children is this run's peak."""
    code = (
        "import json, sys; sys.path[:0] = sys.argv[4:]\n"
        "from benchmarks.convert_bench import run\n"
        "from pathlib import Path\n"
        "print(json.dumps(run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == '1')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(out), "1" if fix else "0", str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    )
    r: dict[str, object] = json.loads(proc.stdout)
    r["load"] = round(os.getloadavg()[0], 1)
    print("  " + json.dumps(r), file=sys.stderr)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--formats", default="sharegpt-jsonl,alpaca-array,csv,fix,fix-messy")
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for fmt in args.formats.split(","):
        if fmt in ("fix", "fix-messy"):  # validate --fix on the chat JSONL converted from ShareGPT
            path = DATA / f"convert-sharegpt-jsonl-{args.size_mb}mb.out.jsonl"
            if not path.exists():
                raise SystemExit(f"put sharegpt-jsonl before {fmt} in --formats")
            label = "validate --fix (of the ShareGPT output)"
            if fmt == "fix-messy":
                messy = DATA / f"convert-messy-{args.size_mb}mb.jsonl"
                make_messy(path, messy)
                path, label = messy, "validate --fix (messy copy: M14 on every record, M05, Q01)"
            out = DATA / f"convert-{fmt}-{args.size_mb}mb.out.jsonl"
            rows.append(_measure(path, out, fix=True) | {"format": label})
            out.unlink()
            out.with_name(out.name[: -len(".jsonl")] + ".report.json").unlink()
            if fmt == "fix-messy":
                path.unlink()
            continue
        path = DATA / f"convert-{fmt}-{args.size_mb}mb{SUFFIX[fmt]}"
        if args.regenerate or not path.exists():
            print(f"generating {path} ...", file=sys.stderr)
            generate(fmt, path, args.size_mb)
        out = DATA / f"convert-{fmt}-{args.size_mb}mb.out.jsonl"
        print(f"converting {path.name} ...", file=sys.stderr)
        rows.append(_measure(path, out) | {"format": fmt})
        if not (fmt == "sharegpt-jsonl" and {"fix", "fix-messy"} & set(args.formats.split(","))):
            out.unlink()
    leftover = DATA / f"convert-sharegpt-jsonl-{args.size_mb}mb.out.jsonl"
    if leftover.exists():
        leftover.unlink()
    print("| input | MB | records converted | seconds | CPU s | peak RSS MB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['format']} | {r['input_mb']} | {r['converted']:,} | {r['seconds']} | {r['cpu_seconds']} "
            f"| {r['peak_rss_mb']} | {r['load']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
