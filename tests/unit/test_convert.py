"""phi3ft.data.convert: every container and shape on realistic samples; the output passes the validator."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from phi3ft.data import convert as conv
from phi3ft.data.convert import convert_file, parse_map, sniff
from phi3ft.data.validate import validate_dataset
from phi3ft.errors import DataError, PrerequisiteError, UsageError

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "convert"
OPTS: dict[str, Any] = {"model": "phi-3-mini-4k-instruct", "count_tokens": False}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def assert_valid(path: Path) -> None:
    report = validate_dataset(path, **OPTS)
    assert report.valid and report.severity_counts["error"] == 0, [i.to_dict() for i in report.issues]
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n") and raw.count(b"\n") == report.stats["examples"]


@pytest.mark.parametrize(
    ("sample", "container", "shape", "converted", "skips"),
    [
        (
            "sharegpt.jsonl",
            "jsonl",
            "sharegpt",
            12,
            [
                (13, "conversations[1] is from 'function_call' (not human/gpt/system)"),
                (14, "empty assistant content"),
            ],
        ),
        ("alpaca.json", "json-array", "alpaca", 12, [(62, "empty assistant content")]),
        ("prompt_completion.jsonl", "jsonl", "prompt-completion", 12, []),
        ("openai_extra.jsonl", "jsonl", "openai", 12, []),
        ("faq.csv", "csv", "table", 12, [(16, "empty assistant content")]),  # a quoted 3-line cell
    ],
)
def test_each_shape_converts_and_validates(
    tmp_path: Path, sample: str, container: str, shape: str, converted: int, skips: list[tuple[int, str]]
) -> None:
    out = tmp_path / "out.jsonl"
    result = convert_file(SAMPLES / sample, out)
    assert (result.container, result.shape, result.detected) == (container, shape, True)
    assert result.converted == converted
    assert [(s.line, s.reason) for s in result.skips] == skips
    assert_valid(out)
    for rec in read(out):
        assert list(rec) == ["messages"]
        for m in rec["messages"]:
            assert m["content"] == m["content"].strip() and m["role"] in ("system", "user", "assistant")


def test_sharegpt_keeps_turns_and_system(tmp_path: Path) -> None:
    convert_file(SAMPLES / "sharegpt.jsonl", tmp_path / "o.jsonl")
    recs = read(tmp_path / "o.jsonl")
    assert [m["role"] for m in recs[0]["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in recs[4]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert recs[1]["messages"][0] == {"role": "user", "content": "What is the capital of Australia?"}


def test_alpaca_joins_instruction_and_input(tmp_path: Path) -> None:
    convert_file(SAMPLES / "alpaca.json", tmp_path / "o.jsonl")
    rec = read(tmp_path / "o.jsonl")[1]
    assert rec["messages"][0]["content"] == "Answer the question.\n\nWhat is the capital of Australia?"


def test_prompt_completion_is_stripped(tmp_path: Path) -> None:
    convert_file(SAMPLES / "prompt_completion.jsonl", tmp_path / "o.jsonl")
    rec = read(tmp_path / "o.jsonl")[0]
    assert rec["messages"][1]["content"].startswith("Use `my_list") and rec["messages"][0][
        "content"
    ].endswith("###")


def test_openai_extras_are_dropped(tmp_path: Path) -> None:
    convert_file(SAMPLES / "openai_extra.jsonl", tmp_path / "o.jsonl")
    assert all(list(r) == ["messages"] for r in read(tmp_path / "o.jsonl"))


def test_table_map_and_system(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the shape"):
        convert_file(SAMPLES / "faq.tsv", tmp_path / "o.jsonl")
    result = convert_file(
        SAMPLES / "faq.tsv",
        tmp_path / "o.jsonl",
        mapping=parse_map(["user=Frage", "assistant=Antwort"]),
        shape="table",
        system="Answer briefly.",
    )
    assert result.container == "tsv" and result.converted == 12 and result.system_added == 12
    assert read(tmp_path / "o.jsonl")[0]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert_valid(tmp_path / "o.jsonl")


def test_system_is_not_added_twice(tmp_path: Path) -> None:
    result = convert_file(SAMPLES / "sharegpt.jsonl", tmp_path / "o.jsonl", system="Be brief.")
    recs = read(tmp_path / "o.jsonl")
    assert result.system_added == 8  # 4 of the 12 already have one
    assert recs[0]["messages"][0]["content"] == "You are a concise, helpful assistant."
    assert recs[1]["messages"][0]["content"] == "Be brief."


def test_missing_map_column_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'reply' is not in faq\.csv"):
        convert_file(
            SAMPLES / "faq.csv", tmp_path / "o.jsonl", mapping={"user": "question", "assistant": "reply"}
        )
    assert list(tmp_path.iterdir()) == []


def test_parse_map_usage_errors() -> None:
    assert parse_map(["user=q,assistant=a", "system=s"]) == {"user": "q", "assistant": "a", "system": "s"}
    with pytest.raises(UsageError):
        parse_map(["user=q"])
    with pytest.raises(UsageError):
        parse_map(["bot=q", "assistant=a"])


def test_gzip_is_detected_by_magic_bytes(tmp_path: Path) -> None:
    packed = tmp_path / "export.bin"  # no .gz in the name
    packed.write_bytes(gzip.compress((SAMPLES / "sharegpt.jsonl").read_bytes()))
    result = convert_file(packed, tmp_path / "o.jsonl")
    assert (result.container, result.compression, result.converted) == ("jsonl", "gzip", 12)
    csv_gz = tmp_path / "faq.csv.gz"
    csv_gz.write_bytes(gzip.compress((SAMPLES / "faq.csv").read_bytes()))
    assert sniff(csv_gz) == ("csv", "gzip")
    array_gz = tmp_path / "alpaca.json.gz"
    array_gz.write_bytes(gzip.compress((SAMPLES / "alpaca.json").read_bytes()))
    assert convert_file(array_gz, tmp_path / "a.jsonl").converted == 12
    assert_valid(tmp_path / "a.jsonl")


def test_json_array_is_streamed_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        {
            "instruction": f"Question {i} \u00e9\u00e8 \u4e2d\u6587?",
            "input": "",
            "output": f"Answer {i}.",
            "n": 10**i,
        }
        for i in range(40)
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    monkeypatch.setattr(conv, "READ_CHUNK", 7)  # elements, numbers and UTF-8 sequences cut everywhere
    got = [rec for _, rec in conv.read_json_array(path, None)]
    assert got == items
    lines = [ln for ln, _ in conv.read_json_array(path, None)]
    assert lines[:2] == [2, 8] and len(set(lines)) == 40


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[{"a": 1}, {"a": 2}', "not closed"),
        ('[{"a": 1} {"a": 2}]', "expected ','"),
        ('[{"a": 1}, {"a": ]', "element 2 is not valid JSON"),
        ('[{"a": 1}] x', "after the end"),
    ],
)
def test_broken_json_array(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        convert_file(path, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_malformed_jsonl_line_stops_with_its_line(tmp_path: Path) -> None:
    lines = (SAMPLES / "sharegpt.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(5, '{"conversations": [{"from": "human", "value": "cut')
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl:6: not valid JSON"):
        convert_file(path, tmp_path / "o.jsonl")
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("name", ["latin1.jsonl", "latin1.csv"])
def test_invalid_utf8(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_bytes(b"question,answer\nWhat?,Fine.\nCaf\xe9?,Oui.\n")
    else:
        path.write_bytes(
            b'{"prompt": "ok", "completion": "fine"}\n{"prompt": "Caf\xe9", "completion": "x"}\n'
        )
    with pytest.raises(DataError, match=r":(2|3): invalid UTF-8") as info:
        convert_file(path, tmp_path / "o.jsonl")
    assert "iconv" in (info.value.hint or "")
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_shape_and_nothing_convertible(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('{"text": "just text"}\n' * 3, encoding="utf-8")
    with pytest.raises(DataError, match=r"cannot tell the shape .* \(keys/columns: text\)"):
        convert_file(path, tmp_path / "o.jsonl")
    with pytest.raises(DataError, match=r"no record of odd\.jsonl could be converted"):
        convert_file(path, tmp_path / "o.jsonl", shape="alpaca")
    assert not (tmp_path / "o.jsonl").exists()


def test_skips_records_that_cannot_be_chat(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": "x"},
            ]
        },
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "tool", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        [1, 2],
        {"messages": [{"role": "User", "content": " hi "}, {"role": "Assistant", "content": "ok "}]},
        {"messages": [{"role": "user", "content": "nul \u0000 here"}, {"role": "assistant", "content": "x"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = convert_file(path, tmp_path / "o.jsonl")
    assert result.converted == 2
    assert [(s.line, s.reason) for s in result.skips] == [
        (2, "two user turns in a row"),
        (3, "the conversation does not end with an assistant turn"),
        (4, "messages[0] has role 'tool', not system/user/assistant"),
        (5, "not an object (list)"),
        (7, "control character U+0000 in user content"),
    ]
    assert read(tmp_path / "o.jsonl")[1]["messages"][0] == {"role": "user", "content": "hi"}


def test_refuses_to_overwrite_and_default_name(tmp_path: Path) -> None:
    src = tmp_path / "faq.csv"
    src.write_bytes((SAMPLES / "faq.csv").read_bytes())
    result = convert_file(src)
    assert result.output == tmp_path / "faq.chat.jsonl"
    before = result.output.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        convert_file(src)
    assert convert_file(src, force=True).converted == 12 and result.output.read_bytes() == before
    with pytest.raises(UsageError, match="does not exist"):
        convert_file(tmp_path / "missing.csv")
    assert conv.default_output(Path("d/data.jsonl.gz")) == Path("d/data.chat.jsonl")


def test_interrupt_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = conv._from_sharegpt

    def boom(rec: dict[str, Any]) -> list[dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(rec)

    monkeypatch.setattr(conv, "_from_sharegpt", boom)
    with pytest.raises(KeyboardInterrupt):
        convert_file(SAMPLES / "sharegpt.jsonl", tmp_path / "o.jsonl", shape="sharegpt")
    assert list(tmp_path.iterdir()) == []


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow (the convert extra) is not installed")
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (SAMPLES / "sharegpt.jsonl").read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = convert_file(path, tmp_path / "o.jsonl")
    assert (result.container, result.shape, result.converted) == ("parquet", "sharegpt", 12)
    assert [s.line for s in result.skips] == [13, 14]
    assert_valid(tmp_path / "o.jsonl")


def test_parquet_without_pyarrow_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(PrerequisiteError) as info:
        convert_file(path, tmp_path / "o.jsonl")
    assert "pip install -e '.[convert]'" in (info.value.hint or "")
    assert not (tmp_path / "o.jsonl").exists()


def test_damaged_gzip(tmp_path: Path) -> None:
    lines = [
        json.dumps({"prompt": f"Question {i} {os.urandom(16).hex()}?", "completion": f"Answer {i}."})
        for i in range(3000)
    ]
    data = gzip.compress("\n".join(lines).encode())
    for cut in (len(data) // 50, len(data) * 9 // 10):  # in the first 4 KB read by sniff, and later
        path = tmp_path / "cut.jsonl.gz"
        path.write_bytes(data[:cut])
        with pytest.raises(DataError, match="damaged gzip"):
            convert_file(path, tmp_path / "o.jsonl")
        assert list(tmp_path.iterdir()) == [path]


def test_pretty_printed_objects_get_a_jq_hint(tmp_path: Path) -> None:
    path = tmp_path / "pretty.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}, indent=2) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="pretty-printed") as info:
        convert_file(path, tmp_path / "o.jsonl")
    assert "jq -c ." in (info.value.hint or "")


def test_lone_surrogate_in_a_json_array_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(
        '[{"prompt": "ok", "completion": "fine"}, {"prompt": "bad \\ud800", "completion": "x"}]',
        encoding="utf-8",
    )
    result = convert_file(path, tmp_path / "o.jsonl")
    assert result.converted == 1 and [s.reason for s in result.skips] == [
        "text with an unpaired surrogate escape"
    ]


def test_unwritable_output_is_a_one_line_error(tmp_path: Path) -> None:
    from phi3ft.errors import Phi3ftError

    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(Phi3ftError, match="cannot write") as info:
        convert_file(SAMPLES / "faq.csv", blocker / "out.jsonl")
    assert info.value.exit_code == 1


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ('{"prompt": "a", "completion": "b"}\n'.encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04" + b"\0" * 40, "zip archive"),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 40, "zstd archive"),
    ],
)
def test_other_encodings_and_archives_are_named(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    with pytest.raises(DataError, match=match):
        convert_file(path, tmp_path / "o.jsonl")
