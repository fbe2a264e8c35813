"""Child-process entry: ``python -m phi3ft.train OPTIONS.json``.

Reads :class:`TrainOptions` (JSON), prints one JSON line per :class:`TrainEvent` on stdout and a
final ``{"kind": "result", ...}`` line; errors print ``{"kind": "error", ...}`` and exit with the
phi3ft exit code. The parent (``submit`` with ``backend: local``) reads the lines as they come.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from phi3ft.errors import Phi3ftError
from phi3ft.train import TrainEvent, TrainOptions, run_training


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m phi3ft.train OPTIONS.json", file=sys.stderr)
        return 2

    def emit(event: TrainEvent) -> None:
        sys.stdout.write(event.model_dump_json(exclude_none=True) + "\n")
        sys.stdout.flush()

    try:
        options = TrainOptions.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
        result = run_training(options, progress=emit)
    except Phi3ftError as exc:
        print(json.dumps({"kind": "error", "message": exc.message, "hint": exc.hint}), flush=True)
        return int(exc.exit_code)
    print(json.dumps({"kind": "result", **result.model_dump(mode="json")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
