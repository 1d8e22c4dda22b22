"""``swv``: the operator's command for an SWV's pipeline (installed with the project).

    swv night [--region FILE] [--date YYYY-MM-DD] [--gemeente GMxxxx]...   run a whole night
    swv check [--region FILE]                                              check the region file and its sources
    swv init --swv VO2501 [--output FILE]                                  write a starting region file

Every command is a module function ``main(argv) -> int`` registered in ``COMMANDS`` with one line;
a command may be several words (``swv monitor backfill``). A command's module is imported only when
it runs, so ``swv --help`` answers at once and one broken command cannot break the others.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    words: str  # what follows ``swv``: "night", "monitor backfill"
    target: str  # "module:function"; the function takes the remaining arguments and returns the exit code
    summary: str  # one line for ``swv --help``

    def run(self, argv: list[str]) -> int:
        module, function = self.target.split(":")
        return int(getattr(importlib.import_module(module), function)(argv) or 0)


COMMANDS: tuple[Command, ...] = (
    Command("night", "pipelines.commands.night:main", "run a whole night: every source, the outputs, every export"),
    Command("check", "pipelines.commands.check:main", "check the region file and what every source would read"),
    Command("init", "pipelines.commands.init:main", "write a starting region file for an SWV from the public tables"),
    Command("accept", "pipelines.commands.accept:main", "list held-back deliveries, or accept a real drop in volume"),
    Command("monitor backfill", "pipelines.commands.monitor_backfill:main",
            "recompute the support-plan monitor for past nights"),
)


def usage(commands: Sequence[Command] = COMMANDS, prefix: str = "") -> str:
    width = max(len(c.words) for c in commands)
    listed = "\n".join(f"  swv {c.words:<{width}}  {c.summary}" for c in commands if c.words.startswith(prefix))
    return ("usage: swv <command> [options]   (swv <command> --help for its options)\n\n"
            f"commands:\n{listed}\n\nThe steps for a new SWV: docs/onboarding.md.")


def find(argv: Sequence[str], commands: Sequence[Command] = COMMANDS) -> tuple[Command | None, list[str]]:
    """The command the arguments start with (the longest one, so ``monitor backfill`` beats ``monitor``)."""
    for command in sorted(commands, key=lambda c: -len(c.words.split())):
        words = command.words.split()
        if list(argv[:len(words)]) == words:
            return command, list(argv[len(words):])
    return None, list(argv)


def main(argv: Sequence[str] | None = None, commands: Sequence[Command] = COMMANDS) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(commands))
        return 0 if argv else 2
    command, rest = find(argv, commands)
    if command is None:
        group = [c for c in commands if c.words.startswith(argv[0] + " ")]
        if group:  # "swv monitor" alone: the commands of that group
            print(usage(group, prefix=argv[0]), file=sys.stderr)
            return 2
        close = difflib.get_close_matches(argv[0], [c.words.split()[0] for c in commands], n=1)
        hint = f" (did you mean 'swv {close[0]}'?)" if close else ""
        print(f"swv: unknown command {argv[0]!r}{hint}\n\n{usage(commands)}", file=sys.stderr)
        return 2
    try:
        return command.run(rest)
    except KeyboardInterrupt:
        print(f"\nswv {command.words}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
