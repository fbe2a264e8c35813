"""phi3ft convert and validate --fix through the real Typer app: the convert -> validate --fix -> validate
path, exit codes, one-line errors without tracebacks, no partial output files, --json documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.unit.test_data_rules import A, U, base, good, msgs

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "convert"
MODEL = ["--model", "phi-3-mini-4k-instruct", "--no-tokens"]


def one_error(err: str) -> None:
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err


@pytest.mark.parametrize(
    ("sample", "shape"),
    [
        ("sharegpt.jsonl", "sharegpt"),
        ("alpaca.json", "alpaca"),
        ("prompt_completion.jsonl", "prompt-completion"),
        ("openai_extra.jsonl", "openai"),
        ("faq.csv", "table"),
    ],
)
def test_convert_then_validate(run_cli, tmp_path: Path, sample: str, shape: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "train.jsonl"
    code, stdout, stderr = run_cli("convert", str(SAMPLES / sample), "-o", str(out))
    assert code == 0, stderr
    assert f"shape: {shape}" in stderr and "(detected)" in stderr
    assert "converted 12 records" in stdout
    assert f"phi3ft validate {out}" in stderr
    code, stdout, _ = run_cli("validate", str(out), *MODEL, "--json")
    assert code == 0 and json.loads(stdout)["summary"]["errors"] == 0


def test_convert_json_summary_lists_every_skip(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = run_cli(
        "convert", str(SAMPLES / "sharegpt.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--json"
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["converted"] == 12 and d["skipped"] == 2 and d["shape"] == "sharegpt"
    assert d["shape_detected"] is True and d["container"] == "jsonl" and d["compression"] is None
    assert d["skips"] == [
        {"line": 13, "reason": "conversations[1] is from 'function_call' (not human/gpt/system)"},
        {"line": 14, "reason": "empty assistant content"},
    ]
    assert d["skip_reasons"] == {
        "conversations[1] is from 'function_call' (not human/gpt/system)": 1,
        "empty assistant content": 1,
    }


def test_convert_screen_caps_the_skip_list(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": f"q{i}", "completion": "fine answer"} for i in range(12)]
    rows += [{"prompt": f"q{i}", "completion": ""} for i in range(30)]
    src = tmp_path / "pc.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, stdout, _ = run_cli("convert", str(src), "-o", str(tmp_path / "o.jsonl"))
    assert code == 0
    assert "skipped 30 records" in stdout and "30 x empty assistant content" in stdout
    assert stdout.count("line ") == 20 and "10 more (--json lists every skip)" in stdout


def test_convert_map_and_system(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.jsonl"
    code, stdout, stderr = run_cli(
        "convert",
        str(SAMPLES / "faq.tsv"),
        "-o",
        str(out),
        "--map",
        "user=Frage",
        "--map",
        "assistant=Antwort",
        "--system",
        "Answer briefly.",
    )
    assert code == 0, stderr
    assert "shape: table (user=Frage, assistant=Antwort) (from --map)" in stderr
    assert "system message added to 12 records" in stdout
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["messages"][0]["role"] == "system"


def test_convert_refuses_to_overwrite(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    code, _, stderr = run_cli("convert", str(SAMPLES / "faq.csv"), "-o", str(out))
    assert code == 2 and "already exists" in stderr and "--force" in stderr
    one_error(stderr)
    assert out.read_text(encoding="utf-8") == "keep me\n"
    assert run_cli("convert", str(SAMPLES / "faq.csv"), "-o", str(out), "--force")[0] == 0
    assert out.read_text(encoding="utf-8").startswith('{"messages"')


@pytest.mark.parametrize(
    ("content", "args", "code", "needle"),
    [
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": "cut\n', [], 3, "bad.jsonl:2: not valid JSON"),
        (
            b'{"prompt": "a", "completion": "b"}\n{"prompt": "Caf\xe9", "completion": "b"}\n',
            [],
            3,
            "invalid UTF-8",
        ),
        (b'{"text": "a"}\n', [], 3, "cannot tell the shape"),
        (
            b'{"question": "a", "answer": "b"}\n',
            ["--map", "user=question,assistant=reply"],
            3,
            "'reply' is not in",
        ),
        (b'{"question": "a", "answer": "b"}\n', ["--map", "user=question"], 2, "needs both"),
        (b'{"question": "a", "answer": "b"}\n', ["--from", "yaml"], 2, "--from 'yaml'"),
    ],
)
def test_convert_bad_input(
    run_cli, tmp_path: Path, content: bytes, args: list[str], code: int, needle: str
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    rc, _, stderr = run_cli("convert", str(src), "-o", str(tmp_path / "o.jsonl"), *args)
    assert rc == code and needle in stderr, stderr
    one_error(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_convert_missing_file(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rc, _, stderr = run_cli("convert", str(tmp_path / "nope.csv"))
    assert rc == 2 and "does not exist" in stderr
    one_error(stderr)


def test_convert_help_explains_options(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = run_cli("convert", "--help")
    assert code == 0
    for option in ("--output", "--from", "--map", "--system", "--force", "--json"):
        assert option in stdout
    code, stdout, _ = run_cli("validate", "--help")
    for option in ("--fix", "--fix-validation", "--redact-secrets", "--force"):
        assert option in stdout


# ---- validate --fix ------------------------------------------------------------------------------------
def test_convert_fix_validate_path(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README path: convert, validate --fix, validate."""
    rows = [json.loads(x) for x in (SAMPLES / "sharegpt.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[:12] * 2  # an export with every conversation twice
    src = tmp_path / "export.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run_cli("convert", str(src), "-o", str(tmp_path / "train.jsonl"))[0] == 0
    code, stdout, _ = run_cli(
        "validate", str(tmp_path / "train.jsonl"), *MODEL, "--fix", str(tmp_path / "train.fixed.jsonl")
    )
    assert code == 0
    assert (
        "repaired train" in stdout and "(12 of 24 records kept)" in stdout and "Re-validated: VALID" in stdout
    )
    assert "Q01 removed train.jsonl:13: duplicate of line 1" in stdout
    code, stdout, _ = run_cli("validate", str(tmp_path / "train.fixed.jsonl"), *MODEL, "--json")
    assert code == 0 and "Q01" not in json.loads(stdout)["summary"]["by_rule"]


def test_fix_json_document(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(x + "\n" for x in [*base(), "[1]", msgs((U, " hi"), (A, "hello there"))]), encoding="utf-8"
    )
    val = tmp_path / "valid.jsonl"
    val.write_text(good(3) + "\n" + good(500) + "\n", encoding="utf-8")
    code, stdout, _ = run_cli(
        "validate",
        str(train),
        *MODEL,
        "--validation",
        str(val),
        "--fix",
        str(tmp_path / "t.jsonl"),
        "--fix-validation",
        str(tmp_path / "v.jsonl"),
        "--json",
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["valid"] is True and d["report"]["valid"] is False
    fix = d["fix"]
    assert fix["by_rule"] == {"F11": {"removed": 1}, "L02": {"dropped": 1}, "M14": {"repaired": 1}}
    assert fix["revalidated"]["errors"] == 0 and fix["report"] == str(tmp_path / "t.report.json")
    assert [f["records_out"] for f in fix["files"]] == [121, 1]
    assert json.loads((tmp_path / "t.report.json").read_text(encoding="utf-8"))["changes"] == fix["changes"]


def test_fix_not_repairable_exits_3(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = run_cli(
        "validate", str(tmp_path / "missing.jsonl"), *MODEL, "--fix", str(tmp_path / "o.jsonl")
    )
    assert code == 3 and "Not repaired" in stdout and "F01" in stdout
    assert not (tmp_path / "o.jsonl").exists()
    pretty = tmp_path / "array.jsonl"
    shutil.copy(Path(__file__).resolve().parent.parent / "fixtures" / "data" / "array.json", pretty)
    code, _, stderr = run_cli("validate", str(pretty), *MODEL, "--fix", str(tmp_path / "o.jsonl"))
    assert code == 3 and f"phi3ft convert {pretty} -o {tmp_path / 'o.jsonl'}" in stderr
    code, stdout, _ = run_cli("validate", str(pretty), *MODEL, "--fix", str(tmp_path / "o.jsonl"), "--json")
    assert code == 3
    d = json.loads(stdout)
    assert d["fix"]["written"] is False and [i["rule"] for i in d["fix"]["not_repairable"]] == ["F07"]


def test_fix_usage_errors(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(x + "\n" for x in base()), encoding="utf-8")
    val = tmp_path / "valid.jsonl"
    val.write_text(good(500) + "\n", encoding="utf-8")
    cases = [
        (["--redact-secrets"], "only work with --fix"),
        (["--fix", str(train)], "never modifies its input"),
        (["--validation", str(val), "--fix", str(tmp_path / "o.jsonl")], "--fix-validation"),
        (["--fix", str(tmp_path / "o.jsonl"), "--format", "github"], "conflict"),
    ]
    for args, needle in cases:
        code, _, stderr = run_cli("validate", str(train), *MODEL, *args)
        assert code == 2 and needle in stderr, (args, stderr)
        one_error(stderr)
    code, _, stderr = run_cli("validate", str(train), str(train), *MODEL, "--fix", str(tmp_path / "o.jsonl"))
    assert code == 2 and "one training file" in stderr
    (tmp_path / "o.jsonl").write_text("x\n", encoding="utf-8")
    code, _, stderr = run_cli("validate", str(train), *MODEL, "--fix", str(tmp_path / "o.jsonl"))
    assert code == 2 and "already exists" in stderr
    assert run_cli("validate", str(train), *MODEL, "--fix", str(tmp_path / "o.jsonl"), "--force")[0] == 0
