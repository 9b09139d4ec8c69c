"""Options and set-up shared by every command."""

from __future__ import annotations

import logging

import click

__all__ = ["configure_logging", "seed_option", "verbosity_options"]


def configure_logging(verbose: int, quiet: int) -> None:
    """Send library log records to stderr at a level set by -v and -q counts."""
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(logging.CRITICAL, level)),
                        format="%(levelname)s %(name)s: %(message)s")


def verbosity_options(function):
    """Add -v/--verbose and -q/--quiet count options."""
    function = click.option("-q", "--quiet", count=True, help="Show fewer log messages (repeatable).")(function)
    function = click.option("-v", "--verbose", count=True, help="Show more log messages (repeatable).")(function)
    return function


seed_option = click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True,
    help="Seed of every random draw (weights, sample rows); the same seed gives the same output.",
)
