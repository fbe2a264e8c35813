"""Hints that add an extra name the source phi3ft was installed from (it is not on PyPI)."""

from __future__ import annotations

import json

import pytest

from phi3ft.install import extra_install_command


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        (
            {"url": "file:///src/phi3ft", "dir_info": {"editable": True}},
            "pip install -e '/src/phi3ft[train]'",
        ),
        (
            {"url": "file:///opt/my%20tools/phi3ft", "dir_info": {}},
            "pip install '/opt/my tools/phi3ft[train]'",
        ),
        (
            {
                "url": "https://github.com/acme/phi3ft",
                "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "v0.4"},
            },
            f"pip install 'phi3ft[train] @ git+https://github.com/acme/phi3ft@{'a' * 40}'",
        ),
        (
            {"url": "file:///wheels/phi3ft-0.4-py3-none-any.whl", "archive_info": {}},
            "pip install '/wheels/phi3ft-0.4-py3-none-any.whl[train]'",
        ),
        ({"url": "https://example.org/phi3ft-0.4.tar.gz", "archive_info": {}}, None),
        (None, None),
    ],
)
def test_extra_install_command_names_the_installed_source(direct_url: object, expected: str | None) -> None:
    raw = None if direct_url is None else json.dumps(direct_url)
    got = extra_install_command("train", lambda: raw)
    assert got == (expected or "pip install -e '.[train]' in your phi3ft checkout")
    assert "pip install 'phi3ft[train]'" not in got  # the name alone is not on PyPI


def test_unreadable_direct_url_falls_back_to_the_checkout_form() -> None:
    assert (
        extra_install_command("plot", lambda: "{not json")
        == "pip install -e '.[plot]' in your phi3ft checkout"
    )


def test_this_installation_gets_a_command() -> None:
    assert extra_install_command("train").startswith("pip install ")


def test_the_printed_hint_keeps_the_extra_in_brackets() -> None:
    """Rich used to read `[train]` as markup and print `pip install -e '/src/phi3ft'`."""
    import io

    from phi3ft.output import Output

    err = io.StringIO()
    Output(stderr=err).error("the local trainer needs peft [x]", "pip install -e '/src/phi3ft[train]'")
    assert err.getvalue().splitlines() == [
        "Error: the local trainer needs peft [x]",
        "Hint: pip install -e '/src/phi3ft[train]'",
    ]
