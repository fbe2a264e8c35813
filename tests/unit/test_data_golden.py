"""The optimised validator must report exactly what the rules say, on a corpus that exercises every path.

The corpus mixes clean examples with every line-level rule, secrets and personal data (also behind JSON
escapes such as ``\\u003c`` and ``\\/`` that the raw-line pre-filters must not miss), duplicates that differ
only in whitespace, CRLF, Unicode casing and repeated system prompts. The expected report is committed in
``tests/fixtures/data/validate_golden.json``; regenerate it only for an intended behaviour change with
``PHI3FT_UPDATE_GOLDEN=1 pytest tests/unit/test_data_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.unit.test_data_rules import LINE_CASES, good, msgs

from phi3ft.data.validate import validate_dataset

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "validate_golden.json"
U, A, S = "user", "assistant", "system"

SENSITIVE = [
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "conn: DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abcdefghijklmnopqrstuvwxyz0123456789+/==;",
    "blob?sv=2020&SharedAccessSignature=sv=2021-08-06&sig=abcdefghijklmnopqrstuvwxyz0123456789%2B",
    "url https://acct.blob.core.windows.net/c?sp=r&sig=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd",
    "token ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123 and github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvw",
    "slack xoxb-123456789012-abcdefghij and xoxp-1",
    "key sk-proj-abcdefghijklmnopqrstuvwxyz012345 or sk-ant-ABCDEFGHIJKLMNOPQRSTUV01",
    "aws AKIAIOSFODNN7EXAMPLE and ASIAABCDEFGHIJKLMNOP but not AKIAshort",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdef==",
    "db postgres://admin:s3cret-pass@db.example.com:5432/app and ftp://user:pw@host",
    "mail jane.doe+tag@example.co.uk or bob@mail.example.org, not a@b",
    "call +1 (425) 555-0100 or +44 20 7946 0958 or +33.1.23.45.67.89; not 1+2+3",
    "card 4111 1111 1111 1111 and 4111-1111-1111-1112 (bad luhn) and 378282246310005",
    "iban DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432, not DE00 1234 5678 9012 3456",
    "plain text with 2024-11-25 12:00 and order 123456789 of item 42",
]


def corpus() -> list[str]:
    rng = random.Random(11)
    system = "You are a helpful support agent. " * 40
    lines: list[str] = []
    for i in range(150):
        answer = rng.choice(
            [
                f"The answer to question {i} is simple.",
                f"Réponse numéro {i}: c'est ÉVIDENT, voilà.",
                f"Ответ {i}: ВСЁ ХОРОШО, спасибо.",
                f"答案 {i}：很好。",
                f"STRAẞE und Größe {i} — ǅemal",
            ]
        )
        lines.append(msgs((S, system), (U, f"Question {i}?"), (A, answer)))
    for bad, ok in LINE_CASES.values():
        lines += bad + ok
    for text in SENSITIVE:
        lines.append(msgs((U, "here"), (A, text)))
        lines.append(msgs((U, text), (A, "noted, thanks")))
    # the same content behind JSON escapes a raw-line pre-filter could miss
    esc = json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]})
    for text in (SENSITIVE[7], SENSITIVE[9], "say <|end|> now", "del \x7f char", "ctl \x01 char"):
        lines.append(esc.replace('""', json.dumps(text, ensure_ascii=True).replace("<", "\\u003c")))
        lines.append(esc.replace('""', json.dumps(text).replace("/", "\\/")))
    lines.append(
        '{"messages":[{"role":"user","content":"del \x7f raw"},{"role":"assistant","content":"ok"}]}'
    )
    # whitespace variants: same after collapsing runs, and "a b" vs "ab" which must differ
    lines.append(msgs((U, "Dup   question?"), (A, "Same\n\nanswer.")))
    lines.append(
        '{"messages": [{"role": "user", "content": "Dup question?"},   {"role": "assistant", "content": "Same answer."}]}'
    )
    lines.append(msgs((U, "Dup question?"), (A, "Same answer.")))
    lines.append(msgs((U, "Dup question?"), (A, "Same answer.")))
    lines.append(msgs((U, "Dupquestion?"), (A, "Sameanswer.")))
    lines.append(msgs((U, "Dup\tquestion?"), (A, " Same answer. ")))
    lines.append(good(3))
    lines.append(msgs((U, "long"), (A, "word " * 5000)))
    lines.append(msgs((U, "word " * 5000), (A, "ok then fine")))
    return lines


def report(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "".join(line + "\r\n" * (i % 17 == 0) + "\n" * (i % 17 != 0) for i, line in enumerate(corpus())),
        encoding="utf-8",
    )
    val = tmp_path / "val.jsonl"
    val.write_text(
        msgs((U, "Dup  question?"), (A, "Same answer.")) + "\n" + good(3) + "\n" + good(4000) + "\n"
    )
    d = validate_dataset(
        path, val, model="phi-3-mini-4k-instruct", env={"HF_HUB_OFFLINE": "1"}, **kw
    ).to_dict()
    text = json.dumps(d, sort_keys=True).replace(str(tmp_path), "<tmp>")
    return json.loads(text)  # type: ignore[no-any-return]


MODES: dict[str, dict[str, Any]] = {
    "no_tokens": {"count_tokens": False},
    "tokens": {"tokenizer": PHI3_TOKENIZER_DIR},
    "strict_capped": {"count_tokens": False, "strict": True, "max_errors": 40},
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_report_matches_golden(tmp_path: Path, mode: str) -> None:
    got = report(tmp_path, **MODES[mode])
    if "tokenizer" in got and got["tokenizer"].get("source"):
        got["tokenizer"]["source"] = "<tokenizer>"
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("PHI3FT_UPDATE_GOLDEN"):
        golden[mode] = got
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    assert got == golden[mode]
