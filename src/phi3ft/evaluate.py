"""Pure scoring for ``phi3ft eval``: token F1, exact match, percentiles, perplexity, and the baseline
comparison (per-example verdicts, the examples that differ most, the ``--min-gain`` gate).

No I/O and no Azure: every function takes plain values and returns plain values, so one score set (an
endpoint, a local model) and two score sets (fine-tuned against base) share the same arithmetic.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phi3ft.errors import UsageError

_PUNCT = set(string.punctuation) | {"«", "»", "’", "‘", "“", "”", "…", "¿", "¡"}
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)

#: Two answers whose token F1 differ by at most this much count as a tie.
TIE_EPSILON = 0.01


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no English articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1: overlap of normalised tokens (bag of words with counts)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def perplexity(token_logprobs: Sequence[float]) -> float | None:
    """``exp(mean negative log-probability)``; ``None`` without tokens."""
    if not token_logprobs:
        return None
    return math.exp(-sum(token_logprobs) / len(token_logprobs))


def mean(values: Sequence[float]) -> float | None:
    return (sum(values) / len(values)) if values else None


# ---- baseline comparison -------------------------------------------------------------------------------

#: ``--min-gain`` metrics: report key, and whether higher is better. For lower-is-better metrics the gain
#: is base - fine-tuned, so a positive DELTA always means "the fine-tune must be better by this much".
GAIN_METRICS: dict[str, tuple[str, bool]] = {
    "exact_match": ("exact_match", True),
    "f1": ("f1", True),
    "latency_p50": ("latency_p50_s", False),
    "latency_p95": ("latency_p95_s", False),
    "perplexity": ("perplexity", False),
}
GAIN_ALIASES = {"em": "exact_match", "token_f1": "f1", "p50": "latency_p50", "p95": "latency_p95"}


@dataclass(frozen=True)
class Verdict:
    """One example, both answers: ``win`` when the fine-tune's token F1 beats the base's by more than
    the tie epsilon, ``loss`` the other way, ``tie`` within it, ``error`` when either request failed."""

    line: int
    verdict: str  # win | tie | loss | error
    f1_fine_tuned: float | None
    f1_base: float | None

    @property
    def delta(self) -> float:
        if self.f1_fine_tuned is None or self.f1_base is None:
            return 0.0
        return self.f1_fine_tuned - self.f1_base

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "verdict": self.verdict,
            "f1_fine_tuned": self.f1_fine_tuned,
            "f1_base": self.f1_base,
            "delta_f1": None if self.verdict == "error" else round(self.delta, 6),
        }


def verdict(f1_fine_tuned: float | None, f1_base: float | None, epsilon: float = TIE_EPSILON) -> str:
    if f1_fine_tuned is None or f1_base is None:
        return "error"
    diff = f1_fine_tuned - f1_base
    if abs(diff) <= epsilon:
        return "tie"
    return "win" if diff > 0 else "loss"


def verdicts(
    fine_tuned: Mapping[int, float | None], base: Mapping[int, float | None], epsilon: float = TIE_EPSILON
) -> list[Verdict]:
    """Per-example verdicts over the lines both score sets hold (keyed by JSONL line), in line order."""
    lines = sorted(set(fine_tuned) | set(base))
    return [
        Verdict(
            line, verdict(fine_tuned.get(line), base.get(line), epsilon), fine_tuned.get(line), base.get(line)
        )
        for line in lines
    ]


def tally(items: Sequence[Verdict]) -> dict[str, int]:
    counts = {"win": 0, "tie": 0, "loss": 0, "error": 0}
    for item in items:
        counts[item.verdict] += 1
    return counts


def most_different(items: Sequence[Verdict], n: int) -> list[Verdict]:
    """The ``n`` scored examples whose token F1 differ most (largest ``|delta|`` first; ties by line)."""
    scored = [v for v in items if v.verdict != "error"]
    scored.sort(key=lambda v: (-abs(v.delta), v.line))
    return [v for v in scored[: max(0, n)] if abs(v.delta) > 0.0]


def parse_gain_metric(name: str) -> str:
    key = GAIN_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in GAIN_METRICS:
        raise UsageError(
            f"--min-gain: unknown metric {name!r}.",
            "Use one of: " + ", ".join(GAIN_METRICS) + " (e.g. --min-gain f1 0.05).",
        )
    return key


@dataclass(frozen=True)
class GainCheck:
    metric: str
    delta: float
    fine_tuned: float | None
    base: float | None
    higher_is_better: bool

    @property
    def gain(self) -> float | None:
        if self.fine_tuned is None or self.base is None:
            return None
        return (self.fine_tuned - self.base) if self.higher_is_better else (self.base - self.fine_tuned)

    @property
    def passed(self) -> bool:
        gain = self.gain
        return gain is not None and gain >= self.delta - 1e-12

    def describe(self) -> str:
        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4g}"

        formula = "fine-tuned - base" if self.higher_is_better else "base - fine-tuned (lower is better)"
        return (
            f"{self.metric}: fine-tuned {f(self.fine_tuned)}, base {f(self.base)}, gain {f(self.gain)} "
            f"({formula}) vs --min-gain {self.delta:g}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "min_gain": self.delta,
            "fine_tuned": self.fine_tuned,
            "base": self.base,
            "gain": self.gain,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
        }


def check_gain(
    metric: str, delta: float, fine_tuned: Mapping[str, Any], base: Mapping[str, Any]
) -> GainCheck:
    """The ``--min-gain METRIC DELTA`` gate over two summaries (``EvalReport.to_json()`` shapes)."""
    key = parse_gain_metric(metric)
    field_name, higher = GAIN_METRICS[key]

    def value(summary: Mapping[str, Any]) -> float | None:
        v = summary.get(field_name)
        return None if v is None else float(v)

    return GainCheck(key, float(delta), value(fine_tuned), value(base), higher)
