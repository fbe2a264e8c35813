"""Presentation-neutral views of a ValidationReport: findings grouped by rule, GitHub annotation lines.

No rich/typer here (services never print); ``phi3ft.cli.validate`` turns these into tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phi3ft.data.rules import RULES, SEVERITY_ORDER
from phi3ft.data.validate import Issue, ValidationReport


@dataclass
class RuleGroup:
    rule: str
    severity: str
    title: str
    count: int
    hint: str
    examples: list[Issue] = field(default_factory=list)

    @property
    def first_lines(self) -> list[int]:
        return [i.line for i in self.examples if i.line is not None]


def group_issues(report: ValidationReport, per_rule: int = 5) -> list[RuleGroup]:
    """One group per rule that fired, errors first, with the complete count and the first findings."""
    groups: dict[str, RuleGroup] = {}
    for issue in report.issues:
        g = groups.get(issue.rule)
        if g is None:
            r = RULES[issue.rule]
            g = groups[issue.rule] = RuleGroup(
                issue.rule, issue.severity, r.title, report.counts.get(issue.rule, 0), issue.hint
            )
        if len(g.examples) < per_rule:
            g.examples.append(issue)
    return sorted(groups.values(), key=lambda g: (SEVERITY_ORDER[g.severity], g.rule))


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: ValidationReport, limit: int | None = None) -> list[str]:
    """``::error file=F,line=N,title=RULE::message`` lines (info becomes ``::notice``)."""
    lines = []
    for issue in report.issues[:limit] if limit is not None else report.issues:
        level = {"error": "error", "warning": "warning", "info": "notice"}[issue.severity]
        props = [f"file={_escape_property(issue.file)}"]
        if issue.line is not None:
            props.append(f"line={issue.line}")
        props.append(f"title={_escape_property(issue.rule + ' ' + RULES[issue.rule].title)}")
        where = f" [{issue.path}]" if issue.path else ""
        lines.append(
            f"::{level} {','.join(props)}::{_escape_data(issue.message + where + ' Hint: ' + issue.hint)}"
        )
    return lines
