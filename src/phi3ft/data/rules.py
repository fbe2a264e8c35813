"""The rule registry: every data check phi3ft runs, with a stable id, a severity and a fix-it hint.

Ids come from ../shared/docs/validation-rules.md and are never renumbered or reused (retire instead).
phi3ft additions for file-level cases the catalogue lists only in prose: F13-F17, L10. The P (job
parameter) rules belong to the config checks, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    hint: str
    #: Why the rule no longer runs (None: active). A retired id stays here so it is never reused.
    retired: str | None = None


_RULES: tuple[Rule, ...] = (
    # F: file and dataset
    Rule(
        "F01",
        "error",
        "file exists",
        "Check the path; pass the JSONL file, e.g. `phi3ft validate data/train.jsonl`.",
    ),
    Rule(
        "F02",
        "error",
        "path is a regular, readable file",
        "Pass a file, not a directory/FIFO, and make it readable.",
    ),
    Rule("F03", "error", "file is not empty", "Write at least 10 chat examples, one JSON object per line."),
    Rule("F04", "warning", "extension is .jsonl", "Rename the file to *.jsonl (Azure expects JSON Lines)."),
    Rule(
        "F05",
        "error",
        "valid UTF-8",
        "Re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in > out.jsonl`.",
    ),
    Rule(
        "F06",
        "warning",
        "UTF-8 byte-order mark at start",
        "Most JSON readers reject a BOM; strip it: `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`.",
    ),
    Rule(
        "F07",
        "error",
        "whole file is one JSON document, not JSON Lines",
        "Convert it to one object per line: `jq -c '.[]' data.json > data.jsonl`.",
    ),
    Rule(
        "F08",
        "warning",
        "file larger than 512 MB",
        "Split the file or sample it; large uploads are slow and may hit service limits.",
    ),
    Rule("F09", "error", "fewer than 10 examples", "Fine-tuning needs at least 10 examples; add more."),
    Rule(
        "F10",
        "warning",
        "fewer than 100 examples",
        "A few hundred examples are recommended; 50-100 to see any gain.",
    ),
    Rule(
        "F11",
        "warning",
        "training and validation share examples",
        "Remove the shared examples from one file, or re-split with `phi3ft split`.",
    ),
    Rule(
        "F12", "info", "no validation file", "Pass --validation FILE, or create one with `phi3ft split FILE`."
    ),
    Rule("F13", "info", "CRLF line endings", "Accepted; convert with `dos2unix FILE` to keep diffs clean."),
    Rule(
        "F14",
        "info",
        "no newline at end of file",
        "Accepted; end the last line with a newline so tools that append lines keep it valid.",
    ),
    Rule(
        "F15",
        "error",
        "last line is cut off",
        "The file ends in the middle of a record (interrupted write?); regenerate or delete the last line.",
    ),
    Rule(
        "F16",
        "error",
        "line is too long to be one example",
        "Split the record; check that newlines between records were not lost.",
    ),
    Rule(
        "F17",
        "error",
        "file is compressed or an archive",
        "Decompress it first (the message names the command) and validate the .jsonl inside.",
    ),
    # L: line / record
    Rule(
        "L01",
        "error",
        "line is valid JSON",
        "Fix the JSON on that line (each line must be one complete JSON object).",
    ),
    Rule("L02", "error", "line is a JSON object", 'Each line must be an object like {"messages": [...]}.'),
    Rule("L03", "warning", "blank line", "Delete blank lines: `sed -i '/^[[:space:]]*$/d' FILE`."),
    Rule(
        "L04",
        "error",
        "`messages` key present",
        'Wrap the conversation as {"messages": [{"role": ..., "content": ...}, ...]}.',
    ),
    Rule("L05", "error", "`messages` is a list", '"messages" must be a JSON array of message objects.'),
    Rule("L06", "error", "`messages` not empty", "Add at least a user and an assistant message."),
    Rule(
        "L07",
        "error",
        "another dataset format on the line",
        'Phi chat fine-tuning takes only {"messages": [...]}; convert prompt/completion pairs to user/assistant messages.',
    ),
    Rule(
        "L08",
        "info",
        "extra top-level keys",
        "Extra keys are ignored by the Phi chat template; remove them to keep files small.",
    ),
    Rule(
        "L09",
        "warning",
        "tool/function definitions present",
        "The Phi chat template does not render tools; remove them or fold them into the system prompt.",
    ),
    Rule(
        "L10",
        "error",
        "JSON nested too deeply",
        "Records are flat chat messages; the line nests over 1,000 levels (corrupted data?).",
    ),
    # M: message
    Rule(
        "M01",
        "error",
        "message is an object",
        'Each message must be an object {"role": ..., "content": ...}.',
    ),
    Rule("M02", "error", "`role` present", 'Add "role": "system" | "user" | "assistant".'),
    Rule("M03", "error", "`content` present", 'Add "content": "..." to the message.'),
    Rule("M04", "error", "`role` is a string", 'Use a string role: "system", "user" or "assistant".'),
    Rule(
        "M05",
        "error",
        "`role` is system, user or assistant",
        "Rename the role; tool/function/ipython turns are not supported by the Phi template.",
    ),
    Rule("M06", "error", "`content` is a string", "Use plain text content (not null, not a list of parts)."),
    Rule(
        "M07",
        "error",
        "assistant content is empty",
        "Write the answer the model should learn, or drop the example.",
    ),
    Rule("M08", "warning", "system/user content is empty", "Fill in the text or remove the message."),
    Rule(
        "M09",
        "warning",
        "unknown message keys",
        "Allowed keys: role, content, name, weight; check the spelling (e.g. `contents`).",
    ),
    Rule("M10", "error", "`weight` is not 0 or 1", "Use weight 0 (do not train on this turn) or 1."),
    Rule(
        "M11",
        "warning",
        "`weight` present",
        "Whether Phi serverless fine-tuning honours per-message weights is unverified; remove it to be safe.",
    ),
    Rule("M12", "info", "`name` present", "The Phi template does not render `name`; it has no effect."),
    Rule(
        "M13",
        "warning",
        "special-token text inside content",
        "The tokenizer turns it into a real control token and breaks the turn structure; remove or escape it (e.g. `< |end| >`).",
    ),
    Rule(
        "M14",
        "info",
        "content starts with whitespace",
        "The role token swallows leading whitespace; training sees the content trimmed.",
    ),
    Rule(
        "M15",
        "error",
        "NUL/control characters or lone surrogates",
        "Remove the control characters (\\u0000-\\u001f except tab/newline/CR) and unpaired surrogates.",
    ),
    # C: conversation
    Rule(
        "C01", "error", "at least one assistant message", "Add the assistant answer the model should learn."
    ),
    Rule("C02", "error", "system message only in first position", "Move the system message to the start."),
    Rule("C03", "error", "at most one system message", "Merge the system messages into one at the start."),
    Rule("C04", "error", "first turn after system is user", "Start the conversation with a user message."),
    Rule("C05", "error", "roles alternate user/assistant", "Merge consecutive messages of the same role."),
    Rule(
        "C06",
        "error",
        "conversation ends with assistant",
        "End each example with the assistant answer (a trailing user turn trains nothing).",
    ),
    Rule("C07", "error", "at least 2 messages", "Each example needs a user message and an assistant answer."),
    Rule(
        "C08",
        "error",
        "all assistant messages have weight 0",
        "Set weight 1 (or remove weight) on at least one assistant message.",
    ),
    Rule(
        "C09",
        "info",
        "no system message",
        "Fine for Phi; add a system prompt if you will use one at inference time.",
    ),
    Rule(
        "C10",
        "warning",
        "system message dropped by the model's template",
        "This template ignores system messages (untrained text); fold the instructions into the first user turn or pick another model.",
    ),
    # T: tokens
    Rule(
        "T01",
        "warning",
        "tokenizer loaded",
        "Pass --tokenizer PATH (folder with tokenizer.json or the .tiktoken file) or set PHI3FT_TOKENIZER_DIR.",
    ),
    Rule(
        "T03",
        "error",
        "example longer than the model context",
        "Shorten the example (drop early turns or trim the system prompt).",
    ),
    Rule(
        "T04",
        "error",
        "first assistant turn starts beyond the context",
        "Nothing would be trained after truncation; shorten the prompt part.",
    ),
    Rule(
        "T05",
        "warning",
        "example longer than the job's max_seq_length",
        "The service may truncate it; shorten the example or raise max_seq_length where supported.",
    ),
    Rule(
        "T06", "info", "very short assistant answer (< 2 tokens)", "Often a data-prep bug; check the answers."
    ),
    Rule(
        "T07",
        "error",
        "tokenizer self-test failed",
        "The tokenizer file does not belong to this model; pass the model's own tokenizer.",
        retired=(
            "a tokenizer that does not belong to the model is a usage error (exit 2) before any data "
            "is read, not a data finding"
        ),
    ),
    Rule("T08", "info", "billed tokens estimate", "Tokens x epochs; the service's billing may differ."),
    Rule(
        "T09",
        "warning",
        "long example (character estimate, no tokenizer)",
        "Load the tokenizer for exact counts (see T01).",
    ),
    # Q: quality
    Rule("Q01", "warning", "duplicate examples", "Remove duplicates: they waste budget and overfit."),
    Rule("Q02", "warning", "all assistant answers identical", "The data is degenerate; check the export."),
    Rule(
        "Q03",
        "warning",
        "more than 1/3 of assistant text upper-case",
        "Check for a casing bug in the export.",
    ),
    Rule(
        "Q04",
        "info",
        "all assistant answers share a prefix or suffix",
        "Probably template residue; strip it unless the model must learn it.",
    ),
    Rule(
        "Q05",
        "info",
        "assistant content ends with whitespace",
        "The tokenizer keeps it, so the model learns to emit it; strip it.",
    ),
    Rule(
        "Q08",
        "error",
        "credential in content",
        "Remove the secret and rotate it; a fine-tuned model can repeat it to anyone.",
    ),
    Rule(
        "Q09",
        "warning",
        "personal data in content",
        "Remove or pseudonymise personal data unless the model must learn it.",
    ),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
#: Rules that need a tokenizer; reported as skipped (never passed) without one.
TOKEN_RULES: tuple[str, ...] = ("T03", "T04", "T05", "T06", "T08")


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]
