"""The `nas` command line: search | train | latency | export | space | ops | show."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import traceback

from nas import __version__
from nas.errors import SearchFailed, UserError
from ops.registry import OpError
from search_spaces import SpaceError
from search_spaces.arch_check import ArchError

# each sub-command lives in nas/commands/<name>.py with `register(subparsers)` setting `func`
COMMANDS = ("search", "train", "latency", "export", "space", "ops", "show")
# what bad input raises (nas.errors.UserError covers SpecError, DataError, ...; spaces and ops live below nas)
USER_ERRORS = (UserError, SpaceError, OpError, ArchError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Hardware-aware neural architecture search over convolution ops.",
        epilog="Run `nas COMMAND --help` for the options of one command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nas.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"nas.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # a second Ctrl-C (or one still pending) while the interpreter shuts down must not turn the clean exit into
        # a death by SIGINT: ignore it from here on
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted; the run folder is resumable with --resume", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nas {args.command}: error: {msg}", file=sys.stderr)
        return 1 if isinstance(e, SearchFailed) else 2
    except Exception:  # noqa: BLE001  (anything else is a bug of ours: show where)
        traceback.print_exc()
        print(f"nas {args.command}: internal error (a bug in convnas, not in your input); please report it with "
              f"the traceback above", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
