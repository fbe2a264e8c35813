"""The rule engine: each message and conversation rule is one check object, registered here, run on every path.

``phi3ft.data.rules`` holds what each rule *is* (id, severity, title, hint); this module holds what each
message- and conversation-level rule *checks*, once: a :class:`MessageCheck` looks at one message's text, a
:class:`RecordCheck` at a whole conversation. The validator (``phi3ft.data.validate``) runs every registered
check on every record it parses: with or without a tokenizer, in one process or in worker processes (forked
workers inherit the registry), so there is no second implementation of any rule to keep in step. Line-,
file- and dataset-level rules (F, L, T, Q01-Q04, C09) need the reader's or the whole file's state and live in
the validator, each in one place; Q08/Q09 share one detector with ``--fix --redact-secrets``
(``phi3ft.data.scan.sensitive_spans``).

Adding a rule: a :class:`~phi3ft.data.rules.Rule` in ``rules.py`` (metadata, catalogue) and one check here::

    @message_check("M16")
    def _todo(ctx, role, content, gates):
        return "content has a TODO." if "TODO" in content else None

:func:`register` does both at run time (tests use it for a synthetic rule; :func:`unregister` removes it).
Checks run in registration order, and each record's findings come out in the order the checks ran, so the
report order is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from phi3ft import catalog
from phi3ft.data.rules import RULES, Rule
from phi3ft.data.scan import CONTROL, G_CONTROL, G_SPECIAL
from phi3ft.data.tokens import WHITESPACE, ChatFormat

Applies = Literal["text", "blank", "any"]


class CheckContext(Protocol):
    """What a check may read about the run (the validator provides it)."""

    profile: catalog.ModelProfile
    fmt: ChatFormat

    def special_tokens_in(self, content: str) -> list[str]: ...


class Conversation(NamedTuple):
    """One parsed record, as the record checks see it. ``roles[i]`` is None for a message whose role is
    missing or not a string, or that is not an object; ``weight0`` counts assistant turns with weight 0."""

    roles: Sequence[str | None]
    assistants: int
    weight0: int
    trained_any: bool


#: A message check: ``(ctx, role, content, gates) -> message or None``. ``content`` is the message's string
#: content (blank or not, as the check's ``applies`` says); ``gates`` are the raw-line pre-filter bits of
#: :func:`phi3ft.data.scan.line_gates` (a necessary condition, so a check may skip work when its bit is clear).
MessageFn = Callable[[CheckContext, "str | None", str, int], "str | None"]
#: A record check: ``(ctx, conversation) -> [(path, message), ...]`` (empty: nothing found).
RecordFn = Callable[[CheckContext, Conversation], "Iterable[tuple[str | None, str]]"]


@dataclass(frozen=True)
class MessageCheck:
    """One rule on one message's ``content`` (findings at ``messages[i].content``)."""

    rule: str
    run: MessageFn
    #: which contents the check sees: "text" (not empty or whitespace-only), "blank" (empty or
    #: whitespace-only: M07/M08) or "any"
    applies: Applies = "text"
    #: a finding makes the record unusable for token counting (its text cannot be encoded as given)
    blocks_tokens: bool = False
    #: G_* bits of :func:`phi3ft.data.scan.line_gates` of which at least one must be set for the check to
    #: be able to find anything (0: always run). The validator skips the call when none is set; the check
    #: must still be right without that (it is a shortcut, not part of the rule).
    gate: int = 0


@dataclass(frozen=True)
class RecordCheck:
    """One rule on a whole conversation."""

    rule: str
    run: RecordFn


MESSAGE_CHECKS: list[MessageCheck] = []
RECORD_CHECKS: list[RecordCheck] = []


def message_check(
    rule: str, *, applies: Applies = "text", blocks_tokens: bool = False, gate: int = 0
) -> Callable[[MessageFn], MessageFn]:
    def deco(fn: MessageFn) -> MessageFn:
        _add(MessageCheck(rule, fn, applies, blocks_tokens, gate))
        return fn

    return deco


def record_check(rule: str) -> Callable[[RecordFn], RecordFn]:
    def deco(fn: RecordFn) -> RecordFn:
        _add(RecordCheck(rule, fn))
        return fn

    return deco


def _add(check: MessageCheck | RecordCheck) -> None:
    if check.rule in checked_rules():
        raise ValueError(f"rule {check.rule} already has a check")
    if isinstance(check, MessageCheck):
        MESSAGE_CHECKS.append(check)
    else:
        RECORD_CHECKS.append(check)


def register(rule: Rule, check: MessageCheck | RecordCheck) -> None:
    """Add a rule and its check at run time (the rule joins ``RULES``; ``check.rule`` must be its id)."""
    if check.rule != rule.id:
        raise ValueError(f"check for {check.rule} registered as rule {rule.id}")
    if rule.id in RULES:
        raise ValueError(f"rule {rule.id} already exists")
    _add(check)
    RULES[rule.id] = rule


