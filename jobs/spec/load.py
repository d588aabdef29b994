"""Find and read pipeline specs: ``<pipelines>/<name>/pipeline.yaml`` and its SQL files.

Where ``pipelines/`` is: under ``root`` when given, else the folder the ``PIPELINES_DIR``
environment variable names, else ``pipelines/`` next to the ``jobs`` package (the
repository root; the job image ships ``pipelines/`` next to ``jobs/``).

The YAML is read node by node so that every problem can name its line: a duplicate
mapping key is a problem (PyYAML would silently keep the last one), and each pydantic
error is reported as ``pipelines/<name>/pipeline.yaml:<line>: <field.path>: <cause>``.
Every problem found is reported at once, in a :class:`~jobs.errors.SpecError`.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from jobs.errors import SpecError, SpecProblem
from jobs.spec.document import SPEC_FILE, FieldPath, SpecDocument, dotted, line_of
from jobs.spec.model import IDENTIFIER, Pipeline

__all__ = [
    "PIPELINES_ENV",
    "list_pipelines",
    "load_pipeline",
    "pipeline_dir",
    "pipelines_root",
    "read_mart_sql",
    "read_spec",
]

PIPELINES_ENV = "PIPELINES_DIR"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def pipelines_root(root: Path | None = None) -> Path:
    """The folder holding one folder per pipeline.

    :param root: the folder holding ``pipelines/``; default: ``PIPELINES_DIR`` (which
        names the ``pipelines/`` folder itself), else the repository's ``pipelines/``
        next to ``jobs/``, else the installed ``pipelines`` package (the job image's and
        EMR's wheel carry every spec).
    """
    if root is not None:
        return root / "pipelines"
    configured = os.environ.get(PIPELINES_ENV, "").strip()
    if configured:
        return Path(configured)
    beside = Path(__file__).resolve().parents[2] / "pipelines"
    if beside.is_dir():
        return beside
    return _installed_pipelines()


@cache
def _installed_pipelines() -> Path:
    """The installed ``pipelines`` package as a folder (unpacked once from a zipped wheel,
    as EMR's ``--py-files`` ships it)."""
    from importlib.resources import files
    from importlib.resources.abc import Traversable

    package = files("pipelines")
    if isinstance(package, Path):
        return package
    target = Path(tempfile.mkdtemp(prefix="pipelines-"))

    def copy(node: Traversable, to: Path) -> None:
        for child in node.iterdir():
            if child.is_dir():
                (to / child.name).mkdir()
                copy(child, to / child.name)
            else:
                (to / child.name).write_bytes(child.read_bytes())

    copy(package, target)
    return target


def pipeline_dir(name: str, root: Path | None = None) -> Path:
    """The folder of one pipeline (``<pipelines>/<name>``), whether it exists or not."""
    return pipelines_root(root) / name


def list_pipelines(root: Path | None = None) -> list[str]:
    """The names of the pipelines found (folders holding a ``pipeline.yaml``), sorted."""
    base = pipelines_root(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / SPEC_FILE).is_file())


def read_mart_sql(pipeline: Pipeline, mart: str, root: Path | None = None) -> str:
    """The text of a mart's SQL file.

    :param pipeline: the spec (its ``name`` is its folder).
    :param mart: one of ``pipeline.marts``.
    :raises SpecError: when the file is missing.
    """
    relative = pipeline.marts[mart].sql
    path = pipeline_dir(pipeline.name, root) / relative
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem(
            f"{_display(pipeline.name, root)}/{SPEC_FILE}", 0, f"marts.{mart}.sql",
            f"cannot read {relative}: {exc.strerror or exc}")]) from None


