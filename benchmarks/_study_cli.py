"""The command line every study script shares: ``run --out DIR ...`` records, ``table --out DIR`` prints
the markdown table made from them (and, for scripts that time each case in a fresh process, ``one``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def study_parser(doc: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction, argparse.ArgumentParser]:
    """The parser with its ``run`` command (``--out`` given; add the study's own options) and ``table``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run")
    runner.add_argument("--out", required=True)
    commands.add_parser("table").add_argument("--out", required=True)
    return parser, commands, runner


def dispatch(args: argparse.Namespace, run: Callable[[argparse.Namespace], None],
             table: Callable[[Path], list[str]], one: Callable[[argparse.Namespace], None] | None = None) -> None:
    """Carry out the parsed command."""
    if args.command == "run":
        run(args)
    elif args.command == "one" and one is not None:
        one(args)
    else:
        print("\n".join(table(Path(args.out))))
