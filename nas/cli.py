"""The `nas` command line: search | train | latency | export | space | ops."""
from __future__ import annotations

import argparse
import importlib
import sys

# each sub-command lives in nas/commands/<name>.py with `register(subparsers)` setting `func`
COMMANDS = ("search", "train", "latency", "export", "space", "ops")


class UserError(Exception):
    """Bad input: printed as one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Hardware-aware neural architecture search over convolution ops.",
        epilog="Run `nas COMMAND --help` for the options of one command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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


def _version() -> str:
    from nas import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; the run folder is resumable with --resume", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nas {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
