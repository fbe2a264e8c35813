"""phi3ft split: deterministic, duplicates on one side, byte-for-byte records, --force."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_data_rules import base, good


def test_split_is_deterministic_and_keeps_duplicates_together(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = [*base(100), *(good(7) for _ in range(5)), good(8).replace("number", "number ")]
    src = tmp_path / "all.jsonl"
    src.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    code, out, _ = run_cli(
        "split", str(src), "--out-dir", str(tmp_path / "a"), "--validation-fraction", "0.2", "--json"
    )
    assert code == 0
    d = json.loads(out)
    assert d["train"]["examples"] + d["validation"]["examples"] == len(lines)
    train = (tmp_path / "a" / "train.jsonl").read_bytes()
    val = (tmp_path / "a" / "validation.jsonl").read_bytes()
    assert set(train.splitlines() + val.splitlines()) == {x.encode() for x in lines}  # byte for byte
    dup = good(7).encode()
    assert (dup in train.splitlines()) != (dup in val.splitlines())
    run_cli("split", str(src), "--out-dir", str(tmp_path / "b"), "--validation-fraction", "0.2")
    assert (tmp_path / "b" / "validation.jsonl").read_bytes() == val


def test_split_refuses_to_overwrite(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "all.jsonl"
    src.write_text("".join(x + "\n" for x in base(30)), encoding="utf-8")
    assert run_cli("split", str(src), "--out-dir", str(tmp_path))[0] == 0
    code, _, err = run_cli("split", str(src), "--out-dir", str(tmp_path))
    assert code == 2 and "--force" in err
    assert run_cli("split", str(src), "--out-dir", str(tmp_path), "--force", "--seed", "1")[0] == 0


def test_split_rejects_invalid_json(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "bad.jsonl"
    src.write_text(good(1) + "\n{oops\n", encoding="utf-8")
    code, _, err = run_cli("split", str(src), "--out-dir", str(tmp_path / "o"))
    assert code == 3 and "phi3ft validate" in err
