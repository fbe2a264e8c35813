"""Issue 15 item 18: split's default --out-dir, train's default --model, validate with two files."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from tests.unit.test_data_rules import base

from phi3ft import catalog


def test_split_defaults_to_the_input_folder(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "data"
    folder.mkdir()
    src = folder / "all.jsonl"
    src.write_text("".join(x + "\n" for x in base(30)), encoding="utf-8")
    code, out, err = run_cli("split", str(src), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert Path(doc["train"]["path"]).parent == folder
    assert (folder / "train.jsonl").is_file() and (folder / "validation.jsonl").is_file()


def test_split_of_a_train_jsonl_without_out_dir_refuses_to_overwrite_it(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "train.jsonl"
    src.write_text("".join(x + "\n" for x in base(30)), encoding="utf-8")
    before = src.read_bytes()
    code, _, err = run_cli("split", str(src), "--force")
    assert code == 2 and "--out-dir" in err
    assert src.read_bytes() == before


def test_train_model_default_is_the_catalog_default() -> None:
    from typer.main import get_command

    from phi3ft.cli import app

    train = get_command(app).commands["train"]  # type: ignore[attr-defined]
    default = next(p.default for p in train.params if p.name == "model")
    assert default == catalog.DEFAULT_MODEL == "phi-4-mini-instruct"
    assert inspect.isfunction(train.callback)


def test_validate_two_files_says_how_to_pass_validation_data(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train, val = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    train.write_text("".join(x + "\n" for x in base(30)), encoding="utf-8")
    val.write_text("".join(x + "\n" for x in base(5)), encoding="utf-8")
    _, _, err = run_cli("validate", str(train), str(val), "--no-tokens")
    text = " ".join(err.split())
    assert "is checked as training data" in text
    assert f"phi3ft validate {train} --validation {val}" in text
    _, _, err = run_cli("validate", str(train), "--validation", str(val), "--no-tokens")
    assert "is checked as training data" not in err
