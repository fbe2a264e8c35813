"""Root Typer app: global options, the AppContext, one error handler, and command registration."""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click
import typer
from typer.core import TyperGroup

from phi3ft import __version__
from phi3ft.cli.context import AppContext
from phi3ft.errors import INTERRUPTED_CODE, UNEXPECTED_CODE, USAGE_CODE, ExitCode, Interrupted, Phi3ftError
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


def json_requested(args: list[str]) -> bool:
    """Whether the command line asked for JSON (``--json``, or ``--format json`` / ``-f json``).

    Read from the raw arguments, not the parsed options, so a failure before the command body runs
    (a click usage error, a config error from ``-c typo.yaml``) is reported as JSON too.
    """
    args = args[: args.index("--")] if "--" in args else args
    if "--json" in args or "--format=json" in args or "-fjson" in args:
        return True
    return any(a in ("--format", "-f") and nxt == "json" for a, nxt in itertools.pairwise(args))


def _fail(
    ctx: click.Context | None, code: str, message: str, hint: str | None, exit_code: int
) -> click.exceptions.Exit:
    """Report one failure: ``Error:``/``Hint:`` on stderr and, with ``--json``, the error document on stdout."""
    out = _output_of(ctx)
    if ctx is not None and ctx.find_root().meta.get(_JSON_META):
        out.emit_json_error(code, message, hint, exit_code)
    out.error(message, hint)
    return click.exceptions.Exit(exit_code)


_JSON_META = "phi3ft.json"


def _usage_hint(exc: click.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "phi3ft"
    return f"{path} --help"


class Phi3ftGroup(TyperGroup):
    """Turns expected errors and Ctrl+C into one-line messages and exit codes, never tracebacks.

    Handling it here (not only in ``main``) means ``CliRunner`` tests see the same behaviour as users.
    With ``--json`` every failure also prints one ``{"error": {"code", "message", "hint", "exit_code"}}``
    document on stdout (codes: :attr:`phi3ft.errors.Phi3ftError.code`, README "Errors with --json").
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

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        as_json = json_requested(list(args))
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # a bad root option: there is no context to report through
            if not as_json:
                raise
            out = Output()
            out.emit_json_error(USAGE_CODE, exc.format_message(), _usage_hint(exc), int(ExitCode.USAGE))
            out.error(exc.format_message(), _usage_hint(exc))
            raise click.exceptions.Exit(int(ExitCode.USAGE)) from None
        ctx.meta[_JSON_META] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # a deliberate Ctrl+C detach is not an error: say what keeps running
            _notice(_output_of(ctx), exc.message, exc.hint)
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except Phi3ftError as exc:
            raise _fail(ctx, exc.code, exc.message, exc.hint, int(exc.exit_code)) from None
        except KeyboardInterrupt:
            # No command resumes from an arbitrary Ctrl+C (submit re-attaches by itself): say only what is true.
            if ctx.meta.get(_JSON_META):
                raise _fail(
                    ctx, INTERRUPTED_CODE, "Interrupted.", "Run the command again to start over.",
                    int(ExitCode.INTERRUPTED),
                ) from None  # fmt: skip
            _notice(_output_of(ctx), "Interrupted.", "Run the command again to start over.")
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            raise  # the reader went away (`phi3ft ... | head`): main() exits quietly
        except click.UsageError as exc:
            if not ctx.meta.get(_JSON_META):
                raise  # click prints it with the usage line
            raise _fail(ctx, USAGE_CODE, exc.format_message(), _usage_hint(exc), int(exc.exit_code)) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("PHI3FT_DEBUG") == "1":
                raise
            raise _fail(
                ctx,
                UNEXPECTED_CODE,
                f"Unexpected error: {type(exc).__name__}: {exc}",
                "Re-run with PHI3FT_DEBUG=1 for the traceback, and report it at the project's issue tracker.",
                int(ExitCode.ERROR),
            ) from None


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
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Also show the Azure SDK's own log lines on stderr (redacted); PHI3FT_DEBUG=1 adds debug lines.",
    ),
) -> None:
    if ctx.obj is None:
        ctx.obj = AppContext(output=Output(quiet=quiet))
    elif quiet:
        ctx.obj.output.quiet = True
    app_ctx: AppContext = ctx.obj
    debug = app_ctx.env.get("PHI3FT_DEBUG") == "1"
    ctx.call_on_close(sdk_logging(app_ctx.output, verbose=verbose or debug, debug=debug))


#: Loggers and warning sources of the SDKs phi3ft drives. azure-ai-ml gives some of its loggers their own
#: stderr handler (ARM deployment progress: "Creating AzureML Workspace ... Done"), so levels alone do not
#: silence them: logging is switched off for the command instead.
SDK_LOGGERS = ("azure", "msal", "urllib3")
_SDK_WARNINGS = r"(azure|msal|urllib3)(\..*)?$"


def sdk_logging(out: Output, *, verbose: bool, debug: bool = False) -> Callable[[], None]:
    """Quiet SDKs for one command (``-q`` or not), or with ``verbose`` show their logs on stderr, redacted.

    Quiet: every log record is dropped (``DefaultAzureCredential failed ...``, ``This is an experimental
    class``, ARM deployment progress) and SDK ``warnings`` are ignored. Returns the undo (tests run many
    commands in one process).
    """
    import logging
    import warnings

    from phi3ft.redact import RedactingFilter, redact

    previous_disable = logging.root.manager.disable
    catcher = warnings.catch_warnings()
    catcher.__enter__()
    handler: logging.Handler | None = None
    previous_levels: dict[str, int] = {}
    rerouted: list[tuple[logging.Logger, list[logging.Handler], int]] = []
    previous_factory = logging.getLogRecordFactory()
    if verbose:
        logging.disable(logging.NOTSET)

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            # Some azure-ai-ml loggers print through handlers of their own: redact every record at birth.
            record = previous_factory(*args, **kwargs)
            record.msg, record.args = redact(record.getMessage()), None
            return record

        logging.setLogRecordFactory(redacting_factory)
        handler = logging.StreamHandler(out.stderr)
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        level = logging.DEBUG if debug else logging.INFO
        for name in SDK_LOGGERS:
            logger = logging.getLogger(name)
            previous_levels[name] = logger.level
            logger.setLevel(level)
            logger.addHandler(handler)
        # azure-ai-ml gives some loggers a handler of their own (bound to the stderr of import time) and
        # stops propagation: import it now and route them through the one handler above for this command.
        from phi3ft.targets.azureml.sdk import import_sdk_loggers

        import_sdk_loggers()
        for name, own in list(logging.root.manager.loggerDict.items()):
            if isinstance(own, logging.Logger) and name.split(".", 1)[0] in SDK_LOGGERS and not own.propagate:
                rerouted.append((own, list(own.handlers), own.level))
                own.handlers, own.propagate = [], True
                own.setLevel(logging.NOTSET)
    else:
        logging.disable(logging.CRITICAL)
        warnings.filterwarnings("ignore", module=_SDK_WARNINGS)

    def undo() -> None:
        logging.disable(previous_disable)
        logging.setLogRecordFactory(previous_factory)
        if handler is not None:
            for name, lvl in previous_levels.items():
                logging.getLogger(name).removeHandler(handler)
                logging.getLogger(name).setLevel(lvl)
        for logger, handlers, lvl in rerouted:
            logger.handlers, logger.propagate = handlers, False
            logger.setLevel(lvl)
        catcher.__exit__(None, None, None)

    return undo


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
