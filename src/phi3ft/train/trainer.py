"""The LoRA SFT loop behind ``phi3ft train`` (needs the ``train`` extra: torch, transformers, peft).

A small explicit loop rather than ``transformers.Trainer`` because the speed comes from things the
stock Trainer does not do together:

- **Length-aware batches** (``bucketed``, the default): batches of similar length, so padding is
  small; right padding under a causal mask never reaches a real token, so no attention mask is passed
  and SDPA takes its causal fast path.
- **Packing with exact attention separation** (``packed``): conversations are laid end to end in rows
  whose ``position_ids`` restart at 0 for each conversation and no attention mask is passed;
  transformers (>= 5) then builds a block-diagonal causal mask from the position ids, so a token never
  sees a neighbouring conversation (a test checks that the loss of a packed row equals the sum of the
  losses of its conversations alone). Without varlen kernels the attention still costs row_len^2.
- **Logits only where there is loss**: the hidden states of trainable positions are gathered before
  ``lm_head``, so the (tokens x 32,064) logits tensor, the biggest activation of a small model, holds
  assistant tokens only.

- **Data parallel** when launched by ``torchrun`` / Azure ML's PyTorch distribution (``WORLD_SIZE`` > 1):
  one process per GPU (``cuda:LOCAL_RANK``, NCCL; gloo on CPU), the LoRA model in DDP. Step ``s`` uses
  the same ``gradient_accumulation_steps x WORLD_SIZE`` micro-batches of the epoch order that one process
  with ``WORLD_SIZE`` times the accumulation would use (rank ``r`` takes every ``WORLD_SIZE``-th), and the
  trained-token count that normalises the loss is summed over ranks, so the loss and the update equal
  the single-process ones. Only rank 0 writes checkpoints, metrics, the adapter and the chart, and
  reports progress.
- **MLflow** when ``MLFLOW_TRACKING_URI`` is set (Azure ML sets it inside jobs) and ``mlflow`` is
  importable: rank 0 logs ``train_loss`` / ``eval_loss`` per step (what ``phi3ft metrics`` reads).

Services never print: progress goes to the ``progress`` callback as :class:`TrainEvent` objects.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi3ft.errors import ConfigError, Interrupted, PrerequisiteError
from phi3ft.train.data import (
    IGNORE_INDEX,
    DatasetStats,
    Example,
    MicroBatch,
    build_examples,
    epoch_order,
    load_tokenizer,
    pack_row_length,
    plan_batches,
    read_conversations,
    split_conversations,
)
from phi3ft.train.types import TrainEvent, TrainOptions, TrainResult

ProgressCallback = Callable[[TrainEvent], None]

STATE_FILE = "trainer_state.json"


def require_train_extra() -> None:
    """Fail with one line and the install command when torch/transformers/peft are missing."""
    missing = []
    for module in ("torch", "transformers", "peft"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        from phi3ft.install import extra_install_command

        raise PrerequisiteError(
            f"the local trainer needs {', '.join(missing)} (the 'train' extra is not installed)",
            f"{extra_install_command('train')}   (CPU only: pip install torch==2.13.0 first)",
        )


# ---- model / tokenizer resolution -------------------------------------------------------------------


def _resolve(options: TrainOptions) -> tuple[Any, str, Path]:
    """(profile, model source for from_pretrained, tokenizer.json path)."""
    from phi3ft.catalog import get_profile

    try:
        profile = get_profile(options.model)
    except KeyError:
        raise ConfigError(
            f"unknown model '{options.model}'", "use a catalog name such as phi-3-mini-4k-instruct"
        ) from None
    settings = options.settings
    source = settings.base_model or profile.hf_repo
    if settings.tokenizer is not None:
        tok_path = settings.tokenizer
    elif Path(source).is_dir():
        tok_path = Path(source)
    else:
        tok_path = _hub_tokenizer(source)
    return profile, source, tok_path


def _hub_cache() -> Path:
    """The hub cache as the environment says now (huggingface_hub reads it once, at import)."""
    from phi3ft.data.tokens import hub_cache_dirs

    return hub_cache_dirs(os.environ)[0]


def _offline_hint(repo: str, *, tokenizer: bool) -> str:
    from phi3ft.hub import download_commands, offline_flag

    fix = (
        f"On a connected machine run `{download_commands(repo)}`, copy DIR here and set "
        "training.base_model: DIR (or --base-model DIR)"
    )
    if tokenizer:
        fix += "; or pass --tokenizer DIR (training.tokenizer) with the model's tokenizer.json"
    if offline_flag(os.environ):
        fix += "; or unset HF_HUB_OFFLINE on a machine that is online"
    return fix + "."


def _hub_tokenizer(repo: str) -> Path:
    """tokenizer.json of hub model ``repo``: one fail-fast probe, then the download or the cached copy."""
    from huggingface_hub import hf_hub_download

    from phi3ft.hub import hub_unreachable

    why = hub_unreachable(repo, "tokenizer.json")
    try:
        return Path(
            hf_hub_download(repo, "tokenizer.json", cache_dir=_hub_cache(), local_files_only=why is not None)
        )
    except Exception as exc:  # offline and not cached, gated, missing: one line, not a traceback
        if why is None:
            raise PrerequisiteError(
                f"cannot get tokenizer.json for {repo}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                _offline_hint(repo, tokenizer=True),
            ) from None
        raise PrerequisiteError(
            f"cannot get tokenizer.json for {repo}: {why}, and the hub cache ({_hub_cache()}) has no copy",
            _offline_hint(repo, tokenizer=True),
        ) from None


def _pick_device(requested: str) -> tuple[Any, bool]:
    import torch

    if requested == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(requested)
    return device, device.type == "cuda"


def load_lora_model(options: TrainOptions, source: str, device: Any, use_bf16: bool) -> Any:
    """The base model with LoRA adapters (trainable) on ``device``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from phi3ft.hub import hub_unreachable

    settings = options.settings
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    # A hub id: one fail-fast probe first (transformers alone retries ~50 s offline); unreachable means
    # the cached snapshot or nothing.
    why = None if Path(source).is_dir() else hub_unreachable(source, "config.json")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=dtype,
            attn_implementation="sdpa",
            cache_dir=_hub_cache(),
            local_files_only=why is not None,
        )
    except OSError as exc:
        detail = (
            f"{why}, and the hub cache ({_hub_cache()}) has no copy"
            if why is not None
            else str(exc).splitlines()[0]
        )
        raise PrerequisiteError(
            f"cannot load base model {source}: {detail}", _offline_hint(source, tokenizer=False)
        ) from None
    model.config.use_cache = False
    lora = LoraConfig(
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=settings.lora.resolved_target_modules(options.model),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    if settings.gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return peft_model.to(device)


# ---- data parallel ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a data-parallel run (``world_size`` 1: a plain single process)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (set by torchrun and Azure ML's PyTorch distribution)."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        rank = int(env.get("RANK", "0") or 0)
        local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    except ValueError:
        raise ConfigError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be integers",
            "launch with torchrun or Azure ML's PyTorch distribution, or unset them",
        ) from None
    if world <= 1:
        return DistInfo()
    if not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return DistInfo(world, rank, local)


