"""The command that adds an optional extra to *this* installation (phi3ft is not on PyPI).

``pip install 'phi3ft[train]'`` would install nothing, or someone else's package of that name; the hint must
name the source phi3ft was installed from. pip records it in the distribution's ``direct_url.json``
(PEP 610): a local folder (editable or not), a git URL with its commit, or an archive. Leaf module: stdlib only.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from urllib.parse import unquote, urlparse

#: When the source is unknown (e.g. run from a checkout through PYTHONPATH): the checkout form.
FALLBACK = "pip install -e '.[{extra}]' in your phi3ft checkout"


def _direct_url() -> str | None:
    from importlib import metadata

    try:
        return metadata.distribution("phi3ft").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None


def _local_path(url: str) -> str | None:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" and parsed.path else None


def extra_install_command(extra: str, read_direct_url: Callable[[], str | None] = _direct_url) -> str:
    """``pip install ...`` that adds ``extra`` to phi3ft from the place it was installed from."""
    raw = read_direct_url()
    try:
        info = json.loads(raw) if raw else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return FALLBACK.format(extra=extra)
    url: str = info["url"]
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git":
        ref = vcs.get("commit_id") or vcs.get("requested_revision")
        pinned = f"git+{url}@{ref}" if ref else f"git+{url}"
        return "pip install " + shlex.quote(f"phi3ft[{extra}] @ {pinned}")
    path = _local_path(url)
    if path is None:
        return FALLBACK.format(extra=extra)
    dir_info = info.get("dir_info")
    editable = isinstance(dir_info, dict) and bool(dir_info.get("editable"))
    return "pip install " + ("-e " if editable else "") + shlex.quote(f"{path}[{extra}]")
