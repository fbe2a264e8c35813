"""Issue 14's "done when": no code outside the spec loader asks which backend a config is.

``config.py`` (the loader: ``JobSpec``'s members and their traits) and ``targets/`` (the backends
themselves) may name backends; everything else asks the spec (``cfg.runs_locally``, ``cfg.on_cluster``,
``cfg.azure_finetune``) or a typed ledger record, and no signature takes the config as ``Any``.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

SRC = REPO / "src" / "phi3ft"
PATTERN = re.compile(r"cfg: Any|backend ==|\.backend in\b|\.backend != ")
ALLOWED = {SRC / "config.py"}


def test_no_backend_comparisons_or_untyped_configs_outside_the_spec_loader() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in ALLOWED or (SRC / "targets") in path.parents:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if PATTERN.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
