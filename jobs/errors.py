"""Named errors and the exit codes they map to (the contract's section 2)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_RETRY",
    "ConcurrentChangeError",
    "ConfigError",
    "DropNotReadyError",
    "InputUnusableError",
    "PipelineError",
    "QualityGateError",
    "SpecError",
    "SpecProblem",
]

EXIT_OK = 0
EXIT_RETRY = 1
EXIT_CONFIG = 2
EXIT_BAD_INPUT = 3


class PipelineError(Exception):
    """Base class of the pipeline's own errors; carries the exit code."""

    exit_code = EXIT_RETRY


class ConfigError(PipelineError):
    """Bad arguments or configuration: retrying cannot help."""

    exit_code = EXIT_CONFIG


class InputUnusableError(PipelineError):
    """A landed file cannot be used at all (named with file and line)."""

    exit_code = EXIT_BAD_INPUT


class QualityGateError(PipelineError):
    """A fail-level expectation failed; gold was left as it was before the run."""

    exit_code = EXIT_BAD_INPUT


class DropNotReadyError(PipelineError):
    """The drop for the run date has no ``_SUCCESS`` marker yet: worth retrying later."""

    exit_code = EXIT_RETRY


class ConcurrentChangeError(PipelineError):
    """Another run changed the tables under a check that then failed: not judged, retry."""

    exit_code = EXIT_RETRY


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One problem of a pipeline spec: where it is (file, line, field) and why.

    ``file`` is shown relative to the folder holding ``pipelines/``; ``line`` is 1-based
    (0: the problem has no line, e.g. a missing file); ``field`` is the dotted path of the
    field in ``pipeline.yaml`` (``sources.orders.key.0``).
    """

    file: str
    line: int
    field: str
    cause: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.cause}" if self.field else f"{where}: {self.cause}"


class SpecError(ConfigError):
    """A pipeline spec is invalid; carries every problem found, one per line."""

    def __init__(self, problems: Iterable[SpecProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