def _init_distributed(info: DistInfo, requested: str) -> Any:
    """Join the process group (env:// rendezvous: MASTER_ADDR/MASTER_PORT); return this rank's device."""
    import datetime

    import torch
    import torch.distributed as dist

    use_cuda = requested != "cpu" and torch.cuda.is_available()
    if requested == "cuda" and not use_cuda:
        raise PrerequisiteError("--device cuda: no CUDA device is visible", "use --device cpu or auto")
    if use_cuda:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ConfigError(
                    f"WORLD_SIZE={info.world_size} but {name} is not set",
                    "launch with torchrun or Azure ML's PyTorch distribution (they set it)",
                )
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            init_method="env://",
            world_size=info.world_size,
            rank=info.rank,
            timeout=datetime.timedelta(minutes=60),  # rank 0 may save/merge a large model at the end
        )
    return device


def _all_sum(values: list[float], info: DistInfo, device: Any) -> list[float]:
    """Sum ``values`` over ranks (float64; a no-op in a single process)."""
    if not info.enabled:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


def rank_micro_batches(step: int, accum: int, info: DistInfo) -> list[int]:
    """Global micro-batch indices this rank runs in optimizer step ``step`` (0-based).

    A step consumes ``accum x world_size`` consecutive micro-batches of the (epoch-shuffled, endless)
    stream, exactly the ones a single process with ``accum x world_size`` accumulation would use; rank
    ``r`` takes every ``world_size``-th of them starting at ``r``. Every rank runs ``accum`` of them, so
    all ranks step together; an epoch's tail simply continues into the next epoch, as in one process.
    """
    first = step * accum * info.world_size
    return [first + k * info.world_size + info.rank for k in range(accum)]


