"""Layer rules (issue 14 item 6), read from the source with ``ast``: every import counts, at module level,
inside a function (the lazy ones) or under ``if TYPE_CHECKING:``.

The layers, bottom up:

- **spec, ledger, engine**: ``config.py``, ``records.py``, ``state.py``, ``errors.py``, ``catalog.py`` and
  ``data/**`` (the validator and its rule engine). They import nothing from ``phi3ft.targets``,
  ``phi3ft.cli`` or ``azure``. Nor do the eval loop and its arithmetic (``evaluation.py``,
  ``evaluate.py``): endpoints and the local baseline share them.
- **targets** (``phi3ft.targets.<target>``): the backends. Only the Azure ML adapter,
  ``phi3ft/targets/azureml/sdk/**``, imports ``azure.*`` (lazily; ``tests/test_imports.py`` checks that
  ``--help``/``validate`` never load it). Nothing under ``phi3ft/targets`` imports ``phi3ft.cli``.
- **cli**: renders; it reaches a target through that target's *public* modules only.

What is *internal* to a target (``phi3ft.cli`` may not import it):

- any module of a target's adapter package below its ``__init__``: ``phi3ft.targets.<t>.sdk.<module>``
  (``_core``, ``backend``, ``rest``, ``jobs``...). The ``sdk`` package itself (its ``__init__``, with its
  ``__all__``) is the adapter's public face;
- a target's backend implementation, ``phi3ft.targets.<t>.backend`` (the CLI gets a backend from
  :func:`phi3ft.connect.open_backend`, the target registry);
- any module whose path has a part starting with ``_``, and any imported name starting with ``_``
  (``phi3ft.targets.x._helpers``, ``from phi3ft.targets.azureml.checks import _private``).

Public, then: ``phi3ft.targets`` and ``phi3ft.targets.base`` (the contracts), each target's package
``__init__`` (``phi3ft.targets.local.OPTIONS_FILE``) and its service modules (``phi3ft.targets.azureml.checks``,
``.endpoints``, ``.remote_adapter``).

Beyond the CLI: outside ``phi3ft.targets`` only ``phi3ft.connect`` (the target registry, which builds the
backends) imports a target's internals, save the imports listed in :data:`INTERNALS_ALLOWED`.

Also: no import cycle between top-level units (``phi3ft.<module>`` or ``phi3ft.<package>``, with the
leaves ``phi3ft.train.settings`` and ``phi3ft.targets.base``, the contracts, on their own), save the edges listed in :data:`CYCLE_ALLOWED`.

Each rule is a function over parsed sources, so the tests below also prove that each one fails on a
deliberately bad import written into a synthetic source.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import REPO

SRC = REPO / "src"

#: The spec, ledger and engine modules (prefix ``phi3ft.data.`` covers the package).
SPEC_LAYER = (
    "phi3ft.config",
    "phi3ft.records",
    "phi3ft.state",
    "phi3ft.errors",
    "phi3ft.catalog",
    "phi3ft.data",
)
#: Target-agnostic too: the eval loop (any chat client) and its scoring.
EVAL_LAYER = ("phi3ft.evaluation", "phi3ft.evaluate")
#: Upward edges tolerated in the cycle check, each with why and how it goes away.
CYCLE_ALLOWED: dict[tuple[str, str], str] = {}

#: (importer, internal module) pairs tolerated by the ``internals`` rule, each with why.
INTERNALS_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Imported:
    """One imported name, resolved to absolute: ``module`` is what the import statement loads
    (``X`` for ``from X import a``, or ``X.a`` when ``X.a`` is itself a module); ``name`` is the dotted
    name of what was bound (``X.a``)."""

    importer: str
    line: int
    module: str
    name: str


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(
    source: str, module: str, *, is_package: bool = False, known_modules: frozenset[str] = frozenset()
) -> Iterator[Imported]:
    """Every import in ``source`` (any depth: functions, ``TYPE_CHECKING`` blocks, ``try``), resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Imported(module, node.lineno, alias.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                name = f"{origin}.{alias.name}"
                yield Imported(module, node.lineno, name if name in known_modules else origin, name)


def parse_tree(root: Path = SRC / "phi3ft") -> list[Imported]:
    paths = sorted(root.rglob("*.py"))
    known = frozenset(module_name(p, root.parent) for p in paths)
    found: list[Imported] = []
    for path in paths:
        found.extend(
            imports_of(
                path.read_text(encoding="utf-8"),
                module_name(path, root.parent),
                is_package=path.name == "__init__.py",
                known_modules=known,
            )
        )
    return found


def parse_sources(sources: Mapping[str, str]) -> list[Imported]:
    """Synthetic modules (name -> source) for the rule self-tests; a name ending ``.__init__`` is a package."""
    known = frozenset(m.removesuffix(".__init__") for m in sources)
    found: list[Imported] = []
    for name, source in sources.items():
        module = name.removesuffix(".__init__")
        found.extend(imports_of(source, module, is_package=name.endswith(".__init__"), known_modules=known))
    return found


def _where(imp: Imported) -> str:
    return f"{imp.importer}:{imp.line} imports {imp.name}"


# ---- the rules ------------------------------------------------------------------------------------------
def spec_layer_violations(imports: list[Imported]) -> list[str]:
    """spec/ledger/engine (and the eval loop) import nothing from targets, cli or azure."""
    banned = ("phi3ft.targets", "phi3ft.cli", "azure")
    return [
        _where(imp)
        for imp in imports
        if any(_within(imp.importer, m) for m in (*SPEC_LAYER, *EVAL_LAYER))
        and any(_within(imp.module, b) for b in banned)
    ]


def azure_violations(imports: list[Imported]) -> list[str]:
    """Only the Azure ML adapter (``phi3ft.targets.azureml.sdk``) imports ``azure.*``."""
    return [
        _where(imp)
        for imp in imports
        if _within(imp.module, "azure") and not _within(imp.importer, "phi3ft.targets.azureml.sdk")
    ]


def is_target_internal(imp: Imported) -> bool:
    """See the module docstring: adapter submodules, backend implementations, underscore names."""
    if not _within(imp.module, "phi3ft.targets"):
        return False
    parts = imp.module.split(".")  # phi3ft, targets, <target>, ...
    if any(p.startswith("_") for p in parts[2:]) or imp.name.rpartition(".")[2].startswith("_"):
        return True
    if len(parts) >= 5 and parts[3] == "sdk":
        return True  # phi3ft.targets.<t>.sdk.<module>
    return len(parts) >= 4 and parts[3] == "backend"  # phi3ft.targets.<t>.backend


def cli_violations(imports: list[Imported]) -> list[str]:
    """``phi3ft.cli`` imports no target internals."""
    return [_where(imp) for imp in imports if _within(imp.importer, "phi3ft.cli") and is_target_internal(imp)]


def internals_violations(
    imports: list[Imported], allowed: Mapping[tuple[str, str], str] = INTERNALS_ALLOWED
) -> list[str]:
    """Outside ``phi3ft.targets``, only the registry (``phi3ft.connect``) imports target internals."""
    return [
        _where(imp)
        for imp in imports
        if not _within(imp.importer, "phi3ft.targets")
        and imp.importer != "phi3ft.connect"
        and is_target_internal(imp)
        and (imp.importer, imp.module) not in allowed
    ]


def targets_import_cli(imports: list[Imported]) -> list[str]:
    """Nothing under ``phi3ft.targets`` imports ``phi3ft.cli`` (nothing points back up to the CLI)."""
    return [
        _where(imp)
        for imp in imports
        if _within(imp.importer, "phi3ft.targets") and _within(imp.module, "phi3ft.cli")
    ]


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "phi3ft" or len(parts) < 2:
        return None  # the root package (``from phi3ft import __version__``) or not ours
    if _within(module, "phi3ft.train.settings"):
        return "train.settings"  # the torch-free leaf config.py imports
    if _within(module, "phi3ft.targets.base"):
        return "targets.base"  # the contracts (stdlib only) that targets keep and steps/jobs read
    return parts[1]


def import_cycles(
    imports: list[Imported], allowed: Mapping[tuple[str, str], str] = CYCLE_ALLOWED
) -> list[str]:
    """Cycles between top-level units (strongly connected components of more than one unit)."""
    edges: dict[str, dict[str, Imported]] = {}
    for imp in imports:
        src, dst = _unit(imp.importer), _unit(imp.module)
        if src is None or dst is None or src == dst or src == "__main__" or (src, dst) in allowed:
            continue
        edges.setdefault(src, {}).setdefault(dst, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                members = set(component)
                witness = [
                    _where(imp)
                    for a in sorted(members)
                    for b, imp in edges.get(a, {}).items()
                    if b in members
                ]
                cycles.append(f"{sorted(members)}: {witness}")

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


RULES = {
    "spec": spec_layer_violations,
    "azure": azure_violations,
    "cli": cli_violations,
    "internals": internals_violations,
    "targets-cli": targets_import_cli,
    "cycles": import_cycles,
}


# ---- the tree keeps them --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree() -> list[Imported]:
    found = parse_tree()
    assert len({imp.importer for imp in found}) > 50, "parsed too few modules"
    return found


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_tree_keeps_the_layer_rule(tree: list[Imported], rule: str) -> None:
    assert RULES[rule](tree) == []


def test_the_tree_has_the_modules_the_rules_name(tree: list[Imported]) -> None:
    importers = {imp.importer for imp in tree}
    for module in [
        *SPEC_LAYER,
        *EVAL_LAYER,
        "phi3ft.targets.azureml.sdk._core",
        "phi3ft.cli.app",
        "phi3ft.targets.local",
    ]:
        assert any(_within(m, module) for m in importers), module
    # the adapter does import azure (else the azure rule would pass vacuously)
    assert any(_within(imp.module, "azure") for imp in tree)


def test_the_allowlists_are_not_stale(tree: list[Imported]) -> None:
    """An allowlist entry that no longer matches an import is stale: delete it."""
    assert set(CYCLE_ALLOWED) <= {(_unit(imp.importer), _unit(imp.module)) for imp in tree}
    assert set(INTERNALS_ALLOWED) <= {(imp.importer, imp.module) for imp in tree}


# ---- each rule fails on a bad import --------------------------------------------------------------------
LAZY = "def f():\n    import {0}\n"
TYPE_CHECKING_FROM = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {0} import {1}\n"


@pytest.mark.parametrize(
    ("rule", "sources"),
    [
        ("spec", {"phi3ft.config": TYPE_CHECKING_FROM.format("phi3ft.targets.base", "JobInfo")}),
        ("spec", {"phi3ft.data.validate": LAZY.format("phi3ft.cli.app")}),
        ("spec", {"phi3ft.state": LAZY.format("azure.identity")}),
        ("spec", {"phi3ft.data.__init__": "from phi3ft.targets.azureml import checks\n"}),
        ("spec", {"phi3ft.data.scan": "from ..targets import base\n"}),  # relative
        ("spec", {"phi3ft.evaluation": LAZY.format("phi3ft.targets.azureml.sdk.endpoints")}),
        ("azure", {"phi3ft.cli.app": LAZY.format("azure.ai.ml")}),
        (
            "azure",
            {"phi3ft.targets.azureml.endpoints": "from azure.core.exceptions import HttpResponseError\n"},
        ),
        ("cli", {"phi3ft.cli.doctor": LAZY.format("phi3ft.targets.azureml.sdk._core")}),
        (
            "cli",
            {
                "phi3ft.cli.doctor": "def f():\n    from phi3ft.targets.azureml.sdk import credentials\n",
                "phi3ft.targets.azureml.sdk.credentials": "",
            },
        ),
        (
            "cli",
            {
                "phi3ft.cli.baseline": TYPE_CHECKING_FROM.format(
                    "phi3ft.targets.local.backend", "OPTIONS_FILE"
                )
            },
        ),
        ("cli", {"phi3ft.cli.check": "from phi3ft.targets.azureml.checks import _private\n"}),
        ("cli", {"phi3ft.cli.jobs": "from phi3ft.targets.azureml.sdk.backend import AzureMLBackend\n"}),
        ("internals", {"phi3ft.sweep": LAZY.format("phi3ft.targets.azureml.sdk.jobs")}),
        ("internals", {"phi3ft.baseline": "from phi3ft.targets.local.backend import LocalBackend\n"}),
        ("internals", {"phi3ft.jobs": LAZY.format("phi3ft.targets.azureml.sdk.rest")}),  # not the allowed one
        ("targets-cli", {"phi3ft.targets.azureml.checks": LAZY.format("phi3ft.cli.output")}),
        ("targets-cli", {"phi3ft.targets.local.backend": "from phi3ft.cli import app\n"}),
        (
            "cycles",
            {"phi3ft.data.scan": "import phi3ft.plan\n", "phi3ft.plan": "from phi3ft.data import scan\n"},
        ),
    ],
)
def test_each_rule_fails_on_a_bad_import(rule: str, sources: dict[str, str]) -> None:
    assert RULES[rule](parse_sources(sources)) != []


@pytest.mark.parametrize(
    ("rule", "sources"),
    [
        ("spec", {"phi3ft.config": "from phi3ft.errors import UsageError\nimport pydantic\n"}),
        ("azure", {"phi3ft.targets.azureml.sdk._core": LAZY.format("azure.identity")}),
        ("azure", {"phi3ft.targets.azureml.sdk.__init__": LAZY.format("azure.ai.ml")}),
        ("cli", {"phi3ft.cli.check": "from phi3ft.targets.azureml.checks import run_checks\n"}),
        (
            "cli",
            {"phi3ft.cli.app": "def f():\n    from phi3ft.targets.azureml.sdk import import_sdk_loggers\n"},
        ),
        ("cli", {"phi3ft.cli.baseline": "from phi3ft.targets.local import OPTIONS_FILE\n"}),
        ("cli", {"phi3ft.cli.sweep": "from phi3ft.targets.base import TERMINAL_STATUSES\n"}),
        ("cli", {"phi3ft.connect": LAZY.format("phi3ft.targets.azureml.sdk.backend")}),  # the registry may
        ("internals", {"phi3ft.connect": LAZY.format("phi3ft.targets.local.backend")}),
        ("internals", {"phi3ft.baseline": "from phi3ft.targets.azureml.endpoints import deploy_endpoint\n"}),
        ("internals", {"phi3ft.targets.azureml.checks": LAZY.format("phi3ft.targets.azureml.sdk._core")}),
        ("targets-cli", {"phi3ft.targets.azureml.checks": "from phi3ft.output import Output\n"}),
        (
            "cycles",
            {"phi3ft.data.scan": "import phi3ft.errors\n", "phi3ft.plan": "from phi3ft.data import scan\n"},
        ),
    ],
)
def test_each_rule_passes_a_good_import(rule: str, sources: dict[str, str]) -> None:
    assert RULES[rule](parse_sources(sources)) == []
