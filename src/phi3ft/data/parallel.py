"""Byte ranges and worker processes for validating a large file on several cores.

The validator's per-line work is independent from line to line; what spans lines (duplicates, dataset
rules, statistics, capped findings) is merged by the parent in range order, so the report is identical to
a single-process scan (``tests/unit/test_data_parallel.py``). This module holds the parts that do not
depend on the rules: how many workers, where the ranges start (always at a line start), how many lines
come before each range, and the process pool.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

#: Files larger than this are split across worker processes by default (``--workers`` overrides).
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
#: Default upper bound on worker processes.
MAX_DEFAULT_WORKERS = 4
#: Ranges are at least this large; up to 4 per worker, so a worker slowed down by other load is evened out.
MIN_RANGE_BYTES = 8 * 1024 * 1024
RANGES_PER_WORKER = 4
_READ = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers_for(size: int, workers: int | None) -> int:
    """Worker processes for a file of ``size`` bytes: ``workers`` when given, else min(CPUs, 4) for big files."""
    if workers is not None:
        return max(1, workers)
    return min(cpu_count(), MAX_DEFAULT_WORKERS) if size > PARALLEL_MIN_BYTES else 1


def range_count(size: int, workers: int) -> int:
    """How many ranges: one per worker for small files, up to 4 per worker for large ones."""
    return max(workers, min(workers * RANGES_PER_WORKER, size // MIN_RANGE_BYTES))


#: 'fork' on Linux (cheap, nothing re-imported), 'spawn' elsewhere (fork is unsafe on macOS).
START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes started with :data:`START_METHOD`."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD))


def split_ranges(path: Path, size: int, n: int) -> list[int]:
    """Boundaries ``[0, b1, ..., size]`` of up to ``n`` non-empty ranges, each ``b`` the start of a line."""
    bounds = [0]
    fd = os.open(path, os.O_RDONLY)
    try:
        for i in range(1, n):
            pos = max(size * i // n, bounds[-1] + 1)
            # the first line start at or after pos: just after the first newline at or after pos - 1
            at = pos - 1
            while at < size:
                chunk = os.pread(fd, _READ, at)
                if not chunk:
                    at = size
                    break
                k = chunk.find(b"\n")
                if k >= 0:
                    at += k + 1
                    break
                at += len(chunk)
            if at >= size:
                break
            bounds.append(at)
    finally:
        os.close(fd)
    bounds.append(size)
    return bounds


def count_newlines(path: str, end: int, start: int = 0) -> int:
    """Newlines in bytes ``[start, end)`` of ``path`` (the lines before a range)."""
    total = 0
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        pos = start
        while pos < end:
            got = f.readinto(view[: min(_READ, end - pos)])
            if not got:
                break
            total += buf.count(b"\n", 0, got)
            pos += got
    return total


def starts_like_document(path: Path, max_line: int, max_lines: int = 10_000) -> bool | None:
    """Is the first non-blank line the start of a whole JSON document (``[`` or a lone ``{``)?

    The same test the single-process scan makes (it reports F07 and stops there). None when that cannot
    be decided cheaply (an over-long line, or no content in the first ``max_lines`` lines): scan in one piece.
    """
    with open(path, "rb") as f:
        for ln in range(1, max_lines + 1):
            raw = f.readline(max_line)
            if not raw:
                return False
            if raw[-1:] == b"\n":
                body = raw[:-1]
                if body[-1:] == b"\r":
                    body = body[:-1]
            elif len(raw) == max_line:
                return None
            else:
                body = raw
            if ln == 1 and body[:3] == _BOM:
                body = body[3:]
            if not body or body.isspace():
                continue
            head = body.lstrip()[:1]
            return head == b"[" or (head == b"{" and body.strip() == b"{")
    return None
