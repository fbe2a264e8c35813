"""The repository's docs: install instructions that work (phi3ft is not on PyPI) and pin what they install."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

#: Files a user copies install commands from.
DOC_GLOBS = ("README.md", "docs/**/*.md", "examples/**/*", ".github/**/*", "benchmarks/README.md")

#: `pip install` of phi3ft itself: from a checkout (`.`, `./phi3ft`, with or without extras, `-e`) or from a
#: git URL pinned with `@<ref>`.
_CHECKOUT = re.compile(r"""^['"]?\.(/phi3ft)?(\[[a-z,]+\])?['"]?$""")
_PINNED_GIT = re.compile(r"""^['"]?phi3ft(\[[a-z,]+\])? @ git\+https://github\.com/\S+/phi3ft@\S+['"]?$""")


def _doc_files() -> list[Path]:
    files: set[Path] = set()
    for pattern in DOC_GLOBS:
        files.update(p for p in REPO.glob(pattern) if p.is_file())
    return sorted(files)


def _commands(path: Path) -> str:
    """What a user pastes: fenced code blocks of Markdown files, the non-comment lines of other files."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".md":
        return "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S))
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _phi3ft_installs(text: str) -> list[str]:
    """The argument of every `pip install` that installs phi3ft (not its dependencies such as torch)."""
    found = []
    for m in re.finditer(r"""pip install((?: -[a-zA-Z]+| --[a-z-]+)*) ("[^"]*"|'[^']*'|\S+)""", text):
        target = m.group(2)
        if "phi3ft" in target or re.match(r"""^['"]?\.(\[|['"]|$)""", target):
            found.append(target)
    return found


def test_every_phi3ft_install_instruction_is_a_checkout_or_a_pinned_git_url() -> None:
    bad: list[str] = []
    seen = 0
    for path in _doc_files():
        for target in _phi3ft_installs(_commands(path)):
            seen += 1
            if "git+" in target:
                ok = bool(_PINNED_GIT.match(target)) or "${PHI3FT_REF}" in target
            else:
                ok = bool(_CHECKOUT.match(target))
            if not ok:
                bad.append(f"{path.relative_to(REPO)}: pip install {target}")
    assert seen >= 5, "the install instructions were not found (did the docs move?)"
    assert not bad, (
        "install instructions that do not work (phi3ft is not on PyPI) or are not pinned:\n" + "\n".join(bad)
    )


def test_the_ci_example_installs_a_pinned_commit() -> None:
    workflow = (REPO / "examples" / "github" / "finetune.yml").read_text(encoding="utf-8")
    assert 'pip install "phi3ft @ git+https://github.com/${PHI3FT_REPO}@${PHI3FT_REF}"' in workflow
    assert re.search(r"PHI3FT_REF: [0-9a-f]{40}\n", workflow)
    assert "pip install phi3ft\n" not in workflow
    ci = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    assert "not published on PyPI" in ci and "pinned" in ci


#: Mentions of the developers' reference notes that live outside the repository, or of paths beside it.
_OUTSIDE = re.compile(
    r"\.\./shared|REPO\.parent|azure-facts|phi-models\.md|offline-azure-testing\.md|\bdesign\.md"
)


def test_no_file_points_outside_the_repository() -> None:
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    this = str(Path(__file__).resolve().relative_to(REPO))
    bad = []
    for name in listed:
        path = REPO / name
        if name == this or not path.is_file() or path.suffix in {".so", ".png", ".jsonl"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                bad.append(f"{name}:{n}: {line.strip()[:120]}")
    assert not bad, "references to documents or paths outside the repository:\n" + "\n".join(bad)
