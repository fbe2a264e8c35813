from collections.abc import Callable

def line_scan(body: bytes, /) -> tuple[int, int]: ...
def case_counts(text: str, /) -> tuple[int, int] | None: ...
def set_odd_case(codepoints: bytes, lower_changes: bytes, upper_changes: bytes, /) -> None: ...
def count_newlines(fd: int, start: int, end: int, /) -> int: ...
def simd(enabled: bool | None = None, /) -> bool: ...

class Walker:
    def __init__(
        self,
        special_texts: tuple[str, ...],
        drops_system: bool,
        common_prefix: Callable[[str, str], str],
        common_suffix: Callable[[str, str], str],
        /,
    ) -> None: ...
    def walk(self, obj: object, check_special: object, train: object, /) -> tuple[int, int, bool] | None: ...
    def answer(self, content: str, /) -> bool: ...
    def take(self) -> tuple[int, int, int, bool, str | None, str | None, str | None]: ...
    def configure(
        self,
        loads: Callable[[memoryview], object],
        dumps: Callable[[object], bytes],
        t09_chars: int,
        max_line_bytes: int,
        lines_shown: int,
        /,
    ) -> None: ...
    def scan(
        self, buf: bytes, pos: int, limit: int, base: int, line: int, train: object, /
    ) -> tuple[int, int, int, int]: ...
    def record(
        self,
        key: int,
        line: int,
        offset: int,
        length: int,
        messages: int,
        chars: int,
        has_system: object,
        train: object,
        /,
    ) -> None: ...
    def take_records(self) -> tuple[int, bytes, bytes, int, list[int], bytes, bytes, bytes, bytes]: ...
