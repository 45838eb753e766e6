"""`dvp agent ...`: registered on the `dvp` command through the entry-point group `dvp.commands`."""

from __future__ import annotations

import click


@click.group()
def agent() -> None:
    """Run one party's agent: its own keys, its own journal, an authenticated channel to the other."""
