"""The `tinynet-zoo` command line: `main` runs one command of the tree in `parser`, prints its result (text, or
strict JSON with --json) and turns the package's errors into one line on stderr with exit code 2. A SIGTERM
(a job scheduler's or container's stop) ends a command the way Ctrl-C does: its temporary files are removed and what
was kept is said, with exit code 143."""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..errors import TinyNetZooError
from ..files import json_text
from ..weights.reach import unreachable_reason
from .messages import for_command, subcommand
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tinynet-zoo` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    terminated: list[int] = []
    try:
        with sigterm_as_interrupt(terminated):
            data, text = args.func(args)
    except TinyNetZooError as exc:
        print(f"tinynet-zoo: error: {for_command(str(exc), subcommand(parser, args.command))}", file=sys.stderr)
        return 2
    except Exception as exc:  # another library's failed connection (no network, refused, timed out): one line too
        reason = unreachable_reason(exc)
        if reason is None:
            raise
        print(f"tinynet-zoo: error: a server could not be reached ({reason}); check the network, or set "
              "HF_HUB_OFFLINE=1 to work from the cache", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: one line saying what was kept and how to continue
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"tinynet-zoo: {how}{'; ' + str(exc) if exc.args else ''}", file=sys.stderr)
        return 143 if terminated else 130
    if data is None and not text:  # e.g. a non-zero rank under torchrun: nothing to say
        return 0
    print(json_text(data, indent=1) if args.json else text)
    return 0


@contextmanager
def sigterm_as_interrupt(terminated: list[int]) -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (recorded in `terminated`), so the same clean-up runs as
    for Ctrl-C; the previous handler is restored after. Only in the main thread, where handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
