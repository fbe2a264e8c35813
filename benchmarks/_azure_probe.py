"""Run ``phi3ft ARGS`` in this process (through the console-script entry point) and write where its time went (``benchmarks/azure_cmds_bench.py``).

    python benchmarks/_azure_probe.py OUT.json ARGS...

Times every HTTP request the process sends (every Azure client here, azure-identity's MSAL included, goes
through ``requests.adapters.HTTPAdapter.send``; the hook is installed when ``requests.adapters`` is first
imported, so it costs nothing before then), when the first request started, how many modules were imported,
and whether ``azure.ai.ml`` was among them. Stdlib only before phi3ft runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import time
from typing import Any

T0 = time.perf_counter()
REQUESTS: list[dict[str, Any]] = []


class _Hook(importlib.abc.MetaPathFinder):
    """Wraps ``HTTPAdapter.send`` right after ``requests.adapters`` executes."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "requests.adapters":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            send = module.HTTPAdapter.send

            def timed_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return send(self, request, *args, **kwargs)
                finally:
                    end = time.perf_counter()
                    from urllib.parse import urlsplit

                    url = urlsplit(request.url)
                    REQUESTS.append(
                        {
                            "method": request.method,
                            "host": url.hostname,
                            "path": url.path,
                            "start": start - T0,
                            "seconds": end - start,
                        }
                    )

            module.HTTPAdapter.send = timed_send

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _dump(out_path: str) -> None:
    doc = {
        "seconds": time.perf_counter() - T0,
        "requests": REQUESTS,
        "modules": len(sys.modules),
        "azure_ai_ml": "azure.ai.ml" in sys.modules,
        "azure": any(m == "azure" or m.startswith("azure.") for m in sys.modules),
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


def main() -> int:
    import atexit

    out_path, args = sys.argv[1], sys.argv[2:]
    sys.meta_path.insert(0, _Hook())
    atexit.register(_dump, out_path)  # runs even when the CLI ends the process itself after its command
    sys.argv = ["phi3ft", *args]
    from phi3ft.cli import main as phi3ft_main  # the console-script entry point, as `phi3ft ...` runs it

    return int(phi3ft_main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
