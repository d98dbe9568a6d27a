"""MkDocs hook: the CLI page shows ``--help`` of every command and the environment variables,
rendered from the parser and from ``hubspot_tx._env`` at build time (so they cannot drift)."""

from __future__ import annotations

import argparse
from typing import Any

from hubspot_tx._env import VARIABLES
from hubspot_tx.cli._main import build_parser

MARKER = "<!-- cli-help -->"
VARIABLES_MARKER = "<!-- env-variables -->"


def _commands(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{path} {name}")
    return found


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the markers with the rendered help and the variables table."""
    if VARIABLES_MARKER in markdown:
        rows = "\n".join(f"| `{name}` | {text} |" for name, text in VARIABLES.items())
        markdown = markdown.replace(VARIABLES_MARKER, f"| variable | meaning |\n|---|---|\n{rows}")
    if MARKER in markdown:
        sections = []
        for path, parser in _commands(build_parser(), "hubspot-tx"):
            sections.append(f"### `{path}`\n\n```text\n{parser.format_help()}```\n")
        markdown = markdown.replace(MARKER, "\n".join(sections))
    return markdown
