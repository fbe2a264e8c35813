"""Layering: --help/--version/validate never import azure; cli never imports azure at module level;
leaf modules import only the stdlib, pydantic and yaml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR, REPO

SRC = REPO / "src" / "phi3ft"
FIX = REPO / "tests" / "fixtures" / "data" / "valid_100.jsonl"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["validate", str(FIX), "--model", "phi-3-mini-4k-instruct", "--tokenizer", str(PHI3_TOKENIZER_DIR)],
        ["validate", str(FIX), "--no-tokens", "--format", "json"],
        ["rules", "--json"],
    ],
)
def test_no_azure_import(args: list[str]) -> None:
    code = (
        "import sys\nfrom phi3ft.cli.app import main\nrc = main(sys.argv[1:])\n"
        "bad = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
        "print('AZURE', bad, file=sys.stderr)\nsys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "AZURE []" in proc.stderr


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        nodes = [node]
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not runtime imports
            continue
        if isinstance(node, ast.Try):
            nodes = [*node.body]
        for n in nodes:
            if isinstance(n, ast.Import):
                names.update(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                names.add(n.module)
    return names


def test_cli_never_imports_azure_at_module_level() -> None:
    for path in (SRC / "cli").glob("*.py"):
        for name in _module_level_imports(path):
            assert not name.startswith("azure"), f"{path.name} imports {name}"


#: Leaf modules: the stdlib, pydantic and yaml only, plus other leaves. ``train/settings.py`` is the
#: torch-free pydantic model of job.yaml's ``training:`` block, so config.py may import it.
LEAVES = ("errors.py", "redact.py", "config.py", "catalog.py", "state.py", "train/settings.py")
LEAF_MODULES = {
    "phi3ft",
    "phi3ft.errors",
    "phi3ft.redact",
    "phi3ft.config",
    "phi3ft.catalog",
    "phi3ft.state",
    "phi3ft.train.settings",
}


def test_leaves_import_only_stdlib_pydantic_yaml() -> None:
    stdlib = set(sys.stdlib_module_names)
    allowed = stdlib | {"pydantic", "yaml", "phi3ft"}
    for leaf in LEAVES:
        path = SRC / leaf
        assert path.exists(), leaf
        for name in _module_level_imports(path):
            top = name.split(".")[0]
            assert top in allowed, f"{leaf} imports {name}"
            if top == "phi3ft":
                assert name in LEAF_MODULES, f"{leaf} imports {name}"
