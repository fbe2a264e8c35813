"""Run the offline Azure stack standalone and print the environment to export.

    python -m tests.azure_stack [--seed-project] [--no-azurite]

Then, in another shell, paste the printed lines and run the real ``phi3ft`` against it. Ctrl+C stops
the stack (Azurite included) and removes its temporary folder.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .stack import AzureStack


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.azure_stack", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seed-project", action="store_true", help="also seed hub-phi3ft + proj-phi3ft (eastus2)"
    )
    ap.add_argument("--no-azurite", action="store_true", help="run without blob storage")
    ap.add_argument("--log", action="store_true", help="print each request to stderr when the stack stops")
    args = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with AzureStack(azurite=not args.no_azurite) as stack:
        if args.seed_project:
            stack.state.add_project("proj-phi3ft", "hub-phi3ft")
        print(
            f"# phi3ft offline Azure stack up in {stack.startup_seconds:.1f} s; paste these lines into a shell:"
        )
        print(stack.describe(), end="")
        print("# ready (Ctrl+C stops the stack)", flush=True)
        stop.wait()
        if args.log:
            print(stack.requests.format(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
