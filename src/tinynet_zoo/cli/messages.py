"""Error messages as command-line users read them: the library names its Python keyword arguments (`overwrite=True`,
`checkpoint_path=`); the command line shows the running command's own flag for each (`--overwrite`), found in the
argparse tree, or what to give instead where the command has no such flag."""
from __future__ import annotations

import argparse
import re

# keywords whose flag has another name, and keywords no command has a flag for (what to give instead)
ALIASES = {"compare": "--no-compare", "precision": "--int8"}
INSTEAD = {"checkpoint_path": "a model folder as MODEL (in Python, checkpoint_path=)",
           "inherit_from": "a larger pretrained model (in Python, inherit_from=)"}
# "--overwrite (CLI: --overwrite)", "--calibration DIR (CLI: --int8 --calibration DIR)": the flag said once
_SAID_TWICE = re.compile(r"(--[a-z0-9-]+(?: \S+)?) \((?:CLI: )?--[a-z0-9-]+(?: [^)]*)?\)")
_KEYWORD = re.compile(r"\b([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;)]*)")


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each destination of a command's optional flags, and its action."""
    return {a.dest: a for a in parser._actions if a.option_strings}


def _flag(action: argparse.Action, keyword: str, value: str) -> str:
    """`--flag value` (or the bare switch) for `keyword=value`."""
    flag = max(action.option_strings, key=len)
    plain = value.strip("'\"")
    if isinstance(action, argparse._StoreTrueAction):
        on = plain != ("True" if action.dest != keyword else "False")  # a keyword's value sets --no-X's opposite
        return flag if on or not plain else f"without {flag}"
    return f"{flag} {plain}" if plain else flag


def _in_call(text: str, at: int) -> bool:
    """Whether position `at` lies inside the parentheses of a call or repr such as `Twist(...)`."""
    opened = text.rfind("(", 0, at)
    return opened > 0 and text.rfind(")", 0, at) < opened and (text[opened - 1].isalnum() or text[opened - 1] == "_")


def for_command(message: str, parser: argparse.ArgumentParser) -> str:
    """`message` with each Python keyword that the command has a flag for written as that flag."""
    flags = _flags(parser)

    def swap(match: re.Match) -> str:
        keyword, value = match.group(1), match.group(2)
        if _in_call(message, match.start()):  # code shown as it is, e.g. Twist(r=1.0, resolution=64)
            return match.group(0)
        dest = ALIASES.get(keyword, f"--{keyword.replace('_', '-')}").lstrip("-").replace("-", "_")
        if dest in flags:
            return _flag(flags[dest], keyword, value)
        return INSTEAD.get(keyword, match.group(0))
    return _SAID_TWICE.sub(r"\1", _KEYWORD.sub(swap, message))


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of one command of the tree."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]
