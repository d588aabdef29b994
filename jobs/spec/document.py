"""A loaded spec with the line of each of its fields, so that a problem can name its line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.errors import SpecProblem
from jobs.spec.model import Pipeline

__all__ = ["SPEC_FILE", "FieldPath", "SpecDocument", "dotted", "line_of"]

SPEC_FILE = "pipeline.yaml"
FieldPath = tuple[str | int, ...]


def dotted(path: FieldPath) -> str:
    """``("sources", "orders", "key", 0)`` -> ``sources.orders.key.0``."""
    return ".".join(str(part) for part in path)


def line_of(lines: Mapping[FieldPath, int], path: FieldPath) -> int:
    """The line of a field, or of its nearest written ancestor (a default's owner); 0 if
    none is known."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 0


@dataclass(frozen=True)
class SpecDocument:
    """A spec as read from ``<pipelines>/<name>/pipeline.yaml``.

    :param name: the pipeline's folder name.
    :param directory: the pipeline's folder.
    :param display: the folder as problems show it (``pipelines/<name>``).
    :param pipeline: the validated model.
    :param lines: the 1-based line of each field path (mapping keys: the key's line).
    """

    name: str
    directory: Path
    display: str
    pipeline: Pipeline
    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    @property
    def spec_file(self) -> str:
        """``pipelines/<name>/pipeline.yaml``."""
        return f"{self.display}/{SPEC_FILE}"

    def line_of(self, path: FieldPath) -> int:
        """The line of a field, or of its nearest written ancestor (a default's owner)."""
        return line_of(self.lines, path)

    def problem(self, path: FieldPath, cause: str) -> SpecProblem:
        """A problem of a field of ``pipeline.yaml``."""
        return SpecProblem(self.spec_file, self.line_of(path), dotted(path), cause)

    def file_problem(self, relative: str, path: FieldPath, cause: str,
                     line: int = 0) -> SpecProblem:
        """A problem of another file of the pipeline (a mart's SQL), named by its field."""
        return SpecProblem(f"{self.display}/{relative}", line, dotted(path), cause)

    def sql_path(self, relative: str) -> Path:
        """A file of the pipeline folder (a mart's ``sql``)."""
        return self.directory / relative