class _MlflowSink:
    """``mlflow.log_metric`` per step when ``MLFLOW_TRACKING_URI`` is set and mlflow imports (rank 0 only).

    A failing call (network, auth) stops MLflow logging for the run instead of stopping training;
    ``failure`` says why.
    """

    def __init__(self, enabled: bool) -> None:
        self.module: Any = None
        self.failure: str | None = None
        if not enabled or not os.environ.get("MLFLOW_TRACKING_URI"):
            return
        try:
            import mlflow
        except ImportError:
            return
        self.module = mlflow

    def log(self, metrics: Mapping[str, float | None], step: int) -> None:
        if self.module is None:
            return
        try:
            for key, value in metrics.items():
                if value is not None and math.isfinite(value):
                    self.module.log_metric(key, float(value), step=step)
        except Exception as exc:  # never let metrics logging kill a training run
            self.failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.module = None


# ---- batches -> tensors -----------------------------------------------------------------------------


def collate(
    batch: MicroBatch, examples: list[Example], mode: str, pad_id: int, device: Any
) -> dict[str, Any]:
    """Tensors for one micro-batch: input ids, next-token targets (-100 = no loss), position ids/mask.

    Targets are shifted inside each conversation, so packing never asks a conversation to predict
    its neighbour's first token.
    """
    import torch

    rows_ids: list[list[int]] = []
    rows_tgt: list[list[int]] = []
    rows_pos: list[list[int]] = []
    for row in batch.rows:
        ids: list[int] = []
        tgt: list[int] = []
        pos: list[int] = []
        for index in row.members:
            example = examples[index]
            ids += example.input_ids
            tgt += [*example.labels[1:], IGNORE_INDEX]
            pos += list(range(len(example)))
        rows_ids.append(ids)
        rows_tgt.append(tgt)
        rows_pos.append(pos)
    width = max(len(r) for r in rows_ids)
    mask_rows = []
    for ids, tgt, pos in zip(rows_ids, rows_tgt, rows_pos, strict=True):
        pad = width - len(ids)
        mask_rows.append([1] * len(ids) + [0] * pad)
        ids += [pad_id] * pad
        tgt += [IGNORE_INDEX] * pad
        pos += list(range(pad))  # padding is its own block: restarts at 0, attends only to itself
    out: dict[str, Any] = {
        "input_ids": torch.tensor(rows_ids, dtype=torch.long, device=device),
        "targets": torch.tensor(rows_tgt, dtype=torch.long, device=device),
        "real_tokens": sum(len(examples[i]) for row in batch.rows for i in row.members),
    }
    if mode == "packed":
        # No attention mask: transformers derives the block-diagonal mask from restarting position ids.
        out["position_ids"] = torch.tensor(rows_pos, dtype=torch.long, device=device)
    elif mode == "padded":
        out["attention_mask"] = torch.tensor(mask_rows, dtype=torch.long, device=device)
    # "bucketed": right padding under a causal mask never reaches a real token: no mask needed.
    return out


