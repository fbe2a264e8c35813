"""The rule registry: every data check phi3ft runs, with a stable id, a severity and a fix-it hint.

Each rule says what it catches, why it matters and how to fix it; ``phi3ft rules`` prints the registry and
``docs/validation-rules.md`` is generated from it (:func:`catalogue_markdown`; a test fails when the committed
file is stale). Ids are never renumbered or reused: a rule that no longer applies stays here with
``status="retired"`` and is never emitted. The catalogue's F01-F12, L01-L09, M, C, T and Q ids come from the
common checks of public fine-tuning validators; F13-F17 and L10 are phi3ft's. T02 (count with the model's own
tokenizer and template) is how every T rule works, not a finding, and Q06/Q07 (distribution statistics, counts
per rule) are the report's ``stats`` and ``summary``; those ids are not used for findings. Job parameters
(learning rate range, epochs, regions, ...) are checked by ``phi3ft plan``/``check``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
Status = Literal["active", "retired"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

#: The family of each id's first letter, in catalogue order.
FAMILIES: dict[str, str] = {
    "F": "file and dataset",
    "L": "line / record",
    "M": "message",
    "C": "conversation",
    "T": "tokens",
    "Q": "quality",
}


@dataclass(frozen=True)
class Rule:
    """One check. ``title`` names the *problem* a finding reports (``file not found``), never the passing
    condition; ``hint`` is the fix printed with each finding; ``catches`` and ``why`` document the rule."""

    id: str
    severity: Severity
    title: str
    hint: str
    catches: str = ""
    why: str = ""
    status: Status = "active"
    #: For a retired rule: why, and what replaced it.
    retired_note: str = ""

    @property
    def fix(self) -> str:
        return self.hint

    def to_dict(self) -> dict[str, str]:
        d = {
            "id": self.id,
            "family": FAMILIES.get(self.id[:1], ""),
            "severity": self.severity,
            "title": self.title,
            "catches": self.catches,
            "why": self.why,
            "fix": self.hint,
            "status": self.status,
        }
        if self.retired_note:
            d["retired_note"] = self.retired_note
        return d


_RULES: tuple[Rule, ...] = (
    # F: file and dataset
    Rule(
        "F01",
        "error",
        "file not found",
        "Check the path; pass the JSONL file, e.g. `phi3ft validate data/train.jsonl`.",
        catches="The path given does not exist.",
        why='Nothing else can run, and a validator that reports "passed" for a missing file hides the mistake.',
    ),
    Rule(
        "F02",
        "error",
        "path is not a readable regular file",
        "Pass a file, not a directory/FIFO, and make it readable.",
        catches="A directory, FIFO or device, or a file without read permission.",
        why="Such paths give misleading errors further on.",
    ),
    Rule(
        "F03",
        "error",
        "file is empty",
        "Write at least 10 chat examples, one JSON object per line.",
        catches="A file of 0 bytes or only blank lines.",
        why="An empty upload fails late, after the job is submitted.",
    ),
    Rule(
        "F04",
        "warning",
        "extension is not .jsonl",
        "Rename the file to *.jsonl (Azure expects JSON Lines).",
        catches="A file name that does not end in `.jsonl` (the content is still parsed).",
        why="Azure documents JSON Lines files with the `.jsonl` extension.",
    ),
    Rule(
        "F05",
        "error",
        "not valid UTF-8",
        "Re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in > out.jsonl`.",
        catches="Bytes that do not decode as UTF-8, with the byte offset and line.",
        why="The service reads UTF-8.",
    ),
    Rule(
        "F06",
        "warning",
        "UTF-8 byte-order mark at start",
        "Most JSON readers reject a BOM; strip it: `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`.",
        catches="A file that starts with the bytes EF BB BF.",
        why="Most JSON readers reject a BOM; phi3ft strips it before parsing and reports it.",
    ),
    Rule(
        "F07",
        "error",
        "whole file is one JSON document, not JSON Lines",
        "Convert it to one object per line: `jq -c '.[]' data.json > data.jsonl`.",
        catches="A JSON array or a pretty-printed object spread over lines.",
        why="A common export mistake; fine-tuning expects one JSON object per line.",
    ),
    Rule(
        "F08",
        "warning",
        "file larger than 512 MB",
        "Split the file or sample it; large uploads are slow and may hit service limits.",
        catches="A file over 512 MB.",
        why="512 MB is the Azure OpenAI Files API limit; no Phi limit is documented, and large uploads are slow.",
    ),
    Rule(
        "F09",
        "error",
        "fewer than 10 examples",
        "Fine-tuning needs at least 10 examples; add more.",
        catches="A file with fewer than 10 examples.",
        why="10 is the minimum of OpenAI, Azure OpenAI and Mistral fine-tuning; the Phi minimum is not documented.",
    ),
    Rule(
        "F10",
        "warning",
        "fewer than 100 examples",
        "A few hundred examples are recommended; 50-100 to see any gain.",
        catches="A file with fewer than 100 examples.",
        why="A few hundred examples are recommended; 50-100 to see any gain.",
    ),
    Rule(
        "F11",
        "warning",
        "training and validation share examples",
        "Remove the shared examples from one file, or re-split with `phi3ft split`.",
        catches="The same example (whitespace-normalised) in the training and the validation file.",
        why="It leaks: the validation loss then scores examples the model trained on.",
    ),
    Rule(
        "F12",
        "info",
        "no validation file",
        "Pass --validation FILE, or create one with `phi3ft split FILE`.",
        catches="Only a training file was given.",
        why="Allowed; without validation data there is no validation loss (serverless `submit` holds out 10 %).",
    ),
    Rule(
        "F13",
        "info",
        "CRLF line endings",
        "Accepted; convert with `dos2unix FILE` to keep diffs clean.",
        catches="Lines that end in CR LF.",
        why="Accepted by the parsers; mixed line endings make diffs noisy.",
    ),
    Rule(
        "F14",
        "info",
        "no newline at end of file",
        "Accepted; end the last line with a newline so tools that append lines keep it valid.",
        catches="A last line without a final newline.",
        why="A tool that appends lines would glue its first record onto the last one.",
    ),
    Rule(
        "F15",
        "error",
        "last line is cut off",
        "The file ends in the middle of a record (interrupted write?); regenerate or delete the last line.",
        catches="A last line without a final newline that does not parse as JSON.",
        why="The record is incomplete, usually from an interrupted write.",
    ),
    Rule(
        "F16",
        "error",
        "line is too long to be one example",
        "Split the record; check that newlines between records were not lost.",
        catches="A line over 64 MB (it is skipped without being held in memory).",
        why="No chat example is that long: the newlines between records were probably lost.",
    ),
    Rule(
        "F17",
        "error",
        "file is compressed or an archive",
        "Decompress it first (the message names the command) and validate the .jsonl inside.",
        catches="A gzip, zip, zstd, bzip2 or xz file (recognised by its magic bytes), read as if it were JSONL.",
        why="Compressed bytes are not text: every line would be reported as broken instead of the real cause.",
    ),
    # L: line / record
    Rule(
        "L01",
        "error",
        "line is not valid JSON",
        "Fix the JSON on that line (each line must be one complete JSON object).",
        catches="A line that does not parse as JSON, with the column and the parser's message.",
        why="The service rejects the file.",
    ),
    Rule(
        "L02",
        "error",
        "line is not a JSON object",
        'Each line must be an object like {"messages": [...]}.',
        catches="A line holding an array, string, number or null.",
        why="Only objects are records.",
    ),
    Rule(
        "L03",
        "warning",
        "blank line",
        "Delete blank lines: `sed -i '/^[[:space:]]*$/d' FILE`.",
        catches="An empty or whitespace-only line inside the file.",
        why="phi3ft skips it; other readers may fail on it.",
    ),
    Rule(
        "L04",
        "error",
        "`messages` key missing",
        'Wrap the conversation as {"messages": [{"role": ..., "content": ...}, ...]}.',
        catches="An object without a `messages` key.",
        why="The chat-completion format requires it.",
    ),
    Rule(
        "L05",
        "error",
        "`messages` is not a list",
        '"messages" must be a JSON array of message objects.',
        catches="A `messages` value that is not a JSON array.",
        why="The conversation must be an array of message objects.",
    ),
    Rule(
        "L06",
        "error",
        "`messages` is empty",
        "Add at least a user and an assistant message.",
        catches='`"messages": []`.',
        why="There is nothing to train on.",
    ),
    Rule(
        "L07",
        "error",
        "another dataset format on the line",
        'Phi chat fine-tuning takes only {"messages": [...]}; convert prompt/completion pairs to user/assistant messages.',
        catches="`prompt`/`completion`, `text` or preference keys instead of `messages`.",
        why="Phi chat fine-tuning takes only `messages`, one format per file.",
    ),
    Rule(
        "L08",
        "info",
        "extra top-level keys",
        "Extra keys are ignored by the Phi chat template; remove them to keep files small.",
        catches="Keys next to `messages` (e.g. `prompt`, `prompt_id`).",
        why="Azure's own sample data carries such keys; they are ignored, but they make the upload bigger.",
    ),
    Rule(
        "L09",
        "warning",
        "tool/function definitions present",
        "The Phi chat template does not render tools; remove them or fold them into the system prompt.",
        catches="`tools`, `functions` or `tool_choice` on a record.",
        why="Phi serverless fine-tuning is plain chat: the Phi template does not render tools.",
    ),
    Rule(
        "L10",
        "error",
        "JSON nested too deeply",
        "Records are flat chat messages; the line nests over 1,000 levels (corrupted data?).",
        catches="A line nested over 1,000 levels.",
        why="Chat records are flat; such nesting means corrupted data and can exhaust a parser.",
    ),
    # M: message
    Rule(
        "M01",
        "error",
        "message is not an object",
        'Each message must be an object {"role": ..., "content": ...}.',
        catches="An item of `messages` that is not a JSON object.",
        why='A message is `{"role": ..., "content": ...}`.',
    ),
    Rule(
        "M02",
        "error",
        "`role` missing",
        'Add "role": "system" | "user" | "assistant".',
        catches="A message without `role`.",
        why="The template needs the role to render the turn.",
    ),
    Rule(
        "M03",
        "error",
        "`content` missing",
        'Add "content": "..." to the message.',
        catches="A message without `content`.",
        why="The template needs the text to render the turn.",
    ),
    Rule(
        "M04",
        "error",
        "`role` is not a string",
        'Use a string role: "system", "user" or "assistant".',
        catches="A `role` that is a number, list, object or null.",
        why="Roles are the strings system, user and assistant.",
    ),
    Rule(
        "M05",
        "error",
        "`role` is not system, user or assistant",
        "Rename the role; tool/function/ipython turns are not supported by the Phi template.",
        catches="Any other role, e.g. `tool`, `function`, `ipython`, `User`.",
        why="The Phi template knows only these three roles; the others are other tools' extensions.",
    ),
    Rule(
        "M06",
        "error",
        "`content` is not a string",
        "Use plain text content (not null, not a list of parts).",
        catches="`null`, a list of parts (multimodal), a number or an object.",
        why="Phi text models take plain text.",
    ),
    Rule(
        "M07",
        "error",
        "assistant content is empty",
        "Write the answer the model should learn, or drop the example.",
        catches="An assistant message whose content is empty or whitespace.",
        why="There is nothing to learn from it.",
    ),
    Rule(
        "M08",
        "warning",
        "system/user content is empty",
        "Fill in the text or remove the message.",
        catches="A system or user message whose content is empty or whitespace.",
        why="Legal, but usually a bug in the export.",
    ),
    Rule(
        "M09",
        "warning",
        "unknown message keys",
        "Allowed keys: role, content, name, weight; check the spelling (e.g. `contents`).",
        catches="Keys other than role, content, name and weight (e.g. `contents`, `Role`).",
        why="Usually a typo; a warning, not an error, so that other tools' extra keys do not block a file.",
    ),
    Rule(
        "M10",
        "error",
        "`weight` is not 0 or 1",
        "Use weight 0 (do not train on this turn) or 1.",
        catches="A `weight` that is not the integer 0 or 1.",
        why="Services that support per-message weights accept only 0 and 1.",
    ),
    Rule(
        "M11",
        "warning",
        "`weight` present",
        "Whether Phi serverless fine-tuning honours per-message weights is unverified; remove it to be safe.",
        catches="Any `weight` key on a message.",
        why="Whether Phi serverless fine-tuning honours per-message weights is unverified.",
    ),
    Rule(
        "M12",
        "info",
        "`name` present",
        "The Phi template does not render `name`; it has no effect.",
        catches="A `name` key on a message.",
        why="The Phi template does not render it.",
    ),
    Rule(
        "M13",
        "warning",
        "special-token text inside content",
        "The tokenizer turns it into a real control token and breaks the turn structure; remove or escape it (e.g. `< |end| >`).",
        catches="`<|end|>`, `<|user|>`, `<|assistant|>`, `<|system|>`, `<|endoftext|>`, `<s>`, `</s>` or placeholder tokens written as text.",
        why="The tokenizer turns such text into the real control token, which breaks the turn structure.",
    ),
    Rule(
        "M14",
        "info",
        "content starts with whitespace",
        "The role token swallows leading whitespace; training sees the content trimmed.",
        catches="Content that begins with spaces or newlines.",
        why="The role token swallows leading whitespace, so training sees the content trimmed.",
    ),
    Rule(
        "M15",
        "error",
        "NUL/control characters or lone surrogates",
        "Remove the control characters (\\u0000-\\u001f except tab/newline/CR) and unpaired surrogates.",
        catches="Control characters other than tab, newline and CR, and unpaired surrogates, in any string.",
        why="They break encoding and tokenization downstream.",
    ),
    # C: conversation
    Rule(
        "C01",
        "error",
        "no assistant message",
        "Add the assistant answer the model should learn.",
        catches="A conversation without an assistant turn.",
        why="Without an answer there is no training signal.",
    ),
    Rule(
        "C02",
        "error",
        "system message not in first position",
        "Move the system message to the start.",
        catches="A system message after another message.",
        why="Templates and trainers expect the system message at the start.",
    ),
    Rule(
        "C03",
        "error",
        "more than one system message",
        "Merge the system messages into one at the start.",
        catches="Two or more system messages in one conversation.",
        why="The Phi template renders one system turn.",
    ),
    Rule(
        "C04",
        "error",
        "first turn after system is not user",
        "Start the conversation with a user message.",
        catches="A conversation whose first non-system turn is the assistant's.",
        why="The Phi chat format starts with the user.",
    ),
    Rule(
        "C05",
        "error",
        "roles do not alternate user/assistant",
        "Merge consecutive messages of the same role.",
        catches="Two consecutive messages with the same role.",
        why="Fine-tuning pipelines expect user and assistant turns to alternate.",
    ),
    Rule(
        "C06",
        "error",
        "conversation does not end with assistant",
        "End each example with the assistant answer (a trailing user turn trains nothing).",
        catches="A conversation whose last message is not an assistant turn.",
        why="A trailing user turn trains nothing; several pipelines drop or reject such examples.",
    ),
    Rule(
        "C07",
        "error",
        "fewer than 2 messages",
        "Each example needs a user message and an assistant answer.",
        catches="A conversation with a single message.",
        why="An example needs a prompt and an answer.",
    ),
    Rule(
        "C08",
        "error",
        "all assistant messages have weight 0",
        "Set weight 1 (or remove weight) on at least one assistant message.",
        catches='Every assistant turn carries `"weight": 0`.',
        why="The example has no trainable token.",
    ),
    Rule(
        "C09",
        "info",
        "no system message",
        "Fine for Phi; add a system prompt if you will use one at inference time.",
        catches="A conversation without a system message.",
        why="Fine for Phi; worth knowing when the model will get a system prompt at inference time.",
    ),
    Rule(
        "C10",
        "warning",
        "system message dropped by the model's template",
        "This template ignores system messages (untrained text); fold the instructions into the first user turn or pick another model.",
        catches="A system message for a model whose chat template drops it (Phi-3-medium, early Phi-3-mini templates).",
        why="The system text is silently not trained.",
    ),
    # T: tokens
    Rule(
        "T01",
        "warning",
        "no tokenizer, token checks skipped",
        "Pass --tokenizer PATH (folder with tokenizer.json or the .tiktoken file) or set PHI3FT_TOKENIZER_DIR.",
        catches="The model's tokenizer could not be loaded from `--tokenizer`, `$PHI3FT_TOKENIZER_DIR`, the Hugging Face cache or a download (the reason is given).",
        why="A check that never ran must say so: the token rules are listed as skipped, never passed, and counts are labelled estimates.",
    ),
    Rule(
        "T03",
        "error",
        "example longer than the model context",
        "Shorten the example (drop early turns or trim the system prompt).",
        catches="An example whose rendered tokens exceed the model's context length (a warning with `--allow-truncation` when the first assistant turn still fits).",
        why="The tail is cut, so the model learns answers that never reach `<|end|>`.",
    ),
    Rule(
        "T04",
        "error",
        "first assistant turn starts beyond the context",
        "Nothing would be trained after truncation; shorten the prompt part.",
        catches="An example whose first assistant token lies past the context length.",
        why="Nothing trainable survives truncation.",
    ),
    Rule(
        "T05",
        "warning",
        "example longer than the job's max_seq_length",
        "The service may truncate it; shorten the example or raise max_seq_length where supported.",
        catches="An example longer than the fine-tuning pipeline's `max_seq_length` but within the context.",
        why="The service may truncate it.",
    ),
    Rule(
        "T06",
        "info",
        "very short assistant answer (< 2 tokens)",
        "Often a data-prep bug; check the answers.",
        catches="An assistant answer of fewer than 2 tokens.",
        why="Often a data-preparation bug.",
    ),
    Rule(
        "T07",
        "error",
        "tokenizer self-test failed",
        "The tokenizer file does not belong to this model; pass the model's own tokenizer.",
        catches="A tokenizer that does not encode each chat special token (`<|end|>`, `<|user|>`, `<|assistant|>`, `<|system|>`, `<|endoftext|>`) as one token.",
        why="A wrong tokenizer file must fail loudly instead of giving wrong counts.",
        status="retired",
        retired_note=(
            "a tokenizer that does not belong to the model is a usage error (exit 2) before any data "
            "is read, not a data finding"
        ),
    ),
    Rule(
        "T08",
        "info",
        "billed tokens estimate",
        "Tokens x epochs; the service's billing may differ.",
        catches="The training tokens times the epochs (a report, not a problem).",
        why="It estimates the cost from the real file.",
    ),
    Rule(
        "T09",
        "warning",
        "long example (character estimate, no tokenizer)",
        "Load the tokenizer for exact counts (see T01).",
        catches="Without a tokenizer, an example of more than 10,000 characters.",
        why="Better than no length check; labelled approximate.",
    ),
    # Q: quality
    Rule(
        "Q01",
        "warning",
        "duplicate examples",
        "Remove duplicates: they waste budget and overfit.",
        catches="Examples that are exact copies or differ only in whitespace, with their line numbers.",
        why="Duplicates waste budget and make the model overfit.",
    ),
    Rule(
        "Q02",
        "warning",
        "all assistant answers identical",
        "The data is degenerate; check the export.",
        catches="Every assistant answer in the file is the same text.",
        why="The data is degenerate.",
    ),
    Rule(
        "Q03",
        "warning",
        "more than 1/3 of assistant text upper-case",
        "Check for a casing bug in the export.",
        catches="Over a third of the cased letters in assistant answers are upper-case.",
        why="Usually a casing bug in the export; the model would learn it.",
    ),
    Rule(
        "Q04",
        "info",
        "all assistant answers share a prefix or suffix",
        "Probably template residue; strip it unless the model must learn it.",
        catches="A common beginning or ending in every assistant answer.",
        why="Probably template residue that the model would learn to emit.",
    ),
    Rule(
        "Q05",
        "info",
        "assistant content ends with whitespace",
        "The tokenizer keeps it, so the model learns to emit it; strip it.",
        catches="Assistant content with trailing spaces or newlines.",
        why="The tokenizer keeps it, so the model learns to emit it.",
    ),
    Rule(
        "Q08",
        "error",
        "credential in content",
        "Remove the secret and rotate it; a fine-tuned model can repeat it to anyone.",
        catches="Private key blocks, cloud keys and connection strings (`AccountKey=`, `SharedAccessSignature=`), well-known token formats (GitHub, Slack, `sk-`, AWS `AKIA`), bearer tokens, passwords in URLs (`--allow-secrets` makes it a warning).",
        why="A fine-tuned model memorises its training data and can repeat it to anyone who can call the endpoint. The report gives the kind and position, never the secret.",
    ),
    Rule(
        "Q09",
        "warning",
        "personal data in content",
        "Remove or pseudonymise personal data unless the model must learn it.",
        catches="E-mail addresses, phone numbers, card numbers that pass the Luhn check, IBANs.",
        why="The same memorisation risk; often intended in support data, hence a warning with counts and first lines.",
    ),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
#: Rules that need a tokenizer; reported as skipped (never passed) without one.
TOKEN_RULES: tuple[str, ...] = ("T03", "T04", "T05", "T06", "T08")


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]


def catalogue() -> list[Rule]:
    """Every rule, active and retired, in catalogue order (family, then number)."""
    order = {letter: i for i, letter in enumerate(FAMILIES)}
    return sorted(RULES.values(), key=lambda r: (order.get(r.id[:1], len(order)), r.id))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def catalogue_markdown() -> str:
    """docs/validation-rules.md, generated from the registry (``phi3ft rules --markdown`` prints it)."""
    out = [
        "# Validation rules",
        "",
        "<!-- Generated from src/phi3ft/data/rules.py by `phi3ft rules --markdown > docs/validation-rules.md`;",
        "     do not edit by hand (tests/unit/test_rules_catalogue.py fails when this file is stale). -->",
        "",
        "Every check `phi3ft validate` runs on chat-completion JSONL. Each finding carries the rule's id, its",
        "severity, the problem's title, the file and line, and the fix. Severities: `error` (the data is invalid:",
        "`phi3ft validate` exits 3 and `phi3ft submit` stops), `warning` (reported; `--strict` makes it an",
        "error), `info` (statistics and advice). Ids are stable and never reused: a rule that no longer applies",
        "stays listed as retired. `phi3ft rules ID` prints one rule, `phi3ft rules --json` all of them.",
        "",
        "Not findings: T02 (counts use the model's own tokenizer and chat template) is how every T rule works,",
        "and Q06/Q07 (distribution statistics, findings per rule) are the report's `stats` and `summary`.",
        "Without a tokenizer the token rules ("
        + ", ".join(TOKEN_RULES)
        + ") are listed as skipped, never as",
        "passed.",
    ]
    current = ""
    for r in catalogue():
        family = r.id[:1]
        if family != current:
            current = family
            out += [
                "",
                f"## {family}: {FAMILIES.get(family, '')}",
                "",
                "| id | severity | problem | catches | why | fix |",
                "|---|---|---|---|---|---|",
            ]
        title = (
            r.title
            if r.status == "active"
            else f"{r.title} (**retired**: {r.retired_note or 'never emitted'})"
        )
        out.append(
            f"| {r.id} | {r.severity} | {_cell(title)} | {_cell(r.catches)} | {_cell(r.why)} | {_cell(r.hint)} |"
        )
    return "\n".join(out) + "\n"
