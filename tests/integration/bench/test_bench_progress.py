"""``bench.common.Progress``: the numbered progress lines of ``make bench`` (no Spark)."""

from __future__ import annotations

import ast
import inspect
import io
import sys
from pathlib import Path

import pytest

from bench import run
from bench.common import Progress


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(sections: list[str]) -> tuple[Progress, io.StringIO, _Clock]:
    out, clock = io.StringIO(), _Clock()
    return Progress(sections, stream=out, clock=clock), out, clock


def test_lines_number_sections_and_items_with_seconds_since_the_start() -> None:
    progress, out, clock = _progress(["generate data", "daily drops"])
    progress.section("generate data")
    clock.now += 12.4
    progress.done("4 drops")
    clock.now += 0.3
    progress.section("daily drops", 3)
    progress.item("daily 1998-07-31")
    clock.now += 85.3
    progress.done("85.3 s, peak 3,120 MiB")
    progress.item("daily 1998-08-01")

    assert out.getvalue().splitlines() == [
        "[1/2] generate data  (0 s)",
        "[1/2] generate data: 4 drops  (12 s)",
        "[2/2] daily drops  (13 s)",
        "[2/2] daily drops: 1 of 3, daily 1998-07-31 …  (13 s)",
        "[2/2] daily drops: 1 of 3, daily 1998-07-31: 85.3 s, peak 3,120 MiB  (98 s)",
        "[2/2] daily drops: 2 of 3, daily 1998-08-01 …  (98 s)",
    ]


def test_an_item_count_learnt_later_appears_from_then_on() -> None:
    progress, out, _ = _progress(["airflow overhead"])
    progress.section("airflow overhead")
    progress.item("airflow dags test")
    progress.expect(6)
    progress.item("ingest by hand")

    lines = out.getvalue().splitlines()
    assert lines[1] == "[1/1] airflow overhead: 1, airflow dags test …  (0 s)"
    assert lines[2] == "[1/1] airflow overhead: 2 of 6, ingest by hand …  (0 s)"


def test_sections_must_come_in_the_announced_order() -> None:
    progress, _, _ = _progress(["generate data", "session start"])
    with pytest.raises(ValueError, match="'session start' out of order: the next is "
                                         "'generate data'"):
        progress.section("session start")
    progress.section("generate data")
    progress.section("session start")
    with pytest.raises(ValueError, match="the next is None"):
        progress.section("generate data")


def test_run_announces_the_command_then_its_time_and_memory(tmp_path: Path) -> None:
    progress, out, _ = _progress(["probe"])
    progress.section("probe", 1)
    result = progress.run("python exits 0", [sys.executable, "-c", "print('hello')"],
                          tmp_path / "logs" / "ok.log")

    assert result.returncode == 0
    assert (tmp_path / "logs" / "ok.log").read_text() == "hello\n"
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("[1/1] probe: 1 of 1, python exits 0 …")
    assert lines[2].startswith("[1/1] probe: 1 of 1, python exits 0: ")
    assert " s, peak " in lines[2] and " MiB  (" in lines[2]


def test_a_failed_command_is_reported_before_the_error(tmp_path: Path) -> None:
    progress, out, _ = _progress(["probe"])
    progress.section("probe", 1)
    log = tmp_path / "fail.log"
    with pytest.raises(RuntimeError, match=r"python exits 3 exited 3; see .*fail\.log"):
        progress.run("python exits 3", [sys.executable, "-c", "raise SystemExit(3)"], log)

    assert out.getvalue().splitlines()[-1].startswith(
        "[1/1] probe: 1 of 1, python exits 3: failed: python exits 3 exited 3; see ")


def test_lines_go_to_standard_error_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(["only"])
    progress.section("only")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("[1/1] only  (")


def _sections_entered(function: str) -> list[str]:
    """The titles ``function`` of ``bench/run.py`` passes to ``progress.section``, in order."""
    tree = ast.parse(inspect.getsource(getattr(run, function)))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "section"]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    return [node.args[0].value for node in calls if isinstance(node.args[0], ast.Constant)]


def test_the_benchmark_enters_every_announced_section_in_order() -> None:
    # A section out of order would stop a run of an hour or more at that point.
    assert _sections_entered("measure_all") == list(run.SECTIONS)
    assert _sections_entered("scale") == list(run.SCALE_SECTIONS)
