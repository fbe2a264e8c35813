"""``phi3ft train``: LoRA SFT on this machine (the same code runs inside an Azure ML compute job)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from phi3ft.cli.context import AppContext
from phi3ft.cli.options import JsonOpt
from phi3ft.errors import UsageError


def _render_progress(app_ctx: AppContext) -> tuple[Any, Any]:
    """A progress callback for the terminal (rich bar) or for logs (a line per ~5%); and a closer."""
    out = app_ctx.output
    state: dict[str, Any] = {"bar": None, "task": None, "last_line": -1}

    def on_event(event: Any) -> None:
        if event.kind == "start":
            out.info(f"Training: {event.message}")
            if out.interactive and not out.json_mode:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                bar = Progress(
                    TextColumn("[bold]train"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"),
                    TextColumn("{task.fields[tps]} tok/s"),
                    TextColumn("ETA {task.fields[eta]}"),
                    console=out.err,
                    transient=False,
                )
                state["bar"] = bar
                state["task"] = bar.add_task(
                    "train", total=event.total_steps, completed=event.step, loss="-", tps="-", eta="-"
                )
                bar.start()
        elif event.kind == "step":
            eta = _fmt_duration(event.eta_s or 0.0)
            if state["bar"] is not None:
                state["bar"].update(
                    state["task"],
                    completed=event.step,
                    loss=f"{event.loss:.4f}",
                    tps=f"{event.tokens_per_s:,.0f}",
                    eta=eta,
                )
            else:
                tick = max(1, event.total_steps // 20)
                if event.step % tick == 0 or event.step == event.total_steps:
                    out.info(
                        f"step {event.step}/{event.total_steps}  loss {event.loss:.4f}  "
                        f"{event.tokens_per_s:,.0f} tok/s  ETA {eta}"
                    )
        elif event.kind == "eval":
            _print_above(
                state,
                out,
                f"eval @ step {event.step}: loss {event.eval_loss:.4f}  ppl {event.perplexity:.2f}",
            )
        elif event.kind == "checkpoint":
            _print_above(state, out, f"checkpoint: {event.path}")

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].stop()

    return on_event, close


def _print_above(state: dict[str, Any], out: Any, line: str) -> None:
    if state["bar"] is not None:
        state["bar"].console.print(line)
    else:
        out.info(line)


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:d}:{rest % 60:02d}"


def register(app: typer.Typer) -> None:
    """Add ``train`` to the root app."""

    @app.command("train")
    def train(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                "-c",
                help="job.yaml (model, data, training: block). Default: ./job.yaml.",
                dir_okay=False,
            ),
        ] = None,
        train_file: Annotated[
            Path | None,
            typer.Option("--train-file", help="Training JSONL (instead of --config).", dir_okay=False),
        ] = None,
        validation_file: Annotated[
            Path | None, typer.Option("--validation-file", help="Validation JSONL (with --train-file).")
        ] = None,
        model: Annotated[
            str,
            typer.Option(
                "--model", help="Catalog model (with --train-file): template, LoRA defaults, weights."
            ),
        ] = "phi-4-mini-instruct",  # catalog.DEFAULT_MODEL, like init, validate and plan
        base_model: Annotated[
            str | None,
            typer.Option("--base-model", help="Local folder or HF id to load instead of the catalog's."),
        ] = None,
        tokenizer: Annotated[
            Path | None,
            typer.Option(
                "--tokenizer", help="tokenizer.json or its folder (default: next to the base model)."
            ),
        ] = None,
        output_dir: Annotated[
            Path | None, typer.Option("--output-dir", "-o", help="Where outputs go.")
        ] = None,
        epochs: Annotated[float | None, typer.Option("--epochs", help="Override training.epochs.")] = None,
        max_steps: Annotated[
            int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from the newest checkpoint in the output folder.")
        ] = False,
        resume_from: Annotated[
            Path | None, typer.Option("--resume-from", help="Continue from this checkpoint folder.")
        ] = None,
        merge: Annotated[
            bool, typer.Option("--merge", help="Also export base + adapter merged into OUTPUT/merged.")
        ] = False,
        device: Annotated[
            str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")
        ] = "auto",
        json_out: JsonOpt = False,
    ) -> None:
        """Fine-tune a LoRA adapter on chat JSONL, on this machine (needs phi3ft's train extra).

        Loss is on assistant tokens only. Writes checkpoints, OUTPUT/adapter, metrics.jsonl and loss.png;
        --merge also writes a merged model. Ctrl+C saves a checkpoint: continue with --resume.
        Under torchrun / Azure ML's PyTorch distribution (WORLD_SIZE > 1) it trains data-parallel (DDP);
        with MLFLOW_TRACKING_URI set and mlflow installed it logs train_loss/eval_loss to MLflow.
        """
        from phi3ft.train import TrainingSettings, TrainOptions, run_training
        from phi3ft.train.job import options_from_job_config

        app_ctx: AppContext = ctx.obj
        app_ctx.output.json_mode = json_out
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device must be auto, cpu or cuda, not '{device}'")
        if resume and resume_from is not None:
            raise UsageError("use either --resume or --resume-from, not both")
        overrides: dict[str, Any] = {
            "output_dir": output_dir,
            "epochs": epochs,
            "max_steps": max_steps,
            "base_model": base_model,
            "tokenizer": tokenizer,
            "resume": str(resume_from) if resume_from is not None else (True if resume else None),
            "merge": True if merge else None,
        }
        if train_file is not None:
            if config is not None:
                raise UsageError("use either --config or --train-file, not both")
            settings = TrainingSettings().model_copy(
                update={k: v for k, v in overrides.items() if v is not None}
            )
            options = TrainOptions(
                model=model,
                train_file=train_file,
                validation_file=validation_file,
                settings=TrainingSettings.model_validate(settings.model_dump()),
                device=device,
            )
        else:
            from phi3ft.config import load_job_config

            path = config or app_ctx.cwd / "job.yaml"
            if config is None and not path.is_file():
                raise UsageError(
                    "no job.yaml here and no --train-file",
                    "pass --config job.yaml, or --train-file data.jsonl",
                )
            cfg = load_job_config(path, env=app_ctx.env)
            options = options_from_job_config(cfg, device=device, **overrides)

        on_event, close = _render_progress(app_ctx)
        try:
            result = run_training(options, progress=on_event)
        finally:
            close()
        if json_out:
            app_ctx.output.emit_json(result)
            return
        if result.rank != 0:  # data parallel: rank 0 reports the run
            return
        out = app_ctx.output
        out.success(f"Adapter saved to {result.adapter_dir} ({result.steps} steps, {result.runtime_s:.0f} s)")
        line = f"train loss {result.train_loss:.4f}" if result.train_loss is not None else "no training step"
        if result.eval_loss is not None:
            line += f"; eval loss {result.eval_loss:.4f}, perplexity {result.eval_perplexity:.2f}"
        out.print(line)
        out.print(f"{result.tokens_per_s:,.0f} tokens/s; metrics: {result.metrics_file}", markup=False)
        if result.chart_file:
            out.print(f"loss chart: {result.chart_file}", markup=False)
        if result.merged_dir:
            out.print(f"merged model: {result.merged_dir}", markup=False)
