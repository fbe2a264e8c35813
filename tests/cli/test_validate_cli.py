"""phi3ft validate / split through the real Typer app: exit codes, JSON schema, github annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import PHI3_TOKENIZER_DIR
from tests.unit.test_data_rules import base, good

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "data"
GOOD = str(FIX / "valid_100.jsonl")
MODEL = ["--model", "phi-3-mini-4k-instruct"]


def test_valid_file_exits_0_with_text_report(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("validate", GOOD, *MODEL, "--tokenizer", str(PHI3_TOKENIZER_DIR))
    assert code == 0
    assert "VALID" in out and "Statistics" in out and "tokens / example" in out


def test_json_schema(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(
        "validate", GOOD, *MODEL, "--tokenizer", str(PHI3_TOKENIZER_DIR), "--format", "json", "--epochs", "2"
    )
    assert code == 0
    d = json.loads(out)
    assert d["valid"] is True and d["schema_version"] == 1
    assert set(d) >= {"valid", "issues", "stats", "tokenizer", "summary", "files", "skipped_rules", "model"}
    t = d["stats"]["tokens"]
    assert d["stats"]["examples"] == 120 and t["exact"] is True
    assert set(t["per_example"]) >= {"min", "p50", "p90", "p99", "max"} and t["total"] > t["assistant"] > 0
    assert t["billed"] == 2 * t["total"]
    for issue in d["issues"]:
        assert set(issue) == {"rule", "severity", "file", "line", "path", "message", "hint"}
        assert issue["severity"] in {"error", "warning", "info"}


def test_invalid_exits_3_and_counts_all(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), *(["[1]"] * 80)]), encoding="utf-8")
    code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--format", "json", "--max-errors", "3")
    assert code == 3
    d = json.loads(out)
    assert d["valid"] is False and d["summary"]["by_rule"]["L02"] == 80
    code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--max-errors", "3")
    assert code == 3 and "more errors/warnings not shown" in out


def test_strict_and_warnings(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "w.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), good(5)]), encoding="utf-8")  # a duplicate: warning
    assert run_cli("validate", str(p), *MODEL, "--no-tokens")[0] == 0
    assert run_cli("validate", str(p), *MODEL, "--no-tokens", "--strict")[0] == 3


def test_github_annotations(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "g.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), "[1]"]), encoding="utf-8")
    code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--format", "github")
    assert code == 3
    assert f"::error file={p},line=121,title=L02 line is not a JSON object::" in out


def test_findings_are_titled_by_the_problem(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The table and the annotation titles name what is wrong, not the rule's passing condition."""
    p = tmp_path / "t.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), "{bad json", "[1]"]), encoding="utf-8")
    env = {"HF_HOME": str(tmp_path), "PHI3FT_TOKENIZER_DIR": "", "HF_HUB_OFFLINE": "1"}
    code, out, _ = run_cli("validate", str(p), *MODEL, "--format", "github", env=env)
    assert code == 3
    assert "title=L01 line is not valid JSON::" in out and "title=L02 line is not a JSON object::" in out
    assert f"::warning file={p},title=T01 no tokenizer%2C token checks skipped::" in out
    assert "title=L01 line is valid JSON" not in out and "title=T01 tokenizer loaded" not in out
    code, out, _ = run_cli("validate", str(p), *MODEL, env=env, ctx=_wide_ctx(env))
    assert code == 3
    assert "line is not valid JSON" in out and "no tokenizer, token checks skipped" in out
    assert re.search(r"rule .*severity .*count .*problem .*first lines", out)
    assert "line is valid JSON" not in out


def _wide_ctx(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """A context whose stdout console is 250 columns wide, so table cells are not wrapped."""
    import os

    from rich.console import Console

    from phi3ft.cli.context import AppContext
    from phi3ft.output import Output

    class _WideOutput(Output):
        @property
        def console(self) -> Console:
            return Console(file=self.stdout, width=250, no_color=True)

    return AppContext(output=_WideOutput(interactive=False), env={**os.environ, **env}, cwd=Path.cwd())


def test_usage_errors_exit_2(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("validate", GOOD, "--model", "phi-9")[0] == 2
    assert run_cli("validate", GOOD, "--format", "xml")[0] == 2
    assert run_cli("validate", GOOD, *MODEL, "--tokenizer", str(tmp_path / "none"))[0] == 2
    assert run_cli("validate")[0] == 2


def test_missing_file_exits_3_never_passes(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(
        "validate", str(tmp_path / "missing.jsonl"), *MODEL, "--no-tokens", "--format", "json"
    )
    assert code == 3 and json.loads(out)["issues"][0]["rule"] == "F01"


def test_missing_file_is_one_error_line(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "missing.jsonl"
    env = {"HF_HOME": str(tmp_path), "PHI3FT_TOKENIZER_DIR": "", "HF_HUB_OFFLINE": "1"}
    code, out, err = run_cli("validate", str(missing), *MODEL, env=env)
    assert code == 3 and out == ""
    assert err.splitlines() == [
        f"Error: F01 file not found: {missing}",
        "Hint: Check the path; pass the JSONL file, e.g. `phi3ft validate data/train.jsonl`.",
    ]
    # No tokenizer finding for a file that was never read, in any format.
    code, out, _ = run_cli("validate", str(missing), *MODEL, "--format", "json", env=env)
    assert code == 3 and [i["rule"] for i in json.loads(out)["issues"]] == ["F01"]
    code, out, err = run_cli("validate", str(tmp_path), *MODEL, "--no-tokens")
    assert (
        code == 3
        and out == ""
        and err.startswith(f"Error: F02 path is not a readable regular file: {tmp_path}")
    )


def test_t01_reason_is_printed_once_per_run(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"HF_HOME": str(tmp_path), "PHI3FT_TOKENIZER_DIR": "", "HF_HUB_OFFLINE": "1"}
    val = str(FIX / "valid_100.jsonl")
    for args in ([GOOD], [GOOD, "--validation", val], [GOOD, val]):
        code, out, err = run_cli("validate", *args, *MODEL, env=env, ctx=_wide_ctx(env))
        assert code == 0, err
        assert (out + err).count("looked in:") == 1, args
        assert "no tokenizer loaded (T01)" in out


def test_no_tokenizer_says_estimates(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(
        "validate", GOOD, *MODEL, env={"HF_HOME": str(tmp_path), "PHI3FT_TOKENIZER_DIR": ""}
    )
    assert code == 0 and "ESTIMATES" in out and "T01" in out


def test_allow_secrets_flag(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "s.jsonl"
    secret = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "k"},
                {"role": "assistant", "content": "AKIAABCDEFGHIJKLMNOP"},
            ]
        }
    )
    p.write_text("".join(x + "\n" for x in [*base(), secret]), encoding="utf-8")
    assert run_cli("validate", str(p), *MODEL, "--no-tokens")[0] == 3
    code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--allow-secrets", "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["by_rule"]["Q08"] == 1
    code, out, _ = run_cli("validate", "--help")
    assert "--allow-truncation" in out and "--allow-secrets" in out


def test_json_flag_is_format_json(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "j.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), "[1]"]), encoding="utf-8")
    code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--json")
    code2, out2, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--format", "json")
    assert code == code2 == 3 and json.loads(out) == json.loads(out2)
    assert json.loads(out)["summary"]["by_rule"]["L02"] == 1
    code, _, err = run_cli("validate", str(p), *MODEL, "--json", "--format", "github")
    assert code == 2 and "--json and --format github" in err


def test_workers_option_same_report(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "w.jsonl"
    p.write_text("".join(x + "\n" for x in [*base(), "[1]", good(3), "", "{bad"]), encoding="utf-8")
    docs = []
    for n in ("1", "2"):
        code, out, _ = run_cli("validate", str(p), *MODEL, "--no-tokens", "--json", "--workers", n)
        assert code == 3
        docs.append(json.loads(out))
    assert docs[0] == docs[1]
    assert run_cli("validate", str(p), *MODEL, "--no-tokens", "--workers", "0")[0] == 2


def test_tokenizer_of_another_model_is_usage_error_exit_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 4: good data with phi-3's tokenizer for phi-4-mini is not INVALID (retired T07)."""
    for fmt in ("text", "json"):
        code, out, err = run_cli(
            "validate", GOOD, "--model", "phi-4-mini-instruct", "--tokenizer", str(PHI3_TOKENIZER_DIR),
            "--format", fmt,
        )  # fmt: skip
        assert code == 2, err
        if fmt == "json":  # one error document on stdout (issue 15 item 17)
            assert json.loads(out)["error"]["code"] == "usage"
        else:
            assert out == ""
        errors = [row for row in err.splitlines() if row.startswith("Error: ")]
        assert len(errors) == 1 and "does not belong to phi-4-mini-instruct" in errors[0]
        assert "T07" not in err and "None" not in err and "INVALID" not in err
        assert "Hint: " in err and "Traceback" not in err


def test_gzip_and_utf16_files_are_named_not_empty(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 5: one finding saying what the file is and the command, exit 3; never "empty"."""
    import gzip

    data = Path(GOOD).read_bytes()
    gz = tmp_path / "train.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    code, out, _ = run_cli("validate", str(gz), *MODEL, "--no-tokens")
    assert code == 3
    flat = " ".join(out.split())
    assert "train.jsonl.gz is gzip-compressed (magic bytes 1F 8B)" in flat
    # Table cells may wrap a long tmp path (xdist's popen-gwN folders): compare without white space.
    assert f"`gunzip-k{gz}`" in "".join(out.split()) and "empty" not in flat
    u16 = tmp_path / "train.jsonl"
    u16.write_bytes(data.decode().encode("utf-16"))
    code, out, _ = run_cli("validate", str(u16), *MODEL, "--no-tokens", "--format", "json")
    assert code == 3
    doc = json.loads(out)
    assert doc["summary"]["by_rule"] == {"F05": 1} and doc["files"][0]["read"] is False
    assert "iconv -f UTF-16 -t UTF-8" in doc["issues"][0]["hint"]
    assert "latin1" not in doc["issues"][0]["hint"]
