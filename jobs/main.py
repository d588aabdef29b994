"""Command line of every step, identical in every runtime.

    spark-submit jobs/main.py <step> --ds YYYY-MM-DD [--lake URI] [--landing URI] [--force]
    python -m jobs <step> --ds YYYY-MM-DD [...]
    python -m jobs validate [--pipeline NAME]
    python -m jobs new-pipeline NAME --from-sample DIR

Exit status: 0 done (also "nothing to do"); 1 failed, worth retrying; 2 bad arguments or
configuration; 3 data-quality gate failed or input unusable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Sequence

if __package__ in (None, ""):
    # `spark-submit jobs/main.py` runs this file as a script: make `jobs` importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.errors import EXIT_OK, EXIT_RETRY, ConfigError, PipelineError
from jobs.logs import configure_logging
from jobs.steps import ALL, NAMES

__all__ = ["SPEC_COMMANDS", "STEPS", "main", "parse_args"]

STEPS = (*NAMES, "all")
# Commands that are not steps (jobs/spec/cli.py); kept here so parsing needs no import.
SPEC_COMMANDS = ("validate", "new-pipeline")
USAGE = "jobs <step> --ds YYYY-MM-DD [--lake URI] [--landing URI] [--force]"
log = logging.getLogger("jobs")


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line and raise instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"usage: {USAGE}: {message}")


def _date(value: str) -> dt.date:
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ds {value!r} is not a date YYYY-MM-DD") from None
    if len(value) != 10:
        raise argparse.ArgumentTypeError(f"--ds {value!r} is not a date YYYY-MM-DD")
    # Versions are ordered by ds, so a drop processed under a future date would outrank
    # every real drop until that date. The clock only bounds the argument (a day of slack
    # for sources ahead of UTC); the run date itself always comes from --ds.
    if parsed > dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1):
        raise argparse.ArgumentTypeError(
            f"--ds {value!r} is after tomorrow (UTC): a drop for a future date would "
            "outrank every real drop"
        )
    return parsed


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the contract's arguments.

    :param argv: arguments without the program name.
    :return: ``step``, ``ds``, ``lake``, ``landing``, ``force``.
    :raises ConfigError: with a one-line usage message.
    """
    parser = _Parser(prog="jobs", usage=USAGE, add_help=True)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--ds", required=True, type=_date)
    parser.add_argument("--lake", default=None)
    parser.add_argument("--landing", default=None)
    parser.add_argument("--force", action="store_true")
    return parser.parse_args(list(argv))


def _steps() -> dict[str, Callable[..., object]]:
    from jobs.steps import gold, ingest, maintain, quality, report, silver

    return {
        "ingest": ingest.run,
        "silver": silver.run,
        "gold": gold.run,
        "quality": quality.run,
        "maintain": maintain.run,
        "report": report.run,
    }


def run_step(args: argparse.Namespace) -> None:
    """Build the session and context, then run the step (``all``: four steps in order)."""
    from jobs.fault import arm, enter_step, maybe_fail
    from jobs.lake import Lake, resolve_locations
    from jobs.spark import get_session, tune_for_drop
    from jobs.steps.common import StepContext

    lake_uri, landing_uri = resolve_locations(args.lake, args.landing)
    arm(lake_uri)
    spark = get_session(f"tpch-{args.step}-{args.ds}")
    small = tune_for_drop(spark, landing_uri, str(args.ds))
    if small is not None:
        log.info("%s %s: small drop (%d bytes): interpreted execution", args.step, args.ds,
                 small)
    ctx = StepContext(spark, Lake(lake_uri), landing_uri, args.ds, args.force)
    steps = _steps()
    names = ALL if args.step == "all" else (args.step,)
    for name in names:
        enter_step(name)
        maybe_fail(f"before_{name}")
        log.info("%s %s: starting (lake %s, landing %s)", name, args.ds, lake_uri, landing_uri)
        steps[name](ctx)
        maybe_fail(f"after_{name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and map every outcome to the contract's exit codes.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``).
    :return: the exit status.
    """
    configure_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments and arguments[0] in SPEC_COMMANDS:
            # validate / new-pipeline are not Spark steps: their own arguments and output.
            from jobs.spec.cli import run_command

            return run_command(arguments)
        args = parse_args(arguments)
        run_step(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_RETRY
    except Exception as exc:
        # Unexpected: most likely transient (I/O, conflicts after the retry budget, lost
        # executors). Keep the trace in the log for the engineer, exit 1 for a retry.
        log.exception("unexpected failure")
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return EXIT_RETRY
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