def read_spec(name: str, root: Path | None = None) -> SpecDocument:
    """Read and validate the shape of one spec (YAML and field types, not cross-checks).

    :param name: the pipeline's folder name.
    :param root: see :func:`pipelines_root`.
    :return: the model with the line of each field.
    :raises SpecError: with every YAML and field problem, each with its line.
    """
    display = _display(name, root)
    spec_file = f"{display}/{SPEC_FILE}"
    path = pipeline_dir(name, root) / SPEC_FILE
    if not path.is_file():
        known = ", ".join(list_pipelines(root)) or "none"
        raise SpecError([SpecProblem(spec_file, 0, "",
                                     f"no such pipeline {name!r} (pipelines: {known})")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(spec_file, 0, "", f"cannot read: {exc}")]) from None
    data, lines, problems = _parse_yaml(text, spec_file)
    if not isinstance(data, dict):
        if not problems:
            problems.append(SpecProblem(spec_file, 1, "", "the spec must be a mapping of "
                                        "fields (name, sources, ...)"))
        raise SpecError(problems)
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc: FieldPath = tuple(error["loc"])
            problems.append(SpecProblem(spec_file, line_of(lines, loc), dotted(loc),
                                        _cause(error)))
        raise SpecError(sorted(problems)) from None
    if problems:
        raise SpecError(sorted(problems))
    return SpecDocument(name, path.parent, display, pipeline, lines)


def load_pipeline(name: str, root: Path | None = None) -> Pipeline:
    """Read one spec and run every check that needs no Spark.

    The SQL checks (expressions, marts, refresh and gate queries resolve) need a
    SparkSession: ``python -m jobs validate`` runs them, see :mod:`jobs.spec.check`.

    :param name: the pipeline's folder name.
    :param root: see :func:`pipelines_root`.
    :return: the validated spec.
    :raises SpecError: with every problem found.
    """
    from jobs.spec.check import check_structure

    doc = read_spec(name, root)
    problems = check_structure(doc)
    if problems:
        raise SpecError(problems)
    return doc.pipeline


def _display(name: str, root: Path | None) -> str:
    return f"{pipelines_root(root).name}/{name}"


def _parse_yaml(text: str, spec_file: str) -> tuple[Any, dict[FieldPath, int],
                                                   list[SpecProblem]]:
    """The data, the line of each field path and the duplicate-key problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, [SpecProblem(spec_file, 1, "", "the file is empty")]
        lines: dict[FieldPath, int] = {}
        problems = list(_walk(node, (), lines, set(), spec_file))
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        cause = exc.problem or exc.context or "cannot be parsed"
        if exc.context and exc.problem and exc.context_mark is not None:
            cause += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return None, {}, [SpecProblem(spec_file, mark.line + 1 if mark else 0, "",
                                      f"invalid YAML: {cause}")]
    except yaml.YAMLError as exc:
        return None, {}, [SpecProblem(spec_file, 0, "", f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, lines, problems


def _walk(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int],
          seen: set[int], spec_file: str) -> Iterator[SpecProblem]:
    """Record the line of every field below ``node``; yield duplicate keys.

    An alias (``*dbgen``) shares its anchor's node: its fields keep the alias's line, so
    a problem inside it points where the alias is used, not to the anchor.
    """
    if id(node) in seen:
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if (key_node.tag, key) in first:
                yield SpecProblem(spec_file, line, dotted(child),
                                  f"duplicate key {key!r} (first at line "
                                  f"{first[(key_node.tag, key)]}): YAML would keep only "
                                  "the last one")
                continue
            first[(key_node.tag, key)] = line
            lines[child] = line
            yield from _walk(value_node, child, lines, seen, spec_file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            yield from _walk(item, child, lines, seen, spec_file)


def _cause(error: ErrorDetails) -> str:
    """A pydantic error as one readable cause naming the value that was given."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = error.get("input")
    loc = tuple(error["loc"])
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "missing":
        return "required field is missing"
    if kind == "too_short":
        return (f"needs at least {ctx.get('min_length')} item(s), has "
                f"{ctx.get('actual_length', 0)}")
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == IDENTIFIER:
            return (f"{given!r} is not a name (lower case letters, digits and _, starting "
                    "with a letter)")
        return f"{given!r} does not match {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"{given!r} is not one of {ctx.get('expected')}"
    message = str(error["msg"])
    if isinstance(given, str | int | float | bool) or given is None:
        return f"{message[:1].lower()}{message[1:]}, not {given!r}"
    return f"{message[:1].lower()}{message[1:]}, not a {type(given).__name__}"


def _unknown_field(loc: FieldPath) -> str:
    model = _model_at(loc[:-1])
    name = str(loc[-1])
    if model is None:
        return f"unknown field {name!r}"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {name!r}{hint} (fields: {', '.join(allowed)})"


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` of the spec, if any."""
    current: Any = Pipeline
    for part in path:
        current = _strip(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin is tuple:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _strip(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _strip(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation
