"""The target-agnostic eval loop: held-out examples, the chat contract, the scoring loop and its report.

``phi3ft eval`` scores a serverless endpoint (:mod:`phi3ft.targets.azureml.endpoints` builds its chat
client), ``phi3ft eval --baseline`` scores a base model too, locally or on an endpoint
(:mod:`phi3ft.baseline`, :mod:`phi3ft.train.compare`): all of them go through :func:`evaluate` over any
:class:`ChatBackend`. The arithmetic (token F1, exact match, percentiles, perplexity) is
:mod:`phi3ft.evaluate`'s; nothing here imports a target or Azure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phi3ft.errors import DataError, Phi3ftError, UsageError
from phi3ft.evaluate import exact_match, percentile, perplexity, token_f1


@dataclass
class ChatResult:
    """One chat completion (an endpoint's or the local model's): the answer, token usage, wall latency, retries spent, optional log-probs."""

    content: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    retries: int = 0
    token_logprobs: list[float] | None = None
    model: str | None = None


class ChatBackend(Protocol):
    """What a chat client offers: an endpoint's ``ChatClient`` (the Azure ML adapter), the local
    ``LocalChatClient`` (:mod:`phi3ft.train.compare`) or a test fake."""

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        logprobs: bool = False,
    ) -> Any: ...


@dataclass(frozen=True)
class EvalExample:
    line: int
    prompt: list[dict[str, str]]
    reference: str


def load_eval_examples(path: Path, *, limit: int | None = None) -> list[EvalExample]:
    """Each conversation's prompt is every turn before its last assistant turn; that turn is the reference.

    The file is read by the one JSONL reader (:func:`phi3ft.data.records.read_records`): BOM, CRLF, blank
    lines and encoding as ``validate`` reads them."""
    from phi3ft.data.records import read_records

    if not Path(path).exists():
        raise DataError(f"{path} does not exist.", "Pass the validation JSONL with --data.")
    hint = f"Check the file with `phi3ft validate {path}`."
    examples: list[EvalExample] = []
    for rec in read_records(Path(path), hint=hint):
        number = rec.line
        messages = rec.value.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise DataError(f"{path}:{number}: no 'messages' list.", hint)
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            raise DataError(
                f"{path}:{number}: no assistant turn after a prompt to compare with.",
                f"Every conversation needs a final assistant answer; check with `phi3ft validate {path}`.",
            )
        prompt = [
            {"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in messages[:last]
        ]
        examples.append(EvalExample(number, prompt, str(messages[last].get("content") or "")))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{path} has no conversations.", "Pass the validation JSONL with --data.")
    return examples


@dataclass
class ExampleScore:
    line: int
    exact_match: bool | None = None
    f1: float | None = None
    latency_s: float | None = None
    retries: int = 0
    answer: str | None = None
    error: str | None = None
    completion_tokens: int | None = None


@dataclass
class EvalReport:
    endpoint: str
    data: str
    examples: int
    scored: int
    errors: int
    exact_match: float | None
    f1: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    retries: int
    prompt_tokens: int
    completion_tokens: int
    perplexity: float | None
    perplexity_note: str
    wall_s: float
    concurrency: int
    min_f1: float | None = None
    results: list[ExampleScore] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.min_f1 is None or (self.f1 is not None and self.f1 >= self.min_f1)

    def to_json(self, *, with_examples: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data.pop("results")
        data["passed"] = self.passed
        if with_examples:
            data["results"] = [asdict(r) for r in self.results]
        return data


def _is_logprobs_rejection(exc: Phi3ftError) -> bool:
    return getattr(exc, "status_code", None) in (400, 422)


def evaluate(
    client: ChatBackend,
    examples: Sequence[EvalExample],
    *,
    endpoint: str = "",
    data_name: str = "",
    concurrency: int = 4,
    max_tokens: int | None = 256,
    temperature: float | None = 0.0,
    logprobs: bool = True,
    min_f1: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_result: Callable[[ExampleScore, int, int], None] | None = None,
) -> EvalReport:
    """Score the endpoint on ``examples`` with at most ``concurrency`` requests in flight.

    429s are retried inside the client (honouring ``Retry-After``); an example that still fails counts in
    ``errors`` and not in the averages. Perplexity is computed from the log-probabilities of the tokens
    the endpoint generated, when it returns them; otherwise the report says why not.
    """
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.")
    start = clock()
    state = {"logprobs": logprobs, "rejected": False}
    lock = threading.Lock()
    token_logprobs: list[float] = []
    answers_with_logprobs = 0
    results: list[ExampleScore] = []
    usage = {"prompt": 0, "completion": 0}

    def score(example: EvalExample) -> ExampleScore:
        nonlocal answers_with_logprobs
        want = bool(state["logprobs"])
        try:
            try:
                result = client.complete(
                    example.prompt, max_tokens=max_tokens, temperature=temperature, logprobs=want
                )
            except Phi3ftError as exc:
                if not (want and _is_logprobs_rejection(exc)):
                    raise
                with lock:  # the endpoint does not take `logprobs`: stop asking
                    state["logprobs"] = False
                    state["rejected"] = True
                result = client.complete(example.prompt, max_tokens=max_tokens, temperature=temperature)
        except Phi3ftError as exc:
            return ExampleScore(example.line, error=exc.message)
        with lock:
            usage["prompt"] += int(result.prompt_tokens or 0)
            usage["completion"] += int(result.completion_tokens or 0)
            if result.token_logprobs:
                token_logprobs.extend(result.token_logprobs)
                answers_with_logprobs += 1
        return ExampleScore(
            example.line,
            exact_match=exact_match(result.content, example.reference),
            f1=token_f1(result.content, example.reference),
            latency_s=result.latency_s,
            retries=result.retries,
            answer=result.content,
            completion_tokens=result.completion_tokens,
        )

    total = len(examples)

    def done(item: ExampleScore) -> None:
        results.append(item)
        if on_result is not None:
            on_result(item, len(results), total)

    remaining = list(examples)
    if remaining and logprobs:
        done(score(remaining.pop(0)))  # probe: learn whether the endpoint takes `logprobs` before fanning out
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="phi3ft-eval") as pool:
        futures = [pool.submit(score, ex) for ex in remaining]
        for future in as_completed(futures):
            done(future.result())
    results.sort(key=lambda r: r.line)

    ok = [r for r in results if r.error is None]
    latencies = [r.latency_s for r in ok if r.latency_s is not None]
    ppl = perplexity(token_logprobs)
    if token_logprobs:
        note = (
            f"exp(mean negative log-probability) over {len(token_logprobs)} generated tokens of "
            f"{answers_with_logprobs} answers (the model's own answers, not the references: chat "
            "completions cannot score a given text)"
        )
    elif not logprobs:
        note = "not computed: log-probabilities were not requested (--no-logprobs)"
    elif state["rejected"]:
        note = "not computed: the endpoint rejected the `logprobs` parameter, so it cannot return log-probabilities"
    elif not ok:
        note = "not computed: no request succeeded"
    else:
        note = (
            "not computed: the endpoint returned no log-probabilities (serverless chat completions need them "
            "to compute perplexity); exact match and token F1 are reported instead"
        )
    return EvalReport(
        endpoint=endpoint,
        data=data_name,
        examples=total,
        scored=len(ok),
        errors=total - len(ok),
        exact_match=(sum(1 for r in ok if r.exact_match) / len(ok)) if ok else None,
        f1=(sum(r.f1 or 0.0 for r in ok) / len(ok)) if ok else None,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        retries=sum(r.retries for r in results),
        prompt_tokens=usage["prompt"],
        completion_tokens=usage["completion"],
        perplexity=ppl,
        perplexity_note=note,
        wall_s=clock() - start,
        concurrency=concurrency,
        min_f1=min_f1,
        results=results,
    )
