"""Command line of the TPC-H landing-zone generator (``python -m pipelines.tpch.datagen``)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from pipelines.tpch.datagen.errors import DatagenError
from pipelines.tpch.datagen.generate import DatagenConfig, format_summary, generate
from pipelines.tpch.datagen.layout import MIN_ORDER_DATE, drop_dates

__all__ = ["build_parser", "main", "parse_config"]


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line on stderr (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _int_at_least(minimum: int) -> argparse._ActionType:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Parser of the generator's command line.

    :return: the parser.
    """
    parser = _Parser(
        prog="python -m pipelines.tpch.datagen",
        description="Generate TPC-H data with tpchgen-cli and lay it out as an initial load "
        "plus one daily drop per order date, optionally with injected faults.",
    )
    parser.add_argument("--sf", type=_positive_float, required=True, help="scale factor")
    parser.add_argument(
        "--days", type=_int_at_least(1), required=True, help="daily drops (last order dates)"
    )
    parser.add_argument("--landing", type=Path, required=True, help="landing root folder")
    parser.add_argument(
        "--seed", type=_int_at_least(0), default=42, help="seed for --chaos (default 42)"
    )
    parser.add_argument(
        "--chaos", action="store_true", help="inject faults and write chaos_manifest.json"
    )
    parser.add_argument(
        "--history-days",
        type=_int_at_least(0),
        default=0,
        help="extra daily drops for the order dates before the last --days (default 0)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> DatagenConfig:
    """Parse and validate the command line.

    :param argv: arguments without the program name (``sys.argv[1:]`` when ``None``).
    :return: the generation settings.
    :raises SystemExit: status 2 with a one-line message on bad arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # The initial load must not be empty: it has to start on or after the first order date.
    if drop_dates(args.days, args.history_days)[0] < MIN_ORDER_DATE:
        latest = drop_dates(1)[1] - MIN_ORDER_DATE - timedelta(days=1)
        parser.error(f"--days + --history-days must be at most {latest.days}")
    return DatagenConfig(
        sf=args.sf,
        days=args.days,
        landing=args.landing,
        seed=args.seed,
        chaos=args.chaos,
        history_days=args.history_days,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator.

    :param argv: arguments without the program name (``sys.argv[1:]`` when ``None``).
    :return: exit status: 0 on success, 1 when generation failed.
    """
    config = parse_config(argv)
    try:
        summary = generate(config)
    except (DatagenError, OSError) as exc:
        print(f"datagen: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary, config.landing))
    return 0
