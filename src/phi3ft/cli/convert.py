"""``phi3ft convert``: a thin wrapper over phi3ft.data.convert (parse, one call, render)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phi3ft.cli.context import AppContext

#: skips listed on screen (``--json`` lists all)
SKIPS_SHOWN = 20


def convert_cmd(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="Dataset file: JSON Lines, a JSON array, CSV, TSV (each may be gzip-compressed) or "
            "Parquet (needs the convert extra). The container is detected from the first bytes."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="Chat JSONL to write. Default: next to the input, NAME.chat.jsonl.",
        ),
    ] = None,
    shape: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="SHAPE",
            help="Record shape: auto (detect from the first 20 records; the pick is printed), openai "
            "(`messages`; other keys dropped), sharegpt (`conversations` of from/value: human, gpt, "
            "system), alpaca (instruction/input/output), prompt-completion, table (needs --map).",
        ),
    ] = "auto",
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="ROLE=COLUMN",
            help="Table columns per role, ROLE=COLUMN (repeat or comma-separate): "
            "--map user=question --map assistant=answer [--map system=context]. Implies --from table.",
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option("--system", help="System message to add to every record that has none."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout (every skip listed).")
    ] = False,
) -> None:
    """Convert a dataset in another common shape to chat-completion JSONL, streaming.

    Writes one {"messages": [...]} record per line (UTF-8, LF); message contents are stripped of
    surrounding whitespace. Records that cannot become a trainable chat example (empty answer, unknown
    speaker, turns that do not alternate, ...) are skipped and listed with their source line (row number
    for Parquet). The file is written to a temporary name and renamed at the end: an interrupted or
    failed run leaves no output file. Next step: `phi3ft validate OUT`.

    Exit codes: 0 converted (skips are reported, not errors), 2 usage error (e.g. output exists without
    --force), 3 unreadable data (malformed JSON, invalid UTF-8, unknown shape, nothing convertible),
    4 Parquet without pyarrow.
    """
    from phi3ft.data.convert import convert_file, parse_map

    app_ctx: AppContext = ctx.obj
    out = app_ctx.for_command(json=json_out)
    src = source if source.is_absolute() else app_ctx.cwd / source
    dest = None if output is None else (output if output.is_absolute() else app_ctx.cwd / output)
    columns = parse_map(mapping or [])
    if columns and shape == "auto":
        shape = "table"
    result = convert_file(src, dest, shape=shape, mapping=columns, system=system, force=force)
    if json_out:
        out.emit_json(result.to_dict())
        return
    how = "detected" if result.detected else ("from --map" if columns else "from --from")
    where = result.container + (f" ({result.compression})" if result.compression else "")
    mapped = (
        " (" + ", ".join(f"{r}={c}" for r, c in (result.mapping or {}).items()) + ")"
        if result.mapping
        else ""
    )
    out.info(f"Input: {where}; shape: {result.shape}{mapped} ({how}).")
    out.print(f"converted {result.converted:,} records -> {result.output}", markup=False)
    if result.system_added:
        out.print(f"system message added to {result.system_added:,} records")
    if result.skips:
        out.print(f"skipped {result.skipped:,} records:")
        for reason, n in result.skip_reasons().items():
            out.print(f"  {n:,} x {reason}", markup=False)
        unit = "row" if result.container == "parquet" else "line"
        for skip in result.skips[:SKIPS_SHOWN]:
            out.print(f"  {unit} {skip.line}: {skip.reason}", markup=False)
        if result.skipped > SKIPS_SHOWN:
            out.print(f"  ... {result.skipped - SKIPS_SHOWN:,} more (--json lists every skip)", markup=False)
    out.hint(f"phi3ft validate {result.output}")


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the root app."""
    app.command("convert")(convert_cmd)
