"""Root Typer app: global options, the AppContext, one error handler, and command registration."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click
import typer
from typer.core import TyperGroup

from phi3ft import __version__
from phi3ft.cli.context import AppContext
from phi3ft.errors import ExitCode, Interrupted, Phi3ftError
from phi3ft.output import Output

#: Command modules, each exposing ``register(app)``. Listed by name so ``--help`` stays cheap: a module
#: may only import heavy dependencies (azure.*, torch) inside its command functions.
COMMAND_MODULES: tuple[str, ...] = (
    "phi3ft.cli.validate",
    "phi3ft.cli.rules",
    "phi3ft.cli.convert",
    "phi3ft.cli.config_cmds",
    "phi3ft.cli.check",
    "phi3ft.cli.jobs",
    "phi3ft.cli.deploy",
    "phi3ft.cli.sweep",
    "phi3ft.cli.train",
    "phi3ft.cli.doctor",
)


def _output_of(ctx: click.Context | None) -> Output:
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.output if isinstance(obj, AppContext) else Output()


def _notice(out: Output, message: str, hint: str | None) -> None:
    """A plain line on stderr (no ``Error:`` prefix) and its hint, printed even with --quiet."""
    from rich.markup import escape

    out.err.print(escape(message), highlight=False)
    if hint:
        out.hint(hint)


class Phi3ftGroup(TyperGroup):
    """Turns expected errors and Ctrl+C into one-line messages and exit codes, never tracebacks.

    Handling it here (not only in ``main``) means ``CliRunner`` tests see the same behaviour as users.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each command's whole first sentence (click cuts it at ~45 columns)."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # a deliberate Ctrl+C detach is not an error: say what keeps running
            _notice(_output_of(ctx), exc.message, exc.hint)
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except Phi3ftError as exc:
            _output_of(ctx).error(exc.message, exc.hint)
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            # No command resumes from an arbitrary Ctrl+C (submit re-attaches by itself): say only what is true.
            _notice(_output_of(ctx), "Interrupted.", "Run the command again to start over.")
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            raise  # the reader went away (`phi3ft ... | head`): main() exits quietly
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("PHI3FT_DEBUG") == "1":
                raise
            out = _output_of(ctx)
            out.error(
                f"Unexpected error: {type(exc).__name__}: {exc}",
                "Re-run with PHI3FT_DEBUG=1 for the traceback, and report it at the project's issue tracker.",
            )
            raise click.exceptions.Exit(int(ExitCode.ERROR)) from None


app = typer.Typer(
    name="phi3ft",
    cls=Phi3ftGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (click's completion; imports nothing heavy)
    suggest_commands=False,  # click already says "Did you mean ...?"; Typer's own would repeat it
    rich_markup_mode=None,  # click's formatter: re-flows docstrings to the terminal, never truncates an option
    context_settings={"max_content_width": 200},
    help=(
        "Fine-tune Phi models in Azure AI Foundry: validate chat JSONL, check prerequisites, submit the "
        "fine-tune, deploy a serverless endpoint, smoke-test it, and delete everything again.\n\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 3 invalid data/config, 4 prerequisites missing, "
        "5 remote job failed, 130 interrupted."
    ),
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"phi3ft {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and data; no progress."),
) -> None:
    if ctx.obj is None:
        ctx.obj = AppContext(output=Output(quiet=quiet))
    elif quiet:
        ctx.obj.output.quiet = True


def _redact_logging() -> None:
    from phi3ft.redact import install_log_redaction

    install_log_redaction()  # SDK warnings printed by logging.lastResort go through the redactor too


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)


_register_commands()
_redact_logging()


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: returns the exit code instead of raising SystemExit mid-stack."""
    try:
        # With standalone_mode=False click *returns* the code of a typer.Exit/click Exit instead of raising.
        rc = app(args=argv, prog_name="phi3ft", standalone_mode=False)
        if isinstance(rc, int) and rc:
            return rc
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        Output().error("Interrupted.")
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        Output().error("Interrupted.")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception:  # pragma: no cover - last resort, the group handler catches command errors
        if os.environ.get("PHI3FT_DEBUG") == "1":
            from phi3ft.redact import redact

            sys.stderr.write(redact(traceback.format_exc()))  # SDK exception texts can hold SAS URLs
        Output().error("Unexpected error.", "Re-run with PHI3FT_DEBUG=1 for the traceback.")
        return int(ExitCode.ERROR)
    return 0
