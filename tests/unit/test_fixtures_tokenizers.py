"""The committed tokenizer fixtures are the files their README names, byte for byte."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import REPO, TOKENIZERS


def _listed() -> dict[str, str]:
    text = (TOKENIZERS / "README.md").read_text(encoding="utf-8")
    return {m[2]: m[1] for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", text, re.MULTILINE)}


def test_every_fixture_file_matches_its_listed_sha256() -> None:
    listed = _listed()
    on_disk = {
        p.relative_to(TOKENIZERS).as_posix()
        for p in TOKENIZERS.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert on_disk == set(listed), "README.md's sha256 list and the files disagree"
    for rel, digest in listed.items():
        assert hashlib.sha256((TOKENIZERS / rel).read_bytes()).hexdigest() == digest, rel


def test_fixtures_live_inside_the_repository() -> None:
    assert TOKENIZERS.resolve().is_relative_to(REPO.resolve())
