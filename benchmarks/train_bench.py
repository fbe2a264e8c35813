"""Benchmark: ``phi3ft train`` (packed / bucketed) against a plain Hugging Face ``Trainer``.

Same randomly initialised Phi-3 model, same data (a synthetic chat set with realistic length spread),
same assistant-only labels, same LoRA settings, same per-device batch and gradient checkpointing, one
epoch each. Every contender runs in its own process (peak memory is per process) and the contenders
alternate over ``--repeats`` rounds; the best round of each is reported (other work on a shared
machine only ever slows a run down).

    .venv/bin/python benchmarks/train_bench.py                         # CPU, tiny model (~2 min)
    .venv/bin/python benchmarks/train_bench.py --device cuda --full-size  # GPU, random Phi-3-mini 3.8B

tokens/s counts real (non-padding) tokens of the epoch divided by the training loop's wall time
(model loading excluded). Peak memory: CUDA ``max_memory_allocated``; CPU peak RSS of the process.
Needs the train extra (``pip install -e .[train]``); no network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "tests" / "fixtures" / "tokenizers" / "phi3" / "phi-3-mini-4k-instruct"

_WORDS = [
    "the",
    "order",
    "invoice",
    "refund",
    "shipping",
    "account",
    "password",
    "warranty",
    "delivery",
    "support",
    "customer",
    "device",
    "update",
    "install",
    "error",
    "network",
    "cloud",
    "storage",
    "backup",
    "model",
    "training",
    "data",
    "file",
    "report",
    "price",
    "plan",
    "upgrade",
    "team",
    "meeting",
    "schedule",
    "contract",
    "policy",
    "request",
    "ticket",
    "issue",
    "status",
    "review",
    "project",
    "budget",
    "release",
    "version",
    "server",
    "client",
    "access",
    "token",
    "region",
    "quota",
    "limit",
    "usage",
    "billing",
    "payment",
    "card",
    "bank",
    "transfer",
    "email",
    "phone",
]


def make_dataset(path: Path, n: int, seed: int) -> None:
    """Chat JSONL whose lengths are lognormal (many short answers, a long tail): typical SFT data."""
    rng = random.Random(seed)

    def text(mean_words: float, sigma: float) -> str:
        count = max(1, int(rng.lognormvariate(math.log(mean_words), sigma)))
        words = [rng.choice(_WORDS) for _ in range(count)]
        return " ".join(words).capitalize() + "."

    with path.open("w", encoding="utf-8") as handle:
        for _ in range(n):
            messages = [{"role": "system", "content": "You are a helpful support assistant."}]
            for _turn in range(rng.choice([1, 1, 1, 2])):
                messages.append({"role": "user", "content": text(20, 0.7)})
                messages.append({"role": "assistant", "content": text(60, 1.0)})
            handle.write(json.dumps({"messages": messages}) + "\n")


def make_model(path: Path, full_size: bool, device: str) -> None:
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    common = {"pad_token_id": 32000, "bos_token_id": 1, "eos_token_id": 32000}
    if full_size:
        config = Phi3Config(**common)  # the defaults are Phi-3-mini-4k: 32 layers, 3072 hidden, 3.8B params
        with torch.device(device):
            model = Phi3ForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    else:
        config = Phi3Config(
            vocab_size=32064,
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=8,
            intermediate_size=512,
            max_position_embeddings=4096,
            **common,
        )
        model = Phi3ForCausalLM(config)
    model.save_pretrained(path)


def _peak(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def worker_phi3ft(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    from phi3ft.train import TrainingSettings, TrainOptions, run_training

    settings = TrainingSettings.model_validate(
        {
            "base_model": str(args.model_dir),
            "tokenizer": TOKENIZER,
            "output_dir": str(args.work / f"out-{mode}"),
            "learning_rate": 2e-4,
            "epochs": 1,
            "per_device_batch_size": args.batch_size,
            "max_seq_length": args.max_seq_length,
            "gradient_checkpointing": args.gradient_checkpointing,
            "batching": mode,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
            "bf16": args.device == "cuda",
            "save_total_limit": 1,
        }
    )
    options = TrainOptions(train_file=args.data, settings=settings, device=args.device)
    result = run_training(options)
    return {
        "tokens": result.train_tokens,
        "seconds": result.runtime_s,
        "steps": result.steps,
        "final_loss": result.train_loss,
        "peak_memory_bytes": _peak(args.device),
    }


def worker_hf(args: argparse.Namespace) -> dict[str, Any]:
    """The plain recipe: Trainer + DataCollatorForSeq2Seq (pad to longest in a shuffled batch)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from phi3ft.train.data import build_examples, load_tokenizer, read_conversations

    tokenizer = load_tokenizer(TOKENIZER)
    examples, stats = build_examples(tokenizer, read_conversations(args.data), "phi3", args.max_seq_length)
    dataset = [
        {"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e)} for e in examples
    ]
    use_bf16 = args.device == "cuda"
    model = AutoModelForCausalLM.from_pretrained(
        str(args.model_dir), dtype=torch.bfloat16 if use_bf16 else torch.float32, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        ),
    )

    def collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        """What DataCollatorForSeq2Seq(padding="longest", label_pad_token_id=-100) produces."""
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

        return {
            "input_ids": pad("input_ids", 32000),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", -100),
        }

    training_args = TrainingArguments(
        output_dir=str(args.work / "out-hf"),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=use_bf16,
        use_cpu=args.device == "cpu",
        save_strategy="no",
        logging_steps=10_000,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=42,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator)  # type: ignore[arg-type]
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    return {
        "tokens": stats.tokens,
        "seconds": seconds,
        "steps": output.global_step,
        "final_loss": output.training_loss,
        "peak_memory_bytes": _peak(args.device),
    }