def unregister(rule_id: str) -> None:
    """Remove a rule added with :func:`register`."""
    MESSAGE_CHECKS[:] = [c for c in MESSAGE_CHECKS if c.rule != rule_id]
    RECORD_CHECKS[:] = [c for c in RECORD_CHECKS if c.rule != rule_id]
    RULES.pop(rule_id, None)


def checked_rules() -> list[str]:
    """The ids that have a check in this module, in run order."""
    return [c.rule for c in MESSAGE_CHECKS] + [c.rule for c in RECORD_CHECKS]


# ---------------------------------------------------------------------------------------------------------
# Message checks (in the order their findings appear for one message)
# ---------------------------------------------------------------------------------------------------------
def is_blank(content: str) -> bool:
    """Empty or whitespace-only: what M07/M08 report, and what no "text" check sees."""
    return not content or content.isspace()


@message_check("M07", applies="blank")
def _assistant_empty(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    return "assistant content is empty." if role == "assistant" else None


@message_check("M08", applies="blank")
def _other_empty(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    return f"{role} content is empty." if role != "assistant" else None


@message_check("M14")
def _leading_whitespace(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    if content[0] in WHITESPACE:
        return "content starts with whitespace (trimmed by the template)."
    return None


@message_check("Q05")
def _trailing_whitespace(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    if role == "assistant" and content[-1] in WHITESPACE:
        return "assistant content ends with whitespace."
    return None


@message_check("M13", gate=G_SPECIAL)
def _special_tokens(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    if not gates & G_SPECIAL or "<" not in content:
        return None
    found = ctx.special_tokens_in(content)
    if found:
        return f"content contains {', '.join(found)}, which the tokenizer reads as a control token."
    return None


@message_check("M15", blocks_tokens=True, gate=G_CONTROL)
def _control_characters(ctx: CheckContext, role: str | None, content: str, gates: int) -> str | None:
    if not gates & G_CONTROL:
        return None
    hit = CONTROL.search(content)
    if hit:
        return f"control character U+{ord(hit.group(0)):04X} at character {hit.start()}."
    return None


# ---------------------------------------------------------------------------------------------------------
# Conversation checks (in the order their findings appear for one record)
# ---------------------------------------------------------------------------------------------------------
@record_check("C07")
def _too_short(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    n = len(c.roles)
    if n < 2:
        return [("messages", f"only {n} message; an example needs a user and an assistant turn.")]
    return ()


@record_check("C01")
def _no_assistant(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    if c.assistants == 0:
        return [("messages", "no assistant message: nothing to train on.")]
    return ()


@record_check("C08")
def _nothing_trained(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    if c.assistants and not c.trained_any and c.weight0:
        return [("messages", "every assistant message has weight 0: zero trainable tokens.")]
    return ()


def _systems(c: Conversation) -> list[int]:
    return [i for i, r in enumerate(c.roles) if r == "system"]


@record_check("C03")
def _many_systems(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    systems = _systems(c)
    if len(systems) > 1:
        return [(f"messages[{systems[1]}]", f"{len(systems)} system messages; at most one is allowed.")]
    return ()


@record_check("C02")
def _late_system(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    for i in _systems(c):
        if i != 0:
            return [(f"messages[{i}].role", f"system message at position {i}; it must come first.")]
    return ()


@record_check("C04")
def _first_turn(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    for i, r in enumerate(c.roles):
        if r in ("user", "assistant"):
            if r != "user":
                return [(f"messages[{i}].role", "the first turn after the system message is not `user`.")]
            break
    return ()


@record_check("C05")
def _repeated_role(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    prev: str | None = None
    for i, r in enumerate(c.roles):
        if r is not None and r == prev and r != "system":
            return [(f"messages[{i}].role", f"two `{r}` messages in a row (messages {i - 1} and {i}).")]
        prev = r
    return ()


@record_check("C06")
def _last_turn(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    roles = c.roles
    if roles and roles[-1] is not None and roles[-1] != "assistant" and c.assistants:
        return [
            (
                f"messages[{len(roles) - 1}].role",
                f"the conversation ends with `{roles[-1]}`, not `assistant`.",
            )
        ]
    return ()


@record_check("C10")
def _dropped_system(ctx: CheckContext, c: Conversation) -> Iterable[tuple[str | None, str]]:
    if ctx.fmt.drops_system:
        systems = _systems(c)
        if systems:
            return [
                (
                    f"messages[{systems[0]}]",
                    f"{ctx.profile.registry_name}'s chat template drops system messages; this text is never seen.",
                )
            ]
    return ()
