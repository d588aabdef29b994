"""The spec commands of ``python -m jobs``: ``validate`` and ``new-pipeline``.

    python -m jobs validate [--pipeline NAME]
    python -m jobs new-pipeline NAME --from-sample DIR

Neither is a Spark step: ``validate`` starts a local SparkSession only for the SQL checks,
and only once the spec has been read; ``new-pipeline`` never starts Spark. Exit status as
every command's: 0 valid (or written), 2 invalid spec or bad arguments, one problem per
line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.errors import EXIT_CONFIG, EXIT_OK, ConfigError, SpecError, SpecProblem
from jobs.spec.check import check_sql, check_structure
from jobs.spec.load import read_spec
from jobs.spec.new import new_pipeline

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["COMMANDS", "run_command", "validate_pipeline"]

COMMANDS = ("validate", "new-pipeline")
USAGES = {
    "validate": "jobs validate [--pipeline NAME]",
    "new-pipeline": "jobs new-pipeline NAME --from-sample DIR",
}


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line and raise instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"usage: {self.usage}: {message}")


def validate_pipeline(name: str, root: Path | None = None,
                      spark: SparkSession | None = None) -> list[SpecProblem]:
    """Every problem of a spec: YAML and fields, then the whole-spec and SQL checks.

    :param name: the pipeline's folder name.
    :param root: see :func:`jobs.spec.load.pipelines_root`.
    :param spark: a session for the SQL checks; ``None`` skips them.
    :return: the problems, sorted by file and line (empty: valid).
    """
    try:
        doc = read_spec(name, root)
    except SpecError as exc:
        return list(exc.problems)
    problems = check_structure(doc)
    if spark is not None:
        problems += check_sql(doc, spark)
    return sorted(set(problems))


def _validate(argv: Sequence[str]) -> int:
    parser = _Parser(prog="jobs validate", usage=USAGES["validate"])
    parser.add_argument("--pipeline", default="tpch")
    args = parser.parse_args(list(argv))
    try:
        doc = read_spec(args.pipeline)
    except SpecError as exc:
        return _report(exc.problems)
    from jobs.spark import get_session

    problems = check_structure(doc)
    problems += check_sql(doc, get_session(f"{args.pipeline}-validate"))
    if problems:
        return _report(sorted(set(problems)))
    p = doc.pipeline
    checks = len(p.gate.checks) + sum(
        len(s.expectations) + (len(s.deletes.expectations) if s.deletes else 0)
        for s in p.sources.values())
    print(f"{doc.spec_file}: OK: {len(p.sources)} sources, {len(p.marts)} marts, "
          f"{checks} expectations and gate checks; SQL resolved")
    return EXIT_OK


def _report(problems: Sequence[SpecProblem]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"error: {len(problems)} problem(s) in the spec", file=sys.stderr)
    return EXIT_CONFIG


def _new(argv: Sequence[str]) -> int:
    parser = _Parser(prog="jobs new-pipeline", usage=USAGES["new-pipeline"])
    parser.add_argument("name")
    parser.add_argument("--from-sample", required=True, type=Path, dest="sample")
    args = parser.parse_args(list(argv))
    written = new_pipeline(args.name, args.sample)
    print(f"wrote {written}: set each source's key (and check the lines marked DECIDE), "
          f"then run `python -m jobs validate --pipeline {args.name}`")
    return EXIT_OK


def run_command(argv: Sequence[str]) -> int:
    """Run ``validate`` or ``new-pipeline``.

    :param argv: the command and its arguments, without the program name.
    :return: the exit status.
    :raises ConfigError: for bad arguments or an unusable sample (exit 2 in ``main``).
    """
    command, rest = argv[0], argv[1:]
    if command == "validate":
        return _validate(rest)
    if command == "new-pipeline":
        return _new(rest)
    raise ConfigError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