def run_worker(args: argparse.Namespace, contender: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        contender,
        "--model-dir",
        str(args.model_dir),
        "--data",
        str(args.data),
        "--work",
        str(args.work),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--max-seq-length",
        str(args.max_seq_length),
    ]
    if not args.gradient_checkpointing:
        cmd.append("--no-gradient-checkpointing")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{contender} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--full-size", action="store_true", help="random-init Phi-3-mini (3.8B) instead of tiny"
    )
    parser.add_argument("--examples", type=int, default=None, help="conversations (default 160 CPU, 800 GPU)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--contenders", default="hf,packed,bucketed")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker_hf(args) if args.worker == "hf" else worker_phi3ft(args, args.worker)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="phi3ft-train-bench-") as tmp:
        args.work = Path(tmp)
        args.model_dir = args.work / "model"
        args.data = args.work / "train.jsonl"
        n = args.examples or (800 if args.device == "cuda" else 160)
        make_dataset(args.data, n, seed=1)
        t0 = time.perf_counter()
        make_model(args.model_dir, args.full_size, args.device)
        print(f"model ready in {time.perf_counter() - t0:.0f} s; {n} conversations", file=sys.stderr)
        contenders = args.contenders.split(",")
        best: dict[str, dict[str, Any]] = {}
        for round_no in range(args.repeats):
            for contender in contenders:
                r = run_worker(args, contender)
                r["tokens_per_s"] = r["tokens"] / r["seconds"]
                print(
                    f"round {round_no + 1} {contender:9s} {r['tokens_per_s']:10.0f} tok/s "
                    f"{r['peak_memory_bytes'] / 2**20:9.0f} MiB  {r['steps']} steps  loss {r['final_loss']:.3f}",
                    file=sys.stderr,
                )
                if contender not in best or r["tokens_per_s"] > best[contender]["tokens_per_s"]:
                    best[contender] = r
        base = best.get("hf")
        rows = []
        for contender in contenders:
            r = best[contender]
            rows.append(
                {
                    "contender": {"hf": "HF Trainer (padded)"}.get(contender, f"phi3ft train ({contender})"),
                    "tokens_per_s": round(r["tokens_per_s"], 1),
                    "speedup": round(r["tokens_per_s"] / base["tokens_per_s"], 2) if base else None,
                    "peak_memory_mib": round(r["peak_memory_bytes"] / 2**20),
                    "steps": r["steps"],
                    "final_loss": round(r["final_loss"], 4),
                }
            )
        if args.json:
            print(
                json.dumps({"device": args.device, "full_size": args.full_size, "examples": n, "rows": rows})
            )
            return
        size = "Phi-3-mini 3.8B (random init)" if args.full_size else "tiny Phi-3 (4 layers, 256 hidden)"
        print(f"\n{size} on {args.device}, {n} conversations, batch {args.batch_size}, LoRA r=16\n")
        print("| contender | tokens/s | speedup | peak memory (MiB) | steps | final loss |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['contender']} | {row['tokens_per_s']:,.0f} | {row['speedup']}x | "
                f"{row['peak_memory_mib']:,} | {row['steps']} | {row['final_loss']} |"
            )


if __name__ == "__main__":
    main()
