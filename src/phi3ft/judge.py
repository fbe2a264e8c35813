"""Pairwise judgement of ``eval --baseline`` answers by a chat deployment (``--judge DEPLOYMENT``).

For every example both sides answered, the judge sees the conversation, the reference answer and the two
answers labelled A and B, and replies with one JSON object ``{"winner": "A" | "B" | "tie", "rationale": ...}``.
Position bias is controlled by asking twice, once with the fine-tuned answer as A and once as B: the
verdict (from the fine-tuned model's side) is a **win** or a **loss** only when both orders agree, and a
**tie** otherwise; disagreements between the two orders are counted (``inconsistent``), as are the replies
that preferred position A, so a judge that favours one slot shows it. Both rationales are kept per example.

The prompt ships with phi3ft and is versioned: :data:`JUDGE_PROMPT_VERSION` changes whenever its text does
(a test pins the hash), and the report carries both the version and the text's SHA-256, so two reports
judged with different prompts are never mistaken for comparable. The judge is called at temperature 0.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from phi3ft.errors import Phi3ftError

JUDGE_PROMPT_VERSION = "pairwise-v1"

JUDGE_SYSTEM = (
    "You are an impartial judge comparing two answers by AI assistants to the same conversation. "
    "Decide which answer better completes the assistant's last turn: correct and consistent with the "
    "reference answer, helpful, and no longer than needed. The reference is what a good answer says; "
    "wording may differ. Do not let the order of the answers, their length or their style decide. "
    'Reply with one JSON object and nothing else: {"winner": "A" | "B" | "tie", "rationale": "<one or two '
    'sentences>"}.'
)

JUDGE_TEMPLATE = (
    "[Conversation]\n{conversation}\n\n"
    "[Reference answer]\n{reference}\n\n"
    "[Answer A]\n{a}\n\n"
    "[Answer B]\n{b}\n\n"
    'Which answer is better? Reply with {{"winner": "A" | "B" | "tie", "rationale": "..."}}.'
)

JUDGE_PROMPT_SHA256 = hashlib.sha256((JUDGE_SYSTEM + "\n\n" + JUDGE_TEMPLATE).encode("utf-8")).hexdigest()

#: Longest judge reply asked for (a JSON object with a short rationale).
JUDGE_MAX_TOKENS = 256


@dataclass
class JudgeCall:
    """One order: ``fine_tuned_as`` is the label the fine-tuned answer had (A or B)."""

    fine_tuned_as: str
    winner: str | None  # A, B, tie; None when the reply could not be read or the call failed
    rationale: str
    error: str | None = None

    @property
    def side(self) -> str | None:
        """``fine_tuned``, ``base`` or ``tie`` (None on an error)."""
        if self.winner is None:
            return None
        if self.winner == "tie":
            return "tie"
        return "fine_tuned" if self.winner == self.fine_tuned_as else "base"

    def to_json(self) -> dict[str, Any]:
        return {"fine_tuned_as": self.fine_tuned_as, "winner": self.winner, "rationale": self.rationale,
                "error": self.error}  # fmt: skip


@dataclass
class JudgeVerdict:
    line: int
    verdict: str  # win / tie / loss (the fine-tuned side) / error
    consistent: bool  # both orders gave the same side
    calls: list[JudgeCall]

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "verdict": self.verdict, "consistent": self.consistent,
                "orders": [c.to_json() for c in self.calls]}  # fmt: skip


@dataclass
class JudgeReport:
    deployment: str
    verdicts: list[JudgeVerdict]
    counts: dict[str, int] = field(default_factory=dict)
    inconsistent: int = 0
    preferred_a: int = 0  # decisive replies (A or B) that chose position A
    decisive: int = 0

    @property
    def win_rate(self) -> float | None:
        """(wins + ties / 2) / judged examples; None when none was judged."""
        judged = self.counts.get("win", 0) + self.counts.get("tie", 0) + self.counts.get("loss", 0)
        if not judged:
            return None
        return (self.counts.get("win", 0) + 0.5 * self.counts.get("tie", 0)) / judged

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "prompt_version": JUDGE_PROMPT_VERSION,
            "prompt_sha256": JUDGE_PROMPT_SHA256,
            "counts": dict(self.counts),
            "win_rate": self.win_rate,
            "inconsistent": self.inconsistent,
            "position_a_preferred": self.preferred_a,
            "decisive_replies": self.decisive,
            "verdicts": [v.to_json() for v in self.verdicts],
        }


@dataclass
class JudgePair:
    line: int
    prompt: Sequence[Mapping[str, str]]
    reference: str
    fine_tuned: str | None  # None: that side failed on this example
    base: str | None


def render_conversation(prompt: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


def judge_messages(pair: JudgePair, *, fine_tuned_first: bool) -> list[dict[str, str]]:
    a, b = (pair.fine_tuned, pair.base) if fine_tuned_first else (pair.base, pair.fine_tuned)
    user = JUDGE_TEMPLATE.format(
        conversation=render_conversation(pair.prompt), reference=pair.reference, a=a or "", b=b or ""
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_WINNER = re.compile(r'"?winner"?\s*[:=]\s*"?\s*(A|B|tie)\b', re.IGNORECASE)


def parse_judgement(text: str) -> tuple[str, str]:
    """``(winner, rationale)`` from a judge reply; ``ValueError`` when it names no winner."""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            doc = json.loads(text[start : end + 1])
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            winner = str(doc.get("winner") or "").strip()
            normal = {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())
            if normal is not None:
                return normal, str(doc.get("rationale") or "").strip()
    match = _WINNER.search(text)
    if match is None:
        raise ValueError("the judge's reply names no winner (A, B or tie)")
    return {"a": "A", "b": "B", "tie": "tie"}[match.group(1).lower()], text.strip()


def _combine(calls: list[JudgeCall]) -> tuple[str, bool]:
    sides = [c.side for c in calls]
    if any(s is None for s in sides):
        return "error", False
    consistent = len(set(sides)) == 1
    if consistent and sides[0] == "fine_tuned":
        return "win", True
    if consistent and sides[0] == "base":
        return "loss", True
    return "tie", consistent


def judge_pairs(
    client: Any,
    deployment: str,
    pairs: Sequence[JudgePair],
    *,
    concurrency: int = 4,
    on_result: Callable[[int, int], None] | None = None,
) -> JudgeReport:
    """Ask the judge about every pair in both orders; examples one side failed on are ``error``."""
    jobs = [
        (p, first)
        for p in pairs
        if p.fine_tuned is not None and p.base is not None
        for first in (True, False)
    ]

    def ask(job: tuple[JudgePair, bool]) -> JudgeCall:
        pair, first = job
        label = "A" if first else "B"
        try:
            reply = client.complete(
                judge_messages(pair, fine_tuned_first=first),
                max_tokens=JUDGE_MAX_TOKENS,
                temperature=0.0,
                logprobs=False,
            )
            winner, rationale = parse_judgement(str(getattr(reply, "content", "") or ""))
        except (Phi3ftError, ValueError) as exc:
            message = exc.message if isinstance(exc, Phi3ftError) else str(exc)
            return JudgeCall(label, None, "", error=message)
        return JudgeCall(label, winner, rationale)

    done = {"n": 0}

    def counted(job: tuple[JudgePair, bool]) -> JudgeCall:
        call = ask(job)
        done["n"] += 1
        if on_result is not None:
            on_result(done["n"], len(jobs))
        return call

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        calls = list(pool.map(counted, jobs))
    by_line: dict[int, list[JudgeCall]] = {}
    for (pair, _first), call in zip(jobs, calls, strict=True):
        by_line.setdefault(pair.line, []).append(call)
    verdicts: list[JudgeVerdict] = []
    counts = {"win": 0, "tie": 0, "loss": 0, "error": 0}
    inconsistent = preferred_a = decisive = 0
    for pair in pairs:
        got = by_line.get(pair.line)
        if not got:
            verdicts.append(JudgeVerdict(pair.line, "error", False, []))
            counts["error"] += 1
            continue
        verdict, consistent = _combine(got)
        counts[verdict] += 1
        if verdict != "error" and not consistent:
            inconsistent += 1
        for c in got:
            if c.winner in ("A", "B"):
                decisive += 1
                preferred_a += c.winner == "A"
        verdicts.append(JudgeVerdict(pair.line, verdict, consistent, got))
    return JudgeReport(deployment, verdicts, counts, inconsistent, preferred_a, decisive)


def pairs_from_report(report: Any, examples: Sequence[Any]) -> list[JudgePair]:
    """The judge's input from a :class:`phi3ft.baseline.BaselineReport` and the examples it scored."""
    ft = {r.line: r for r in report.fine_tuned.results}
    base = {r.line: r for r in report.base.results}

    def answer(r: Any) -> str | None:
        return None if r is None or getattr(r, "error", None) else (r.answer or "")

    return [
        JudgePair(e.line, e.prompt, e.reference, answer(ft.get(e.line)), answer(base.get(e.line)))
        for e in examples
    ]


__all__ = [
    "JUDGE_PROMPT_SHA256",
    "JUDGE_PROMPT_VERSION",
    "JudgePair",
    "JudgeReport",
    "judge_pairs",
    "pairs_from_report",
    "parse_judgement",
]