def loss_sum(model: Any, batch: dict[str, Any], use_bf16: bool) -> tuple[Any, int]:
    """Summed next-token NLL over trainable positions, and how many there were."""
    import torch
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    targets = batch["targets"]
    keep = targets != IGNORE_INDEX
    with torch.autocast(device_type=targets.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        hidden = decoder(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
            use_cache=False,
        ).last_hidden_state
        logits = causal_lm.get_output_embeddings()(hidden[keep])
    loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum().item())


def _loss_module(model: Any, use_bf16: bool) -> Any:
    """``model`` wrapped so that ``forward(**batch)`` returns :func:`loss_sum`'s loss: DDP must see the
    forward pass to synchronise gradients, and ``loss_sum`` calls the decoder and ``lm_head`` itself."""
    import torch

    class LossHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, **batch: Any) -> Any:
            return loss_sum(self.model, batch, use_bf16)[0]

    return LossHead()


# ---- the run ----------------------------------------------------------------------------------------


def run_training(options: TrainOptions, progress: ProgressCallback | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter on ``options.train_file``; returns where everything was written."""
    require_train_extra()
    import torch
    from transformers import get_scheduler

    emit = progress or (lambda _event: None)
    settings = options.settings
    # Data first: a typo in a path should not wait for (or be hidden by) a model download.
    train_conversations = read_conversations(options.train_file)
    val_conversations = (
        read_conversations(options.validation_file) if options.validation_file is not None else []
    )
    profile, source, tok_path = _resolve(options)
    tokenizer = load_tokenizer(tok_path)
    max_len = settings.max_seq_length or profile.context_length
    if options.validation_file is None and options.validation_fraction and len(train_conversations) > 1:
        train_conversations, val_conversations = split_conversations(
            train_conversations, options.validation_fraction, options.validation_seed
        )
    train_examples, train_stats = build_examples(tokenizer, train_conversations, profile.template, max_len)
    if not train_examples:
        raise ConfigError(
            f"{options.train_file}: no conversation has an assistant turn to learn from",
            f"run: phi3ft validate {options.train_file}",
        )
    val_examples: list[Example] = []
    val_stats: DatasetStats | None = None
    if val_conversations:
        val_examples, val_stats = build_examples(tokenizer, val_conversations, profile.template, max_len)
    pad_id = tokenizer.token_to_id("<|endoftext|>")
    pad_id = 0 if pad_id is None else pad_id

    info = dist_info()
    main = info.is_main
    if not main:
        emit = lambda _event: None  # noqa: E731 - only rank 0 reports progress
    out_dir = settings.output_dir
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    resume_dir = _find_resume_checkpoint(settings.resume, out_dir)

    _seed_everything(settings.seed)  # the same LoRA initialisation on every rank
    if info.enabled:
        device = _init_distributed(info, options.device)
        is_cuda = device.type == "cuda"
    else:
        device, is_cuda = _pick_device(options.device)
    use_bf16 = bool(
        settings.bf16 is True or (settings.bf16 == "auto" and is_cuda and torch.cuda.is_bf16_supported())
    )
    if settings.bf16 is True and not is_cuda:
        use_bf16 = True  # honoured on CPU too when asked explicitly (slow on most CPUs)
    model = load_lora_model(options, source, device, use_bf16)
    model.train()

    row_length = pack_row_length([len(e) for e in train_examples], settings.pack_length)
    batches = plan_batches(
        [len(e) for e in train_examples],
        settings.batching,
        batch_size=settings.per_device_batch_size,
        max_tokens=settings.max_tokens_per_batch,
        row_length=row_length,
        seed=settings.seed,
    )
    val_batches = plan_batches(
        [len(e) for e in val_examples],
        settings.batching,
        batch_size=settings.per_device_batch_size,
        max_tokens=settings.max_tokens_per_batch,
        row_length=pack_row_length([len(e) for e in val_examples] or [1], settings.pack_length),
        seed=settings.seed,
    )
    accum = settings.gradient_accumulation_steps
    per_step = accum * info.world_size  # micro-batches per optimizer step, all ranks together
    steps_per_epoch = max(1, math.ceil(len(batches) / per_step))
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = get_scheduler(
        "cosine" if settings.lr_scheduler == "cosine" else settings.lr_scheduler,
        optimizer,
        num_warmup_steps=math.ceil(settings.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )

    metrics_path = out_dir / "metrics.jsonl"
    start_step = 0
    if resume_dir is not None:
        start_step = _load_checkpoint(resume_dir, model, optimizer, scheduler)
        if main:
            _truncate_metrics(metrics_path, start_step)
    elif main:
        metrics_path.write_text("")
    forward = _loss_module(model, use_bf16)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(
            forward, device_ids=[device.index] if is_cuda else None, find_unused_parameters=False
        )
        torch.manual_seed(settings.seed + 7919 * info.rank + start_step)  # own dropout masks per rank
    mlflow_sink = _MlflowSink(main)

    trainable, total_params = _count_params(model)
    emit(
        TrainEvent(
            kind="start",
            step=start_step,
            total_steps=total_steps,
            message=(
                f"{train_stats.used} conversations ({train_stats.tokens} tokens, "
                f"{train_stats.trainable_tokens} trained), {len(batches)} micro-batches "
                f"({settings.batching}), device {device.type}{' bf16' if use_bf16 else ''}, "
                f"LoRA {trainable:,} of {total_params:,} parameters"
                + (f", {info.world_size} processes (DDP)" if info.enabled else "")
                + (f", resumed from {resume_dir.name}" if resume_dir else "")
            ),
        )
    )

    def micro_batch(index: int) -> tuple[int, MicroBatch]:
        epoch, pos = divmod(index, len(batches))
        return epoch, batches[epoch_order(len(batches), epoch, settings.seed)[pos]]

    def evaluate() -> tuple[float, float] | None:
        if not val_batches:
            return None
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for vb in val_batches[info.rank :: info.world_size]:  # each rank evaluates its share
                tensors = collate(vb, val_examples, settings.batching, pad_id, device)
                loss, n = loss_sum(model, tensors, use_bf16)
                total += float(loss.item())
                count += n
        model.train()
        total, all_count = _all_sum([total, float(count)], info, device)
        mean = total / max(all_count, 1.0)
        return mean, math.exp(min(mean, 50.0))

    def write_metrics(record: dict[str, Any]) -> None:
        if not main:
            return
        with metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    tokens_seen = 0
    started = time.perf_counter()
    last_train_loss: float | None = None
    last_eval: tuple[float, float] | None = None
    step = start_step
    try:
        while step < total_steps:
            first = step * per_step
            chosen = [micro_batch(i) for i in rank_micro_batches(step, accum, info)]
            epoch_before = micro_batch(first)[0]
            epoch_after = micro_batch(first + per_step)[0]
            tensors_list = [
                collate(mb, train_examples, settings.batching, pad_id, device) for _, mb in chosen
            ]
            local_denom = sum(int((t["targets"] != IGNORE_INDEX).sum().item()) for t in tensors_list)
            # The loss is a mean over the step's trained tokens on *all* ranks; DDP averages gradients
            # over ranks, so each rank scales by world_size to get the sum the single process has.
            (denom,) = _all_sum([float(local_denom)], info, device)
            scale = info.world_size / max(denom, 1.0)
            step_loss = 0.0
            step_tokens = 0
            for k, tensors in enumerate(tensors_list):
                inputs = {key: value for key, value in tensors.items() if key != "real_tokens"}
                sync = contextlib.nullcontext()
                if info.enabled and k < len(tensors_list) - 1:
                    sync = forward.no_sync()  # all-reduce once, after the last micro-batch
                with sync:
                    loss = forward(**inputs)
                    (loss * scale).backward()
                step_loss += float(loss.item())
                step_tokens += tensors["real_tokens"]
            step_loss, step_tokens_all = _all_sum([step_loss, float(step_tokens)], info, device)
            tokens_seen += int(step_tokens_all)
            grad_norm = None
            if settings.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_train_loss = step_loss / max(denom, 1.0)
            elapsed = time.perf_counter() - started
            tps = tokens_seen / elapsed if elapsed > 0 else 0.0
            eta = elapsed / (step - start_step) * (total_steps - step)
            epoch_float = (first + per_step) / len(batches)
            lr = scheduler.get_last_lr()[0]
            if step % settings.logging_every_steps == 0 or step == total_steps:
                write_metrics(
                    {
                        "step": step,
                        "epoch": round(epoch_float, 4),
                        "train_loss": last_train_loss,
                        "learning_rate": lr,
                        "grad_norm": grad_norm,
                        "tokens_per_s": round(tps, 1),
                        "tokens_seen": tokens_seen,
                    }
                )
                mlflow_sink.log({"train_loss": last_train_loss, "learning_rate": lr}, step)
            emit(
                TrainEvent(
                    kind="step",
                    step=step,
                    total_steps=total_steps,
                    epoch=epoch_float,
                    loss=last_train_loss,
                    learning_rate=lr,
                    tokens_per_s=tps,
                    eta_s=eta,
                )
            )
            epoch_ended = epoch_after != epoch_before or step == total_steps
            if epoch_ended or (settings.eval_every_steps and step % settings.eval_every_steps == 0):
                evaluation = evaluate()
                if evaluation is not None:
                    last_eval = evaluation
                    write_metrics(
                        {
                            "step": step,
                            "epoch": round(epoch_float, 4),
                            "eval_loss": evaluation[0],
                            "eval_perplexity": evaluation[1],
                        }
                    )
                    mlflow_sink.log({"eval_loss": evaluation[0], "eval_perplexity": evaluation[1]}, step)
                    emit(
                        TrainEvent(
                            kind="eval",
                            step=step,
                            total_steps=total_steps,
                            epoch=epoch_float,
                            eval_loss=evaluation[0],
                            perplexity=evaluation[1],
                        )
                    )
            if main and (
                (epoch_ended and step < total_steps)
                or (settings.save_every_steps and step % settings.save_every_steps == 0)
            ):
                path = _save_checkpoint(out_dir, step, model, optimizer, scheduler, settings.save_total_limit)
                emit(TrainEvent(kind="checkpoint", step=step, total_steps=total_steps, path=str(path)))
    except KeyboardInterrupt:
        if not main:
            raise Interrupted(
                f"training interrupted at step {step}/{total_steps} (rank {info.rank})"
            ) from None
        path = _save_checkpoint(out_dir, step, model, optimizer, scheduler, settings.save_total_limit)
        raise Interrupted(
            f"training interrupted at step {step}/{total_steps}; checkpoint saved in {path}",
            "continue with: phi3ft train --resume (same config)",
        ) from None

    runtime = time.perf_counter() - started
    adapter_dir = out_dir / "adapter"
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()  # every rank has finished its last step before anyone leaves
        dist.destroy_process_group()
    chart = None
    merged_dir = None
    if main:
        model.save_pretrained(adapter_dir)
        _copy_tokenizer(tok_path, adapter_dir)
        chart = _write_chart(metrics_path, out_dir / "loss.png")
    if main and settings.merge:
        merged_dir = out_dir / "merged"
        merged = model.merge_and_unload()
        merged.save_pretrained(merged_dir)
        _copy_tokenizer(tok_path, merged_dir)
    result = TrainResult(
        output_dir=out_dir,
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        metrics_file=metrics_path,
        chart_file=chart,
        steps=step,
        resumed_from_step=start_step if resume_dir else None,
        train_loss=last_train_loss,
        eval_loss=last_eval[0] if last_eval else None,
        eval_perplexity=last_eval[1] if last_eval else None,
        train_tokens=tokens_seen,
        tokens_per_s=tokens_seen / runtime if runtime > 0 else 0.0,
        runtime_s=runtime,
        peak_memory_bytes=_peak_memory(device),
        device=device.type,
        bf16=use_bf16,
        conversations=train_stats.used,
        truncated=train_stats.truncated + (val_stats.truncated if val_stats else 0),
        rank=info.rank,
        world_size=info.world_size,
    )
    done = f"MLflow logging stopped: {mlflow_sink.failure}" if mlflow_sink.failure else None
    emit(TrainEvent(kind="done", step=step, total_steps=total_steps, path=str(adapter_dir), message=done))
    return result


# ---- helpers ----------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _count_params(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def _peak_memory(device: Any) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if sys.platform.startswith("linux"):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return 0


#: ``tokenizer_class`` of the saved tokenizer: transformers then loads ``tokenizer.json`` as it is (5.x:
#: ``TokenizersBackend``; 4.x: ``PreTrainedTokenizerFast``). The model-specific class (``LlamaTokenizer``
#: for Phi-3) makes transformers 5 rebuild the pipeline from the vocabulary and drop the space-prefix
#: rule of ``tokenizer.json`` (``Hello`` instead of ``▁Hello`` after every role token).
SAVED_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def _copy_tokenizer(tok_path: Path, dest: Path) -> None:
    """Save the tokenizer the model was trained with, so ``AutoTokenizer.from_pretrained(dest)`` encodes
    exactly as training did: ``tokenizer.json`` as is, ``tokenizer_config.json`` (chat template, special
    tokens) with :data:`SAVED_TOKENIZER_CLASS`; written even when the source has no config."""
    file = tok_path / "tokenizer.json" if tok_path.is_dir() else tok_path
    source_dir = file.parent
    shutil.copy2(file, dest / "tokenizer.json")
    if (source_dir / "special_tokens_map.json").is_file():
        shutil.copy2(source_dir / "special_tokens_map.json", dest / "special_tokens_map.json")
    config_path = source_dir / "tokenizer_config.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        loaded = json.loads(config_path.read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}
    else:
        config = {"add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False}
    for key in ("sp_model_kwargs", "legacy", "auto_map"):  # only meaningful for the slow/remote classes
        config.pop(key, None)
    config["tokenizer_class"] = SAVED_TOKENIZER_CLASS
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _write_chart(metrics_path: Path, dest: Path) -> Path | None:
    from phi3ft.train.chart import write_loss_chart

    points = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    try:
        return write_loss_chart(points, dest, title="phi3ft train: loss")
    except ImportError:  # matplotlib is optional; metrics.jsonl has the numbers
        return None


def _checkpoints(out_dir: Path) -> list[Path]:
    found = [p for p in out_dir.glob("checkpoint-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def _find_resume_checkpoint(resume: bool | str, out_dir: Path) -> Path | None:
    if resume is False:
        return None
    if resume is True:
        found = _checkpoints(out_dir)
        if not found:
            raise ConfigError(
                f"--resume: no checkpoint in {out_dir}",
                "train without --resume, or point training.output_dir at the earlier run",
            )
        return found[-1]
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise ConfigError(f"--resume: {path} is not a phi3ft checkpoint (no {STATE_FILE})")
    return path


def _save_checkpoint(out_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, keep: int) -> Path:
    import torch

    path = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python_rng": random.getstate(),
        },
        tmp / "training_state.pt",
    )
    (tmp / STATE_FILE).write_text(json.dumps({"step": step}))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)  # a checkpoint either exists whole or not at all
    for old in _checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> int:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(str(weights), device=str(next(model.parameters()).device)))
    state = torch.load(path / "training_state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    return int(json.loads((path / STATE_FILE).read_text())["step"])


def _truncate_metrics(metrics_path: Path, step: int) -> None:
    if not metrics_path.is_file():
        return
    kept = [
        line
        for line in metrics_path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    metrics_path.write_text("".join(line + "\n" for line in kept))
