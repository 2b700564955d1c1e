"""Option values shared by several commands, parsed from their command-line text."""
from __future__ import annotations


def pretrained_option(text: "str | None") -> "bool | str | None":
    """--pretrained: 'True'/'False' (any case) as bools; 'inherit' and checkpoint tags as given; None when absent."""
    if isinstance(text, str) and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text
