"""``deploy``, ``keys``, ``invoke``, ``chat``, ``eval``, ``delete``: from fine-tuned model to clean subscription.

Thin: parse, open the backend (job.yaml, else the local ledger), call one service, render. Services live
in :mod:`phi3ft.targets.azureml.endpoints`; nothing here imports Azure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from phi3ft.cli.options import JsonOpt, NoWaitOpt, YesOpt

if TYPE_CHECKING:
    from phi3ft.cli.context import AppContext
    from phi3ft.config import JobSpec
    from phi3ft.connect import AzureTarget
    from phi3ft.state import StateStore

AUTH_CHOICES = ("auto", "cli", "env", "managed-identity", "device-code")

EndpointConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="job.yaml naming the Azure project (default: the project the local ledger recorded for the "
        "endpoint, else ./job.yaml if present).",
        dir_okay=False,
        show_default=False,
    ),
]
ConfigPathOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="job.yaml naming the Azure project (default: ./job.yaml if present, else the local ledger).",
        dir_okay=False,
        show_default=False,
    ),
]
AuthOpt = Annotated[
    str | None,
    typer.Option(
        "--auth",
        click_type=click.Choice(AUTH_CHOICES),
        help="Credential to use, overriding azure.auth (env = service principal variables only).",
        show_default=False,
    ),
]
PathOpt = Annotated[
    str,
    typer.Option("--path", help="Inference route appended to the scoring URI.", show_default=True),
]
AuthHeaderOpt = Annotated[
    str,
    typer.Option(
        "--auth-header",
        click_type=click.Choice(("bearer", "raw", "api-key")),
        help="How the key is sent: 'Authorization: Bearer KEY' (default), 'Authorization: KEY', or 'api-key: KEY'.",
    ),
]


# ---- shared plumbing (no business logic: which settings to read, and from where) ------------------------


def print_deploy_plan(out: Any, name: str, steps: Sequence[Any], *, json: bool) -> None:
    """``deploy --dry-run``: the steps ``deploy`` runs, numbered (the same list; nothing is created)."""
    from phi3ft.steps import describe

    actions = describe(steps)
    if json:
        out.emit_json({"dry_run": True, "endpoint": name, "actions": [a.to_dict() for a in actions]})
        return
    out.info(f"Deploy plan for endpoint {name}:")
    for action in actions:
        out.print(f"  {action.step}. {action.kind}: {action.summary}", markup=False)
    out.info("Dry run: nothing was created.")


def _store(app_ctx: AppContext) -> StateStore:
    from phi3ft.state import StateStore

    store = StateStore(app_ctx.state_dir)
    for warning in store.warnings:
        app_ctx.output.warn(warning)
    return store


def _config(app_ctx: AppContext, config: Path | None) -> JobSpec | None:
    from phi3ft.config import load_job_config

    path = config or Path("job.yaml")
    path = path if path.is_absolute() else app_ctx.cwd / path
    if config is None and not path.exists():
        return None
    return load_job_config(path, env=app_ctx.env, check_files=False)


def _target_from_ledger(
    store: StateStore, job: str | None = None, endpoint: str | None = None
) -> AzureTarget:
    from phi3ft.connect import AzureTarget
    from phi3ft.errors import UsageError

    candidates: list[dict[str, Any]] = []
    if endpoint:
        rec = store.get("endpoint", endpoint) or {}
        if rec.get("job"):
            candidates.append(store.get("job", str(rec["job"])) or {})
        candidates.append(rec)
    name = job or store.last_job
    if name:
        candidates.append(store.get("job", name) or {})
    candidates += store.list("job")
    candidates += [{**r, "project": r.get("project") or r.get("name")} for r in store.list("project")]
    from phi3ft.records import JobRecord

    for rec in candidates:
        if rec.get("subscription_id") and rec.get("resource_group") and rec.get("project"):
            return AzureTarget.from_record(JobRecord.parse(rec))  # any record with the job's where-fields
    raise UsageError(
        "No job.yaml here and the local ledger does not say which Azure project to use.",
        "Pass --config job.yaml (or run from the folder where you ran `phi3ft submit`).",
    )


def _open(
    app_ctx: AppContext,
    config: Path | None,
    auth: str | None,
    *,
    job: str | None = None,
    endpoint: str | None = None,
    ledger_first: bool = False,
) -> tuple[Any, StateStore, JobSpec | None]:
    from phi3ft.connect import open_backend

    store = _store(app_ctx)
    if ledger_first and config is None and endpoint:
        # The endpoint's own ledger record (or its job's) says where it lives: no job.yaml to parse
        # (phi3ft.config costs ~0.3-0.6 s to import), and the project is where the endpoint really is.
        target = _endpoint_target(store, endpoint)
        if target is not None:
            return open_backend(app_ctx, target, auth=auth), store, None
    cfg = _config(app_ctx, config)
    target = cfg if cfg is not None else _target_from_ledger(store, job, endpoint)
    return open_backend(app_ctx, target, auth=auth), store, cfg


def _endpoint_target(store: StateStore, endpoint: str) -> Any:
    """The Azure target the ledger recorded for ``endpoint`` (its job's record first), or ``None``."""
    from phi3ft.connect import AzureTarget
    from phi3ft.records import JobRecord

    rec = store.get("endpoint", endpoint) or {}
    candidates = ([store.get("job", str(rec["job"])) or {}] if rec.get("job") else []) + [rec]
    for cand in candidates:
        if cand.get("subscription_id") and cand.get("resource_group") and cand.get("project"):
            return AzureTarget.from_record(JobRecord.parse(cand))
    return None


class _LazyBackend:
    """Connects on first use: an empty delete plan (a re-run after everything is gone) needs no Azure."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect
        self._backend: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._backend is None:
            self._backend = self._connect()
        return getattr(self._backend, name)


def _chat_client(
    backend: Any, endpoint: str, path: str, auth_header: str, store: StateStore | None = None
) -> Any:
    """The endpoint's chat client; the scoring URI comes from the ledger when it recorded the endpoint
    ready (then the key is the only request), else from Azure."""
    rec = (store.get("endpoint", endpoint) if store is not None else None) or {}
    uri = rec.get("scoring_uri") if str(rec.get("state") or "").lower() == "succeeded" else None
    if uri:
        return backend.chat_client(endpoint, path=path, auth_header=auth_header, scoring_uri=str(uri))
    return backend.chat_client(endpoint, path=path, auth_header=auth_header)


def register(app: typer.Typer) -> None:
    """Add deploy, keys, invoke, chat, eval and delete to the root app."""

    # ---- deploy ----------------------------------------------------------------------------------------
    @app.command("deploy")
    def deploy(
        ctx: typer.Context,
        job: Annotated[
            str | None, typer.Argument(help="Fine-tuning job whose model to deploy (default: the last one).")
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", help="Deploy this model instead: NAME:VERSION.")
        ] = None,
        endpoint_name: Annotated[
            str | None,
            typer.Option("--endpoint-name", help="Endpoint name, unique in the region (default: derived)."),
        ] = None,
        content_safety: Annotated[
            bool | None,
            typer.Option(
                "--content-safety/--no-content-safety",
                help="Azure AI Content Safety screens prompts and completions (default on; job.yaml "
                "deploy.content_safety). Turning it off prints a warning.",
                show_default=False,
            ),
        ] = None,
        detach: Annotated[
            bool, typer.Option("--detach", help="Return once Azure accepted the endpoint; do not wait.")
        ] = False,
        timeout: Annotated[
            str, typer.Option("--timeout", help="Give up waiting after this long (e.g. 30m, 2h).")
        ] = "1h",
        baseline: Annotated[
            bool,
            typer.Option(
                "--baseline",
                help="Deploy the base model the fine-tune started from instead (for `phi3ft eval --baseline`), "
                "where it is offered as a serverless API in the project's region. Shows what it creates and "
                "asks first: it bills per token like the fine-tuned endpoint.",
            ),
        ] = False,
        yes: YesOpt = False,
        best: Annotated[
            bool,
            typer.Option(
                "--best",
                help="Deploy the best point (lowest validation loss) of a sweep: JOB names the sweep "
                "(default: the last one).",
            ),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print the steps deploy would run (resolve the model, create or re-attach the endpoint, "
                "wait); create nothing.",
            ),
        ] = False,
        config: ConfigPathOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        """Deploy the fine-tuned model as a serverless endpoint, wait until it is ready, print its URI.

        The model comes from JOB (default: the last job the ledger knows) or --model; --baseline deploys its base model instead, to compare with (`phi3ft eval --baseline`). The endpoint is recorded in the local ledger the moment Azure accepts it, so `phi3ft delete` can remove it; a re-run re-attaches instead of creating a second one. Keys are never printed or stored (see `phi3ft keys`). Exit 0 ready, 1 Azure error or failed provisioning, 4 prerequisite, 130 Ctrl+C (the endpoint keeps provisioning).
        """
        from phi3ft.errors import Interrupted, UsageError
        from phi3ft.polling import parse_duration
        from phi3ft.targets.azureml.endpoints import (
            DeployEvent,
            default_endpoint_name,
            deploy_endpoint,
            deploy_steps,
            resolve_model,
        )

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        try:
            seconds = parse_duration(timeout)
        except ValueError as exc:
            raise UsageError(f"--timeout: {exc}", "Examples: --timeout 90s, 30m, 2h.") from None
        if best:
            from phi3ft.cli.sweep import best_job_of

            if model:
                raise UsageError("--best and --model both name what to deploy; give one.")
            job = best_job_of(
                app_ctx, _store(app_ctx), job, lambda point: _open(app_ctx, config, auth, job=point)[0]
            )
        backend, store, cfg = _open(app_ctx, config, auth, job=job)
        store.wait_for_lock = not no_wait
        ref = resolve_model(store, backend, job=job, model=model)
        job_record = store.get("job", ref.job) if ref.job else None
        if baseline:
            from phi3ft.cli.baseline import deploy_baseline_command

            if content_safety is False:
                raise UsageError(
                    "The base-model endpoint always has content safety on.",
                    "Drop --no-content-safety: phi3ft deploy --baseline",
                )

            deploy_baseline_command(
                app_ctx, out, backend, store, cfg, ref, endpoint_name=endpoint_name, detach=detach,
                timeout=seconds, yes=yes, json=json, dry_run=dry_run,
            )  # fmt: skip
            return
        name = (
            endpoint_name
            or (cfg.deploy.endpoint_name if cfg is not None else None)
            or ((job_record or {}).get("endpoint_name"))
            or default_endpoint_name(ref, str((job_record or {}).get("project") or ""))
        )
        safety = (
            content_safety if content_safety is not None else (cfg.deploy.content_safety if cfg else True)
        )
        auth_mode = str(cfg.deploy.auth_mode) if cfg is not None else "key"
        ledger = {k: (job_record or {}).get(k) for k in ("project", "subscription_id", "resource_group")}
        if dry_run:
            steps = deploy_steps(
                ref, endpoint_name=name, content_safety=safety, auth_mode=auth_mode, wait=not detach
            )
            print_deploy_plan(out, name, steps, json=json)
            return

        def on_event(event: DeployEvent) -> None:
            if event.kind == "warning":
                out.warn(event.message)
            elif event.kind == "ready":
                out.success(event.message)
            else:
                out.info(event.message)

        try:
            result = deploy_endpoint(
                backend,
                store,
                ref,
                endpoint_name=name,
                content_safety=safety,
                auth_mode=auth_mode,
                tags={"phi3ft": "1", **({"phi3ft.job": ref.job} if ref.job else {})},
                wait=not detach,
                timeout=seconds,
                clock=app_ctx.clock,
                sleep=app_ctx.sleep,
                on_event=on_event,
                ledger_fields={k: v for k, v in ledger.items() if v},
            )
        except KeyboardInterrupt:
            raise Interrupted(
                f"Stopped waiting; endpoint {name} keeps provisioning in Azure.",
                f"Re-attach with `phi3ft deploy --endpoint-name {name}`, or remove it with "
                f"`phi3ft delete --endpoint {name} --yes`.",
            ) from None
        if json:
            out.emit_json(result.to_json())
            return
        if result.endpoint.scoring_uri:
            from phi3ft.cli.tables import print_line

            print_line(out, result.endpoint.scoring_uri)  # whole, never wrapped: it is copied
            held_out = _eval_data_arg(app_ctx, cfg or _recorded_config(app_ctx, job_record))
            score = f"   Score it: phi3ft eval {name} --data {held_out}" if held_out else ""
            out.hint(f'Try it: phi3ft invoke {name} "Hello"{score}')
        else:
            out.info(f"Endpoint {name} is {result.endpoint.provisioning_state}.")
            out.hint(f"Wait for it with `phi3ft deploy --endpoint-name {name}`.")

    # ---- keys ------------------------------------------------------------------------------------------
    @app.command("keys")
    def keys(
        ctx: typer.Context,
        endpoint: Annotated[str | None, typer.Argument(help="Endpoint (default: the last deployed).")] = None,
        show: Annotated[
            bool,
            typer.Option("--show", help="Print the keys themselves (they grant access: handle with care)."),
        ] = False,
        config: EndpointConfigOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Show whether the endpoint has keys; with --show, print them (never stored by phi3ft)."""
        from phi3ft.targets.azureml.endpoints import resolve_endpoint_name

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        name = resolve_endpoint_name(store, endpoint)
        backend, _, _ = _open(app_ctx, config, auth, endpoint=name, ledger_first=True)
        k = backend.get_endpoint_keys(name)

        def masked(value: str | None) -> str | None:
            return None if not value else f"hidden ({len(value)} characters; --show prints it)"

        if show:
            out.warn("Printing endpoint keys: anyone holding them can call (and bill) the endpoint.")
        data = {
            "endpoint": name,
            "primary_key": k.primary if show else masked(k.primary),
            "secondary_key": k.secondary if show else masked(k.secondary),
            "shown": show,
        }
        with out.unredacted() if show else contextlib.nullcontext():
            if json:
                out.emit_json(data)
                return
            out.print(f"primary:   {data['primary_key']}", markup=False)
            out.print(f"secondary: {data['secondary_key']}", markup=False)

    # ---- invoke ----------------------------------------------------------------------------------------
    @app.command("invoke")
    def invoke(
        ctx: typer.Context,
        args: Annotated[
            list[str], typer.Argument(metavar="[ENDPOINT] PROMPT", help="Endpoint (optional) and prompt.")
        ],
        system: Annotated[str | None, typer.Option("--system", help="System message.")] = None,
        max_tokens: Annotated[
            int, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
        ] = 256,
        temperature: Annotated[
            float | None, typer.Option("--temperature", min=0.0, max=2.0, help="Sampling temperature.")
        ] = None,
        path: PathOpt = "/v1/chat/completions",
        auth_header: AuthHeaderOpt = "bearer",
        config: EndpointConfigOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Send one prompt to the endpoint and print the answer (the smoke test)."""
        from phi3ft.errors import UsageError
        from phi3ft.targets.azureml import endpoints as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        if len(args) > 2:
            raise UsageError(
                "Too many arguments.", 'Quote the prompt: phi3ft invoke ENDPOINT "your question"'
            )
        endpoint, prompt = (args[0], args[1]) if len(args) == 2 else (None, args[0])
        store = _store(app_ctx)
        name = svc.resolve_endpoint_name(store, endpoint)
        backend, _, _ = _open(app_ctx, config, auth, endpoint=name, ledger_first=True)
        client = _chat_client(backend, name, path, auth_header, store)
        result = svc.invoke(client, prompt, system=system, max_tokens=max_tokens, temperature=temperature)
        if json:
            out.emit_json(
                {
                    "endpoint": name,
                    "answer": result.content,
                    "finish_reason": result.finish_reason,
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "latency_s": round(result.latency_s, 3),
                    "retries": result.retries,
                }
            )
            return
        out.print(result.content, markup=False)
        out.info(
            f"[dim]{result.prompt_tokens} prompt + {result.completion_tokens} completion tokens, "
            f"{result.latency_s:.2f} s[/dim]",
            markup=True,
        )

    # ---- chat ------------------------------------------------------------------------------------------
    @app.command("chat")
    def chat(
        ctx: typer.Context,
        endpoint: Annotated[str | None, typer.Argument(help="Endpoint (default: the last deployed).")] = None,
        system: Annotated[str | None, typer.Option("--system", help="System message.")] = None,
        max_tokens: Annotated[
            int, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
        ] = 512,
        path: PathOpt = "/v1/chat/completions",
        auth_header: AuthHeaderOpt = "bearer",
        config: EndpointConfigOpt = None,
        auth: AuthOpt = None,
    ) -> None:
        """Talk to the endpoint, keeping the conversation's history. /reset starts over, /exit (or Ctrl+D) ends."""
        import sys

        from phi3ft.errors import Phi3ftError
        from phi3ft.targets.azureml import endpoints as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.output
        store = _store(app_ctx)
        name = svc.resolve_endpoint_name(store, endpoint)
        backend, _, _ = _open(app_ctx, config, auth, endpoint=name, ledger_first=True)
        session = svc.ChatSession(
            _chat_client(backend, name, path, auth_header, store), system=system, max_tokens=max_tokens
        )
        out.info(f"Chatting with {name}. /reset starts over, /exit ends, /help lists the commands.")
        while True:
            if out.interactive:
                out.err.print("[bold]you>[/bold] ", end="")
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                session.reset()
                out.info("(conversation reset)")
                continue
            if text in ("/help", "/?"):  # answered here: never sent to the model
                out.info(_CHAT_HELP)
                continue
            if text.startswith("/") and " " not in text and text[1:].isalpha():
                out.info(f"Unknown command {text}. {_CHAT_HELP}")
                continue
            try:
                result = session.send(text)
            except Phi3ftError as exc:  # one failed turn does not end the conversation
                out.error(exc.message, exc.hint)
                continue
            out.print(result.content, markup=False)

    # ---- eval ------------------------------------------------------------------------------------------
    @app.command("eval")
    def eval_(
        ctx: typer.Context,
        endpoint: Annotated[str | None, typer.Argument(help="Endpoint (default: the last deployed).")] = None,
        base_endpoint: Annotated[
            str | None,
            typer.Argument(
                help="With --baseline: the base-model endpoint to compare with (default: the one "
                "`phi3ft deploy --baseline` created)."
            ),
        ] = None,
        data: Annotated[
            Path | None,
            typer.Option(
                "--data",
                help="Chat JSONL to score (default: job.yaml eval.data, else data.validation).",
                dir_okay=False,
            ),
        ] = None,
        concurrency: Annotated[
            int | None, typer.Option("--concurrency", min=1, max=64, help="Requests in flight (default 4).")
        ] = None,
        max_tokens: Annotated[
            int | None, typer.Option("--max-tokens", min=1, help="Longest answer (default 256).")
        ] = None,
        min_f1: Annotated[
            float | None,
            typer.Option(
                "--min-f1", min=0.0, max=1.0, help="Exit 1 when the mean token F1 is below this (CI gate)."
            ),
        ] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", min=1, help="Score only the first N examples.")
        ] = None,
        logprobs: Annotated[
            bool,
            typer.Option(
                "--logprobs/--no-logprobs",
                help="Ask for token log-probabilities to compute perplexity (dropped if the endpoint rejects it).",
            ),
        ] = True,
        baseline: Annotated[
            bool,
            typer.Option(
                "--baseline",
                help="Also score the base model on the same conversations and settings and compare: side by "
                "side metrics, win/tie/loss per example, the examples that differ most.",
            ),
        ] = False,
        min_gain: Annotated[
            tuple[str, float] | None,
            typer.Option(
                "--min-gain",
                metavar="METRIC DELTA",
                help="With --baseline, exit 1 unless fine-tuned beats base by DELTA: exact_match, f1 "
                "(fine-tuned - base), latency_p50, latency_p95, perplexity (lower is better: base - "
                "fine-tuned). E.g. --min-gain f1 0.05.",
                show_default=False,
            ),
        ] = None,
        show: Annotated[
            int,
            typer.Option("--show", min=0, help="With --baseline: print the N examples that differ most."),
        ] = 3,
        plot: Annotated[
            Path | None,
            typer.Option(
                "--plot", help="With --baseline: write a PNG chart of both score sets.", dir_okay=False
            ),
        ] = None,
        base_model: Annotated[
            str | None,
            typer.Option(
                "--base-model",
                metavar="DIR_OR_ID",
                help="With --baseline on a local or azureml-compute job: the base weights to load (a folder or a "
                "Hugging Face id; default: the job's base model).",
            ),
        ] = None,
        download_dir: Annotated[
            Path | None,
            typer.Option(
                "--download-dir",
                file_okay=False,
                help="With --baseline on an azureml-compute job: where the registered adapter is downloaded "
                "(into DIR/MODEL-VERSION; default .phi3ft/adapters/MODEL-VERSION; reused once downloaded).",
            ),
        ] = None,
        judge: Annotated[
            str | None,
            typer.Option(
                "--judge",
                metavar="DEPLOYMENT",
                help="With --baseline: also let this chat deployment judge each pair of answers, in both orders "
                "(position bias), keeping its rationale; the prompt ships with phi3ft (versioned).",
            ),
        ] = None,
        path: PathOpt = "/v1/chat/completions",
        auth_header: AuthHeaderOpt = "bearer",
        config: ConfigPathOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Score the endpoint on held-out conversations: exact match, token F1, latency p50/p95, errors.

        Each conversation's prompt is every turn before its last assistant turn; that turn is the reference. Answers are compared after SQuAD normalisation (lower case, no punctuation, no articles). 429s are retried honouring Retry-After. Perplexity is reported only when the endpoint returns log-probabilities; otherwise the report says why not. Exit 1 when --min-f1 is not met or no request succeeded.

        --baseline scores the base model too (BASE_ENDPOINT, default the one `phi3ft deploy --baseline` created; on the local backend, the base weights without the adapter; for an azureml-compute job, the adapter it registered, downloaded once into --download-dir, against its base weights on this machine) with the same prompts and settings, and prints both side by side with win/tie/loss per example; --min-gain METRIC DELTA is its gate (exit 1). --judge DEPLOYMENT adds a pairwise verdict per example from that chat deployment, asked in both orders.
        """
        from phi3ft import evaluation
        from phi3ft.errors import Phi3ftError, UsageError
        from phi3ft.targets.azureml import endpoints as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        if not baseline and (
            min_gain is not None
            or base_endpoint is not None
            or plot is not None
            or base_model is not None
            or download_dir is not None
            or judge is not None
        ):
            what = next(
                flag
                for flag, value in (("--min-gain", min_gain), ("--plot", plot), ("--base-model", base_model),
                                    ("--download-dir", download_dir), ("--judge", judge),
                                    ("BASE_ENDPOINT", base_endpoint))
                if value is not None
            )  # fmt: skip
            if what in ("--base-model", "--download-dir", "--judge"):
                example = "JUDGE_ENDPOINT" if what == "--judge" else "DIR"
                raise UsageError(
                    f"{what} is for the comparison with the base model and needs --baseline.",
                    f"Example: phi3ft eval --baseline {what} {example}",
                )
            raise UsageError(
                f"{what} compares with the base model and needs --baseline.",
                "Example: phi3ft eval --baseline --min-gain f1 0.05 (or --min-f1 0.6 for one endpoint).",
            )
        if baseline and min_f1 is not None:
            raise UsageError(
                "--min-f1 gates one endpoint; with --baseline the gate is --min-gain.",
                "Example: phi3ft eval --baseline --min-gain f1 0.05",
            )
        if min_gain is not None:
            from phi3ft.evaluate import parse_gain_metric

            parse_gain_metric(min_gain[0])
        if plot is not None and plot.suffix.lower() != ".png":
            raise UsageError(
                f"--plot writes a PNG; {plot} does not end in .png.", "Use e.g. --plot baseline.png."
            )
        store = _store(app_ctx)
        if baseline:  # a local job: the base model and its adapter, on this machine
            from phi3ft.cli.baseline import eval_local_baseline_command, local_baseline_job

            local_cfg = _config(app_ctx, config)
            local = local_baseline_job(store, local_cfg, endpoint)
            if local is not None:
                if base_endpoint is not None:
                    raise UsageError(
                        f"{local[0]} is a local job: its base model is compared locally, not an endpoint.",
                        f"Drop {base_endpoint}: phi3ft eval {local[0]} --baseline",
                    )
                if judge is not None:
                    raise UsageError(
                        f"--judge calls an Azure chat deployment; {local[0]} is a local job with no Azure project.",
                        f"Drop --judge: phi3ft eval {local[0]} --baseline",
                    )
                eval_local_baseline_command(
                    out, local[0], local[1], data=data, cfg=local_cfg, cwd=app_ctx.cwd, limit=limit,
                    max_tokens=max_tokens or (int(local_cfg.eval.max_tokens) if local_cfg is not None else 256),
                    concurrency=concurrency or (int(local_cfg.eval.concurrency) if local_cfg is not None else 1),
                    logprobs=logprobs, min_gain=min_gain, show=show, plot=plot, json=json,
                    base_override=base_model,
                )  # fmt: skip
                return
            from phi3ft.cli.baseline import compute_baseline_job, eval_compute_baseline_command

            on_cluster = compute_baseline_job(store, endpoint)
            if on_cluster is not None:
                if base_endpoint is not None:
                    raise UsageError(
                        f"{on_cluster[0]} ran on Azure ML compute: its adapter is compared with its base "
                        "weights on this machine, not with an endpoint.",
                        f"Drop {base_endpoint}: phi3ft eval {on_cluster[0]} --baseline",
                    )
                job_name = on_cluster[0]
                eval_compute_baseline_command(
                    out, job_name, on_cluster[1],
                    connect=lambda: _open(app_ctx, config, auth, job=job_name)[0],
                    state_dir=app_ctx.state_dir, download_dir=download_dir, base_override=base_model,
                    data=data, cfg=local_cfg, cwd=app_ctx.cwd, limit=limit,
                    max_tokens=max_tokens or (int(local_cfg.eval.max_tokens) if local_cfg is not None else 256),
                    concurrency=concurrency or (int(local_cfg.eval.concurrency) if local_cfg is not None else 1),
                    logprobs=logprobs, min_gain=min_gain, show=show, plot=plot, json=json, judge=judge,
                    chat_client=lambda backend, endpoint_name: _chat_client(backend, endpoint_name, path, auth_header),
                )  # fmt: skip
                return
            if download_dir is not None:
                raise UsageError(
                    "--download-dir is for the adapter of an azureml-compute job; this comparison is of two endpoints.",
                    "Drop --download-dir, or name the cluster job: phi3ft eval JOB --baseline --download-dir DIR",
                )
            if base_model is not None:
                raise UsageError(
                    "--base-model is for a local or azureml-compute job; this comparison is of two endpoints.",
                    "Drop --base-model, or name the job: phi3ft eval JOB --baseline --base-model DIR",
                )
        name = svc.resolve_endpoint_name(store, endpoint)
        backend, _, cfg = _open(app_ctx, config, auth, endpoint=name)
        ecfg = cfg.eval if cfg is not None else None
        path_data = data or (ecfg.data if ecfg is not None and ecfg.data else None)
        path_data = path_data or (cfg.data.validation if cfg is not None else None)
        if path_data is None:
            raise UsageError(
                "No evaluation data: --data not given, and no job.yaml names eval.data or data.validation.",
                f"Pass held-out chat JSONL: phi3ft eval {name} --data PATH/TO/validation.jsonl",
            )
        path_data = path_data if path_data.is_absolute() else app_ctx.cwd / path_data
        examples = evaluation.load_eval_examples(path_data, limit=limit)
        gate = min_f1
        if gate is None and ecfg is not None and ecfg.min_f1 is not None:
            gate = float(ecfg.min_f1)
        if baseline:
            from phi3ft.cli.baseline import eval_baseline_command

            eval_baseline_command(
                out, backend, store, name, base_endpoint, examples, data_path=path_data,
                client=lambda endpoint_name: _chat_client(backend, endpoint_name, path, auth_header, store),
                concurrency=concurrency or (int(ecfg.concurrency) if ecfg is not None else 4),
                max_tokens=max_tokens or (int(ecfg.max_tokens) if ecfg is not None else 256),
                logprobs=logprobs, min_gain=min_gain, show=show, plot=plot, json=json, clock=app_ctx.clock,
                cwd=app_ctx.cwd, judge=judge,
            )  # fmt: skip
            return
        client = _chat_client(backend, name, path, auth_header, store)

        def on_result(item: Any, done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                out.info(f"  {done}/{total} scored")

        out.info(f"Scoring {name} on {len(examples)} conversations from {path_data.name}")
        report = evaluation.evaluate(
            client,
            examples,
            endpoint=name,
            data_name=str(path_data),
            concurrency=concurrency or (int(ecfg.concurrency) if ecfg is not None else 4),
            max_tokens=max_tokens or (int(ecfg.max_tokens) if ecfg is not None else 256),
            logprobs=logprobs,
            min_f1=gate,
            clock=app_ctx.clock,
            on_result=on_result,
        )
        if json:
            out.emit_json(report.to_json())
        else:
            _render_eval(out, report)
        if report.scored == 0:
            raise Phi3ftError(
                f"No request succeeded ({report.errors} errors).",
                "Smoke-test the endpoint with `phi3ft invoke " + name + ' "Hello"` to see the error.',
            )
        if not report.passed:
            raise Phi3ftError(
                f"F1 {report.f1:.2f} < --min-f1 {gate:.2f}",
                "Improve the data or hyperparameters and fine-tune again, or lower the gate.",
            )

    # ---- delete ----------------------------------------------------------------------------------------
    @app.command("delete")
    def delete(
        ctx: typer.Context,
        job: Annotated[
            str | None, typer.Argument(help="Job whose resources to delete (default: the last one).")
        ] = None,
        endpoint: Annotated[
            list[str] | None, typer.Option("--endpoint", help="Delete this serverless endpoint (repeatable).")
        ] = None,
        model: Annotated[
            list[str] | None, typer.Option("--model", help="Delete this model, NAME:VERSION (repeatable).")
        ] = None,
        data: Annotated[bool, typer.Option("--data", help="Also the uploaded data assets.")] = False,
        project: Annotated[bool, typer.Option("--project", help="Also the project.")] = False,
        hub: Annotated[
            bool, typer.Option("--hub", help="Also the hub (with its storage account and key vault).")
        ] = False,
        all_: Annotated[
            bool, typer.Option("--all", help="Everything phi3ft created, per the local ledger.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Also delete named resources phi3ft did not create.")
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; delete nothing.")] = False,
        sweep: Annotated[
            bool,
            typer.Option(
                "--sweep",
                help="JOB names a sweep (default: the last one): every point's endpoints and model; running "
                "points are canceled.",
            ),
        ] = False,
        yes: YesOpt = False,
        config: ConfigPathOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        """Delete in the only order Azure accepts: endpoints, model, data assets, project, hub.

        Without flags: the job's endpoints and its fine-tuned model (what keeps costing money). Only resources phi3ft created (per the local ledger) are deleted unless --force. The model is truly deleted through the REST API (the SDK can only archive it); a model that still has an endpoint is refused until the endpoint goes. Data assets can only be archived; the project delete removes them. Already gone counts as success, so re-running is safe. Prints exactly what was deleted.
        """
        from phi3ft.errors import Phi3ftError
        from phi3ft.targets.azureml import endpoints as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        from phi3ft.connect import open_backend

        store = _store(app_ctx)
        store.wait_for_lock = not no_wait
        cfg = _config(app_ctx, config)
        backend = _LazyBackend(
            lambda: open_backend(
                app_ctx, cfg if cfg is not None else _target_from_ledger(store, job), auth=auth
            )
        )
        selection = svc.DeleteSelection(
            job=job,
            endpoints=tuple(endpoint or ()),
            models=tuple(model or ()),
            data=data,
            project=project,
            hub=hub,
            all=all_,
            force=force,
            project_name=cfg.azure.project.name if cfg is not None and cfg.azure else None,
            hub_name=cfg.azure.hub.name if cfg is not None and cfg.azure else None,
        )
        sweep_name = None
        if sweep:
            from phi3ft.cli.sweep import delete_plan_of_sweep

            sweep_name, plan = delete_plan_of_sweep(store, backend, selection)
        else:
            plan = svc.plan_delete(store, backend, selection)
        for step in plan.steps:
            if step.skip_reason:
                out.info(f"  skip   {step.kind:<8} {step.label}: {step.skip_reason}")
            elif dry_run or not yes:  # with --yes each resource is listed once, as it goes
                out.info(f"  {step.action:<6} {step.kind:<8} {step.label}")
        if dry_run or not plan.actions:
            if sweep_name and not dry_run:  # nothing of the sweep is left but its record
                from phi3ft.cli.sweep import forget_sweeps

                forget_sweeps(store, sweep_name)
            if json:
                out.emit_json({"dry_run": dry_run, "plan": plan.to_json(), "deleted": []})
            out.info("Dry run: nothing was deleted." if dry_run else "Nothing to delete.")
            return
        if not out.confirm(f"Delete {len(plan.actions)} resource(s) listed above?", assume_yes=yes):
            out.info("Nothing was deleted.")
            return
        outcomes: list[Any] = []

        def on_outcome(outcome: Any) -> None:
            # each resource once, as it goes: the result on stdout, why (archived, gone) on stderr
            outcomes.append(outcome)
            if outcome.result in ("skipped", "not-running") or json:
                return
            if outcome.result in ("deleted", "archived", "canceled"):
                out.print(f"{outcome.result} {outcome.step.kind} {outcome.step.label}", markup=False)
            if outcome.result != "deleted" and outcome.detail:
                out.info(f"  {outcome.step.kind} {outcome.step.label}: {outcome.detail}")

        try:
            svc.execute_delete(plan, backend, store, on_outcome=on_outcome)
        except Phi3ftError:
            _render_deleted(out, outcomes, json)
            raise
        if sweep_name or all_:  # the sweep records go with their points
            from phi3ft.cli.sweep import forget_sweeps

            forget_sweeps(store, sweep_name)
        _render_deleted(out, outcomes, json)


_CHAT_HELP = (
    "Commands: /reset starts a new conversation, /exit (or /quit, Ctrl+D) ends, /help shows this. "
    "Anything else is sent to the model."
)


def _recorded_config(app_ctx: Any, record: dict[str, Any] | None) -> Any:
    """The job.yaml the ledger says a job was submitted with, loaded without checking data files."""
    config = (record or {}).get("config")
    if not config or not Path(str(config)).is_file():
        return None
    from phi3ft.config import load_job_config
    from phi3ft.errors import Phi3ftError

    try:
        return load_job_config(Path(str(config)), env=app_ctx.env, check_files=False)
    except Phi3ftError:
        return None


def _eval_data_arg(app_ctx: Any, cfg: JobSpec | None) -> str | None:
    """The held-out file ``phi3ft eval`` would score, as a pasteable argument (relative to the cwd when
    inside it), or None when job.yaml names none."""
    import shlex

    if cfg is None:
        return None
    path = (cfg.eval.data if getattr(cfg.eval, "data", None) else None) or cfg.data.validation
    if path is None:
        return None
    path = Path(path)
    if not path.is_absolute():
        base = cfg.source.parent if cfg.source is not None else app_ctx.cwd
        path = base / path
    try:
        shown = str(path.resolve().relative_to(Path(app_ctx.cwd).resolve()))
    except ValueError:
        shown = str(path)
    return shlex.quote(shown)


def _render_deleted(out: Any, outcomes: list[Any], json: bool) -> None:
    gone = [o for o in outcomes if o.result in ("deleted", "archived", "canceled")]
    if json:
        out.emit_json(
            {
                "dry_run": False,
                "deleted": [o.to_json() for o in gone],
                "outcomes": [o.to_json() for o in outcomes],
            }
        )
        return
    # Each resource was listed once as it went (on_outcome); this is the summary. Archived is not deleted:
    # Azure ML keeps archived model/data versions until their project is deleted.
    counts = {r: sum(o.result == r for o in outcomes) for r in ("deleted", "archived", "canceled", "absent")}
    parts = [f"{counts['deleted']} deleted"]
    if counts["archived"]:
        parts.append(f"{counts['archived']} archived (kept by Azure until their project is deleted)")
    if counts["canceled"]:
        parts.append(f"{counts['canceled']} canceled")
    if counts["absent"]:
        parts.append(f"{counts['absent']} already gone")
    out.success(", ".join(parts))


def _render_eval(out: Any, report: Any) -> None:
    def fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
        return "n/a" if value is None else f"{value:{spec}}{unit}"

    rows = [
        ("examples", str(report.examples)),
        ("scored", str(report.scored)),
        ("errors", str(report.errors)),
        ("exact match", fmt(report.exact_match)),
        ("token F1", fmt(report.f1)),
        ("latency p50", fmt(report.latency_p50_s, ".2f", " s")),
        ("latency p95", fmt(report.latency_p95_s, ".2f", " s")),
        ("429 retries", str(report.retries)),
        ("perplexity", fmt(report.perplexity, ".2f")),
    ]
    for label, value in rows:
        out.print(f"{label:<12} {value}", markup=False)
    out.info(f"perplexity: {report.perplexity_note}")
    if report.min_f1 is not None:
        verdict = "pass" if report.passed else "FAIL"
        out.info(f"gate: F1 {fmt(report.f1, '.2f')} vs --min-f1 {report.min_f1:.2f}: {verdict}")
