"""The ``gtn-search`` command line: one subcommand module per area, errors without tracebacks.

Every user mistake surfaces as one line ``error: <file/field>: <what and how to fix>`` on stderr
and exit status 1. An unexpected exception (a bug) prints one line too and exits with 2; set
``GTN_SEARCH_DEBUG=1`` to see its traceback. Ctrl-C (SIGINT) and SIGTERM stop a command the same
way: what was recorded is kept, worker processes are stopped, one line is printed, and the exit
status is 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

from gtn_search import __version__
from gtn_search.errors import GTNSearchError

#: Modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "gtn_search.cli.space",
    "gtn_search.cli.gtn",
    "gtn_search.cli.search",
    "gtn_search.cli.train",
    "gtn_search.cli.compare",
    "gtn_search.cli.report",
    "gtn_search.cli.quickstart",
    "gtn_search.cli.plugins",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="gtn-search",
        description="Neural architecture search accelerated by Generative Teaching Networks.",
    )
    parser.add_argument("--version", action="version", version=f"gtn-search {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that a command stops exactly as on Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        status = args.func(args)
    except GTNSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        what, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"{what}: recorded results are kept; run the same command again to resume", file=sys.stderr)
        return code
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`): not an error
        # Python would complain again when flushing stdout at exit: point it at /dev/null
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a file (captured, replaced)
            pass
        return 0
    except Exception as exc:  # a bug: one line unless debugging  # noqa: BLE001
        if os.environ.get("GTN_SEARCH_DEBUG"):
            traceback.print_exc()
        else:
            first = str(exc).splitlines()[0] if str(exc) else ""
            print(
                f"internal error: {type(exc).__name__}: {first} (this is a bug in gtn-search; "
                f"set GTN_SEARCH_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
