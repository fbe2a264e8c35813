"""Rendering and plumbing of ``phi3ft deploy --baseline`` and ``phi3ft eval --baseline``.

Thin like the rest of the CLI: the services are :mod:`phi3ft.baseline` (which base model, is it offered,
deploy it, compare) and :mod:`phi3ft.evaluate` (the arithmetic). Nothing here imports Azure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phi3ft.config import JobSpec


def _region(backend: Any, job_record: dict[str, Any] | None) -> str:
    location = (job_record or {}).get("location")
    if location:
        return str(location)
    if hasattr(backend, "project_location"):
        return str(backend.project_location())
    return ""


def deploy_baseline_command(
    app_ctx: Any,
    out: Any,
    backend: Any,
    store: Any,
    cfg: JobSpec | None,
    ref: Any,
    *,
    endpoint_name: str | None,
    detach: bool,
    timeout: float | None,
    yes: bool,
    json: bool,
    dry_run: bool = False,
) -> None:
    from phi3ft import baseline as svc
    from phi3ft.errors import Interrupted
    from phi3ft.targets.azureml.endpoints import DeployEvent, default_endpoint_name

    job_record = store.get("job", ref.job) if ref.job else None
    base = svc.resolve_base_model(store, ref, cfg)
    region = _region(backend, job_record)
    registry = (
        backend.resolve_registry_model(base.name, base.version)
        if hasattr(backend, "resolve_registry_model")
        else None
    )
    if registry is None and hasattr(backend, "resolve_registry_model"):
        offer = svc.BaseOffer(False, f"{base.label} is not in the {base.registry} registry", "registry")
    else:
        offer = svc.serverless_offer(base, region, registry.tags if registry is not None else None)
    svc.require_offer(offer)
    project = str((job_record or {}).get("project") or "")
    name = endpoint_name or svc.default_baseline_name(base, project)
    ft_endpoint = (
        (cfg.deploy.endpoint_name if cfg is not None else None)
        or (job_record or {}).get("endpoint_name")
        or default_endpoint_name(ref, project)
    )
    if dry_run:
        from phi3ft.cli.deploy import print_deploy_plan
        from phi3ft.targets.azureml.endpoints import ModelRef, deploy_steps

        base_ref = ModelRef(base.name, base.version or "1", ref.job, created_by_phi3ft=False)
        steps = deploy_steps(base_ref, endpoint_name=name, wait=not detach, model_id=base.model_id)
        print_deploy_plan(out, name, steps, json=json)
        return
    existing = backend.get_endpoint(name)
    if existing is None:
        out.info(f"Will create serverless endpoint {name} in {region or 'the project region'}:")
        out.info(f"  model           {base.model_id} (the base of {ref})")
        out.info("  content safety  on")
        out.info(f"  why             {offer.reason}")
        out.info(
            "It bills per token while it exists, like the fine-tuned endpoint; "
            f"`phi3ft delete --endpoint {name} --yes` (or `delete --all`) removes it."
        )
        if not out.confirm(f"Create base-model endpoint {name}?", assume_yes=yes):
            out.info("Nothing was created.")
            return
    ledger = {k: (job_record or {}).get(k) for k in ("project", "subscription_id", "resource_group")}

    def on_event(event: DeployEvent) -> None:
        if event.kind == "warning":
            out.warn(event.message)
        elif event.kind == "ready":
            out.success(event.message)
        else:
            out.info(event.message)

    try:
        result = svc.deploy_baseline(
            backend,
            store,
            base,
            endpoint_name=name,
            fine_tuned=ref,
            for_endpoint=ft_endpoint,
            tags={"phi3ft": "1", "phi3ft.baseline": "1", **({"phi3ft.job": ref.job} if ref.job else {})},
            wait=not detach,
            timeout=timeout,
            clock=app_ctx.clock,
            sleep=app_ctx.sleep,
            on_event=on_event,
            ledger_fields={k: v for k, v in ledger.items() if v},
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"Stopped waiting; endpoint {name} keeps provisioning in Azure.",
            f"Re-attach with `phi3ft deploy --baseline --endpoint-name {name}`, or remove it with "
            f"`phi3ft delete --endpoint {name} --yes`.",
        ) from None
    if json:
        out.emit_json(
            {**result.to_json(), "baseline": True, "base_model": base.model_id, "offer": offer.reason}
        )
        return
    if result.endpoint.scoring_uri:
        out.print(result.endpoint.scoring_uri)
        out.hint(f"Compare: phi3ft eval {ft_endpoint} --baseline {name} --data validation.jsonl")
    else:
        out.info(f"Endpoint {name} is {result.endpoint.provisioning_state}.")
        out.hint(f"Wait for it with `phi3ft deploy --baseline --endpoint-name {name}`.")


def eval_baseline_command(
    out: Any,
    backend: Any,
    store: Any,
    fine_tuned: str,
    base_endpoint: str | None,
    examples: Sequence[Any],
    *,
    data_path: Path,
    client: Callable[[str], Any],
    concurrency: int,
    max_tokens: int,
    logprobs: bool,
    min_gain: tuple[str, float] | None,
    show: int,
    plot: Path | None,
    json: bool,
    clock: Callable[[], float],
    cwd: Path,
    judge: str | None = None,
) -> None:
    from phi3ft import baseline as svc
    from phi3ft.errors import Phi3ftError, PrerequisiteError

    base_name = base_endpoint or svc.find_baseline_endpoint(store, fine_tuned)
    if not base_name:
        raise PrerequisiteError(
            f"No base-model endpoint to compare {fine_tuned} with.",
            f"Create one with `phi3ft deploy --baseline`, or name one: phi3ft eval {fine_tuned} --baseline BASE_ENDPOINT.",
        )
    if base_name == fine_tuned:
        from phi3ft.errors import UsageError

        raise UsageError(
            f"--baseline compares two endpoints; {fine_tuned} was named twice.",
            "Name the fine-tuned endpoint first, then the base one: phi3ft eval FT_ENDPOINT --baseline BASE_ENDPOINT.",
        )
    check_judge(judge, (fine_tuned, base_name))

    def on_result(which: str, item: Any, done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            out.info(f"  {which}: {done}/{total} scored")

    out.info(
        f"Scoring {fine_tuned} (fine-tuned) and {base_name} (base) on {len(examples)} conversations from {data_path.name}"
    )
    report = svc.compare_endpoints(
        client,
        fine_tuned,
        base_name,
        examples,
        data_name=str(data_path),
        concurrency=concurrency,
        max_tokens=max_tokens,
        logprobs=logprobs,
        show=show,
        min_gain=min_gain,
        clock=clock,
        on_result=on_result,
    )
    if judge:
        run_judge(out, report, examples, judge, client(judge), concurrency=concurrency)
    finish_baseline_report(out, report, plot=plot, json=json, cwd=cwd)
    if report.fine_tuned.scored == 0 or report.base.scored == 0:
        which = fine_tuned if report.fine_tuned.scored == 0 else base_name
        raise Phi3ftError(
            f"No request to {which} succeeded.",
            f'Smoke-test it with `phi3ft invoke {which} "Hello"` to see the error.',
        )
    gate = report.gate
    if gate is not None and not gate.passed:
        raise Phi3ftError(
            f"--min-gain not met: {gate.describe()}",
            "Improve the data or hyperparameters and fine-tune again, or lower the gate.",
        )


def finish_baseline_report(out: Any, report: Any, *, plot: Path | None, json: bool, cwd: Path) -> None:
    """JSON or the side-by-side table, and the chart (shared by the serverless and local comparisons)."""
    if plot is not None:
        from phi3ft.charts import write_baseline_chart

        target = plot if plot.is_absolute() else cwd / plot
        write_baseline_chart(report.to_json(), target)
        out.info(f"Chart written to {target}")
    if json:
        out.emit_json(report.to_json())
    else:
        render_baseline(out, report)


def render_baseline(out: Any, report: Any) -> None:
    ft, base = report.fine_tuned, report.base

    def fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
        return "n/a" if value is None else f"{value:{spec}}{unit}"

    def diff(a: float | None, b: float | None, spec: str = "+.3f", unit: str = "") -> str:
        return "" if a is None or b is None else f"{a - b:{spec}}{unit}"

    rows = [
        ("", "fine-tuned", "base", "diff"),
        ("endpoint", ft.endpoint, base.endpoint, ""),
        ("scored", f"{ft.scored}/{ft.examples}", f"{base.scored}/{base.examples}", ""),
        ("errors", str(ft.errors), str(base.errors), ""),
        ("exact match", fmt(ft.exact_match), fmt(base.exact_match), diff(ft.exact_match, base.exact_match)),
        ("token F1", fmt(ft.f1), fmt(base.f1), diff(ft.f1, base.f1)),
        (
            "latency p50",
            fmt(ft.latency_p50_s, ".2f", " s"),
            fmt(base.latency_p50_s, ".2f", " s"),
            diff(ft.latency_p50_s, base.latency_p50_s, "+.2f", " s"),
        ),
        (
            "latency p95",
            fmt(ft.latency_p95_s, ".2f", " s"),
            fmt(base.latency_p95_s, ".2f", " s"),
            diff(ft.latency_p95_s, base.latency_p95_s, "+.2f", " s"),
        ),
        (
            "output tokens",
            str(ft.completion_tokens),
            str(base.completion_tokens),
            f"{ft.completion_tokens - base.completion_tokens:+d}",
        ),
        (
            "perplexity",
            fmt(ft.perplexity, ".2f"),
            fmt(base.perplexity, ".2f"),
            diff(ft.perplexity, base.perplexity, "+.2f"),
        ),
    ]
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for label, a, b, d in rows:
        line = f"{label:<14} {a:<{w1}}  {b:<{w2}}  {d}".rstrip()
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    c = report.counts

    def n(count: int, one: str, many: str) -> str:
        return f"{count} {one if count == 1 else many}"

    out.print(
        f"per example (token F1, ties within {report.epsilon:g}): {n(c['win'], 'win', 'wins')}, "
        f"{n(c['tie'], 'tie', 'ties')}, {n(c['loss'], 'loss', 'losses')}"
        + (f", {n(c['error'], 'error', 'errors')}" if c["error"] else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if ft.perplexity is None and base.perplexity is None:
        out.info(f"perplexity: {ft.perplexity_note}")
    if report.differences:
        out.print("where they differ most:", markup=False)
        for d in report.differences:
            prompt = next((m["content"] for m in reversed(d.prompt) if m.get("role") == "user"), "")
            out.print(
                f"  line {d.line}: {d.verdict}, token F1 fine-tuned {fmt(d.f1_fine_tuned, '.2f')}, "
                f"base {fmt(d.f1_base, '.2f')}",
                markup=False,
                highlight=False,
            )
            for label, text in (
                ("prompt", prompt),
                ("reference", d.reference),
                ("fine-tuned", d.fine_tuned_answer or ""),
                ("base", d.base_answer or ""),
            ):
                out.print(f"    {label:<11} {text}", markup=False, highlight=False, soft_wrap=True)
    judged = report.extra.get("judge")
    if judged:
        render_judge(out, judged)
    if report.gate is not None:
        out.info(f"gate: {report.gate.describe()}: {'pass' if report.gate.passed else 'FAIL'}")


# ---- --judge DEPLOYMENT: pairwise judgement by a chat deployment, both orders -------------------------


def check_judge(judge: str | None, compared: Sequence[str]) -> None:
    """A judge is a third deployment: one that wrote the answers would judge its own."""
    from phi3ft.errors import UsageError

    if judge and judge.lower() in {c.lower() for c in compared}:
        raise UsageError(
            f"--judge {judge} is one of the two models being compared; it would judge its own answers.",
            "Name another chat deployment: phi3ft eval --baseline --judge JUDGE_ENDPOINT",
        )


def run_judge(
    out: Any, report: Any, examples: Sequence[Any], judge: str, client: Any, *, concurrency: int
) -> None:
    """Judge every example both sides answered, in both orders; the result goes to ``report.extra``."""
    from phi3ft.errors import Phi3ftError
    from phi3ft.judge import JUDGE_PROMPT_VERSION, judge_pairs, pairs_from_report

    pairs = pairs_from_report(report, examples)
    out.info(f"Judging {len(pairs)} pairs with {judge} (prompt {JUDGE_PROMPT_VERSION}, both orders)")

    def on_result(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            out.info(f"  judge: {done}/{total} replies")

    judged = judge_pairs(client, judge, pairs, concurrency=concurrency, on_result=on_result)
    report.extra["judge"] = judged.to_json()
    if pairs and judged.counts.get("error", 0) == len(pairs):
        first = next((c.error for v in judged.verdicts for c in v.calls if c.error), None)
        raise Phi3ftError(
            f"The judge {judge} gave no usable verdict" + (f": {first}" if first else "."),
            f'Smoke-test it with `phi3ft invoke {judge} "Hello"`; it must reply with a JSON object naming a winner.',
        )


def render_judge(out: Any, judged: dict[str, Any]) -> None:
    c = judged["counts"]
    rate = judged.get("win_rate")
    out.print(
        f"judge {judged['deployment']} (prompt {judged['prompt_version']}, both orders): {c['win']} won, "
        f"{c['tie']} tied, {c['loss']} lost"
        + (f", {c['error']} not judged" if c.get("error") else "")
        + (f"; win rate {rate:.2f}" if rate is not None else "")
        + f"; {judged['inconsistent']} changed with the order, position A preferred in "
        f"{judged['position_a_preferred']}/{judged['decisive_replies']} decisive replies",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for v in judged["verdicts"]:
        reasons = [o["rationale"] for o in v["orders"] if o.get("rationale")]
        if reasons:
            note = "" if v["consistent"] else " (the two orders disagreed)"
            out.print(
                f"  line {v['line']}: {v['verdict']}{note}: {reasons[0]}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


# ---- local backend: the base model and the trained adapter on this machine -----------------------------


def local_baseline_job(store: Any, cfg: JobSpec | None, job: str | None) -> tuple[str, dict[str, Any]] | None:
    """``(job name, ledger record)`` when ``eval --baseline`` is about a local job, else ``None``."""
    from phi3ft.errors import NotFoundError
    from phi3ft.records import JobRecord

    local_cfg = cfg is not None and cfg.runs_locally
    name = job or store.last_job
    record = store.get("job", name) if name else None
    if record is not None and JobRecord.parse(record).runs_locally:
        return str(name), dict(record)
    if local_cfg:
        raise NotFoundError(
            f"The local ledger has no local job {name}." if name else "The local ledger has no local job.",
            "Train one first: `phi3ft submit` (backend: local), then `phi3ft eval --baseline JOB`.",
        )
    return None


def eval_local_baseline_command(
    out: Any,
    job: str,
    record: dict[str, Any],
    *,
    data: Path | None,
    cfg: JobSpec | None,
    cwd: Path,
    limit: int | None,
    max_tokens: int,
    concurrency: int,
    logprobs: bool,
    min_gain: tuple[str, float] | None,
    show: int,
    plot: Path | None,
    json: bool,
    base_override: str | None = None,
) -> None:
    from phi3ft.catalog import get_profile
    from phi3ft.errors import PrerequisiteError, UsageError
    from phi3ft.evaluation import load_eval_examples
    from phi3ft.targets.local import OPTIONS_FILE

    job_dir = Path(str(record.get("job_dir") or ""))
    options_file = job_dir / OPTIONS_FILE
    if not options_file.is_file():
        raise PrerequisiteError(
            f"Local job {job} has no {OPTIONS_FILE} in {job_dir}.",
            "Run from the folder where you ran `phi3ft submit` (or set PHI3FT_STATE_DIR).",
        )
    from phi3ft.train.types import TrainOptions

    options = TrainOptions.model_validate_json(options_file.read_text(encoding="utf-8"))
    profile = get_profile(options.model)
    ecfg = cfg.eval if cfg is not None else None
    path = data or (ecfg.data if ecfg is not None and ecfg.data else None)
    path = path or (cfg.data.validation if cfg is not None else None) or options.validation_file
    if path is None:
        raise UsageError("No evaluation data.", "Pass --data validation.jsonl.")
    path = path if path.is_absolute() else cwd / path
    examples = load_eval_examples(path, limit=limit)
    base_model = (
        base_override or options.settings.base_model or str(record.get("model_id") or profile.hf_repo)
    )
    adapter_dir = Path(str(record.get("adapter_dir") or Path(str(record.get("output_dir"))) / "adapter"))
    compare_adapter_locally(
        out, job, base_model, adapter_dir, examples, path,
        template=profile.template, tokenizer=options.settings.tokenizer, device=options.device,
        backend="local", extra={}, cwd=cwd, max_tokens=max_tokens, concurrency=concurrency,
        logprobs=logprobs, min_gain=min_gain, show=show, plot=plot, json=json,
    )  # fmt: skip


def compare_adapter_locally(
    out: Any,
    job: str,
    base_model: str,
    adapter_dir: Path,
    examples: Sequence[Any],
    path: Path,
    *,
    template: str,
    tokenizer: Path | None,
    device: str,
    backend: str,
    extra: dict[str, Any],
    cwd: Path,
    max_tokens: int,
    concurrency: int,
    logprobs: bool,
    min_gain: tuple[str, float] | None,
    show: int,
    plot: Path | None,
    json: bool,
    judge: str | None = None,
    judge_client: Callable[[str], Any] | None = None,
) -> None:
    """The base weights and ``adapter_dir`` on this machine, scored like two endpoints (local and compute)."""
    from phi3ft import baseline as svc
    from phi3ft.errors import Phi3ftError
    from phi3ft.train.compare import load_pair

    out.info(f"Loading {base_model} and the adapter of {job} ({device})")
    ft_client, base_client = load_pair(
        base_model=base_model,
        adapter_dir=adapter_dir,
        template=template,
        tokenizer_path=tokenizer,
        device=device,
    )

    def on_result(which: str, item: Any, done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            out.info(f"  {which}: {done}/{total} generated")

    names = (f"{job} (adapter)", f"{base_model} (base)")
    report = svc.compare(
        ft_client,
        base_client,
        examples,
        names=names,
        data_name=str(path),
        concurrency=concurrency,
        max_tokens=max_tokens,
        logprobs=logprobs,
        show=show,
        min_gain=min_gain,
        on_result=on_result,
    )
    report.extra["backend"] = backend
    report.extra.update(extra)
    if judge and judge_client is not None:
        run_judge(out, report, examples, judge, judge_client(judge), concurrency=concurrency)
    finish_baseline_report(out, report, plot=plot, json=json, cwd=cwd)
    gate = report.gate
    if gate is not None and not gate.passed:
        raise Phi3ftError(
            f"--min-gain not met: {gate.describe()}",
            "Improve the data or hyperparameters and train again, or lower the gate.",
        )


# ---- azureml-compute: the adapter the cluster job registered, downloaded, against its base -------------


def compute_baseline_job(store: Any, job: str | None) -> tuple[str, dict[str, Any]] | None:
    """``(job name, ledger record)`` when ``eval --baseline`` is about an ``azureml-compute`` job."""
    name = job or store.last_job
    record = store.get("job", name) if name else None
    if record is not None and record.get("backend") == "azureml-compute":
        return str(name), dict(record)
    return None


def eval_compute_baseline_command(
    out: Any,
    job: str,
    record: dict[str, Any],
    *,
    connect: Callable[[], Any],
    state_dir: Path,
    download_dir: Path | None,
    base_override: str | None,
    data: Path | None,
    cfg: JobSpec | None,
    cwd: Path,
    limit: int | None,
    max_tokens: int,
    concurrency: int,
    logprobs: bool,
    min_gain: tuple[str, float] | None,
    show: int,
    plot: Path | None,
    json: bool,
    judge: str | None = None,
    chat_client: Callable[[Any, str], Any] | None = None,
) -> None:
    """Download the model the cluster job registered (once), then compare it with its base on this machine."""
    from phi3ft.catalog import get_profile
    from phi3ft.errors import NotFoundError, UsageError
    from phi3ft.evaluation import load_eval_examples
    from phi3ft.targets.azureml.remote_adapter import download_folder, fetch_job_adapter

    ecfg = cfg.eval if cfg is not None else None
    path = data or (ecfg.data if ecfg is not None and ecfg.data else None)
    path = path or (cfg.data.validation if cfg is not None else None)
    if path is None:
        raise UsageError(
            "No evaluation data.",
            f"Pass --data validation.jsonl: phi3ft eval {job} --baseline --data validation.jsonl",
        )
    path = path if path.is_absolute() else cwd / path
    examples = load_eval_examples(path, limit=limit)
    base_model = base_override or str(record.get("model_id") or "")
    try:
        profile = cfg.profile if cfg is not None else get_profile(str(record.get("model_id") or ""))
    except NotFoundError:
        raise UsageError(
            f"Job {job} trained {record.get('model_id')}, which is not a catalog model; its chat template is unknown.",
            f"Run from the folder of the job.yaml it was submitted with, or pass it: phi3ft eval {job} --baseline -c job.yaml",
        ) from None
    if not base_model:
        base_model = profile.hf_repo
    model = str(record.get("output_model_name") or job)
    version = str(record.get("output_model_version") or "1")
    parent = None
    if download_dir is not None:
        parent = download_dir if download_dir.is_absolute() else cwd / download_dir
    folder = download_folder(state_dir, model, version, parent)
    fetched = fetch_job_adapter(connect, job, record, folder=folder)
    verb = "Downloaded" if fetched.downloaded else "Using the adapter downloaded earlier:"
    out.info(f"{verb} model {fetched.model}:{fetched.version} (job {job}) in {fetched.folder}")
    tokenizer = cfg.training.tokenizer if cfg is not None else None
    compare_adapter_locally(
        out, job, base_model, fetched.adapter_dir, examples, path,
        template=profile.template, tokenizer=tokenizer, device="auto", backend="azureml-compute",
        extra={"model": f"{fetched.model}:{fetched.version}", "adapter_dir": str(fetched.adapter_dir),
               "downloaded": fetched.downloaded},
        cwd=cwd, max_tokens=max_tokens, concurrency=concurrency, logprobs=logprobs, min_gain=min_gain,
        show=show, plot=plot, json=json, judge=judge,
        judge_client=(lambda name: chat_client(connect(), name)) if chat_client is not None else None,
    )  # fmt: skip
