"""The crash-test hook: named points, commit counting, the file watchers, ``:once``.

Kills are real: each case that must die runs in a child Python process and is expected
to end by SIGKILL. No Spark is started here; the pipeline's use of the points is covered
by the kill-anywhere tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs import fault
from jobs.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def child(code: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python with the fault variables given (and no others)."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PIPELINE_FAULT", "PYSPARK_GATEWAY"))}
    environ |= {"PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ,
                          capture_output=True, text=True, timeout=timeout, check=False)


# Prepended to a child's code that arms a watcher: instead of sleeping while the watcher
# thread polls the table folder, the child counts the watcher's looks at the folder and
# waits for the ones that matter. armed() returns once the watcher has recorded the folder
# as it was; looked_again() once the watcher has compared the folder as the child left it
# with its previous look and let the process live (a look in progress may predate the
# child's change, the next one does not, and the one after that starts only once that
# comparison is done); watcher_done() once the watcher has ended, which it does only when
# its point fires (the process is killed first) or another process had the point.
WATCHER = """
import threading

from jobs import fault

_looked = threading.Condition()
_looks = 0
_scan = fault._data_files


def _counted_scan(folder):
    global _looks
    files = _scan(folder)
    with _looked:
        _looks += 1
        _looked.notify_all()
    return files


fault._data_files = _counted_scan


def _wait_for_looks(n):
    with _looked:
        assert _looked.wait_for(lambda: _looks >= n, timeout=20), "the watcher stopped looking"


def armed(lake):
    fault.arm(lake)
    _wait_for_looks(1)


def looked_again():
    _wait_for_looks(_looks + 3)


def watcher_done():
    for thread in threading.enumerate():
        if thread.name == "fault-watch":
            thread.join(timeout=20)
"""


def watched_child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """:func:`child` with :data:`WATCHER`'s helpers defined before ``code``."""
    return child(WATCHER + textwrap.dedent(code), **env)


def test_a_named_point_kills_the_process_and_other_points_pass() -> None:
    proc = child("""
        from jobs.fault import maybe_fail
        maybe_fail("before_silver")
        print("passed before_silver", flush=True)
        maybe_fail("before_gold")
        print("not reached")
    """, PIPELINE_FAULT="before_gold")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == "passed before_silver\n"


def test_exit1_raises_and_once_fires_only_for_the_first_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_FAULT", "after_write:silver/orders:exit1:once")
    monkeypatch.setenv("PIPELINE_FAULT_MARKER", str(tmp_path / "marker"))
    with pytest.raises(RuntimeError, match="injected transient failure at after_write:"):
        fault.after_write("file:/lake/silver/orders")
    assert (tmp_path / "marker").exists()
    fault.after_write("file:/lake/silver/orders")  # the retry passes


def test_several_points_each_fire_once_with_their_own_marker(tmp_path: Path) -> None:
    """A DAG run that loses each of three tasks once: each process dies at the first point
    that has not fired yet, and the third run gets through."""
    code = """
        from jobs import fault
        fault.maybe_fail("after_ingest")
        print("ingest", flush=True)
        fault.after_write("file:/l/silver/orders")
        print("silver", flush=True)
        fault.maybe_fail("after_quality")
        print("quality", flush=True)
    """
    env = {"PIPELINE_FAULT": "after_ingest:once, after_write:silver/orders:once,after_gold:once",
           "PIPELINE_FAULT_MARKER": str(tmp_path / "marker")}
    outputs = []
    for _ in range(3):
        proc = child(code, **env)
        outputs.append((proc.returncode, proc.stdout))
    assert outputs == [(-signal.SIGKILL, ""), (-signal.SIGKILL, "ingest\n"),
                       (0, "ingest\nsilver\nquality\n")]
    # after_gold was never reached: its marker is still free.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker.1", "marker.2"]


def test_a_step_scoped_point_fires_only_in_its_step_and_each_try_dies_at_the_next_point(
        tmp_path: Path) -> None:
    """``<step>@``: every step writes the ledger, so a scoped ledger point lets the first
    steps through; the same step's later points take the next tries, one each."""
    code = """
        from jobs import fault
        for step in ("ingest", "silver"):
            fault.enter_step(step)
            fault.before_write("file:/l/silver/orders")
            fault.after_write("file:/l/silver/orders")
            fault.after_write("file:/l/ops/runs")
            print(step, flush=True)
    """
    env = {"PIPELINE_FAULT": "silver@after_write:ops/runs:once,"
                             "silver@after_write:silver/orders:once",
           "PIPELINE_FAULT_MARKER": str(tmp_path / "marker")}
    outputs = [(p.returncode, p.stdout) for p in (child(code, **env) for _ in range(3))]
    assert outputs == [(-signal.SIGKILL, "ingest\n"), (-signal.SIGKILL, "ingest\n"),
                       (0, "ingest\nsilver\n")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker.1", "marker.2"]


def test_a_step_scoped_watched_point_ignores_the_other_steps_writes(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    table = lake / "ops" / "runs"
    table.mkdir(parents=True)
    proc = watched_child(f"""
        armed({str(lake)!r})
        fault.enter_step("ingest")
        open({str(table / "part-1.parquet")!r}, "wb").close()
        looked_again()
        print("ingest wrote", flush=True)
        fault.enter_step("gold")
        open({str(table / "part-2.parquet")!r}, "wb").close()
        watcher_done()
        print("survived")
    """, PIPELINE_FAULT="gold@during_write:ops/runs")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert proc.stdout == "ingest wrote\n"


def test_a_scope_that_is_not_a_step_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_FAULT", "silvr@after_silver")
    with pytest.raises(ConfigError, match="'silvr' is not a step"):
        fault.maybe_fail("after_silver")


def test_a_watched_once_point_is_claimed_by_the_process_that_writes_the_table(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    table = lake / "silver" / "orders"
    table.mkdir(parents=True)
    code = f"""
        armed({str(lake)!r})
        if WRITES:
            open({str(table / "part-1.parquet")!r}, "wb").close()
            watcher_done()
        else:
            looked_again()
        print("survived", flush=True)
    """
    env = {"PIPELINE_FAULT": "during_write:silver/orders:once",
           "PIPELINE_FAULT_MARKER": str(tmp_path / "marker")}
    reader = watched_child(code.replace("WRITES", "False"), **env)
    assert (reader.returncode, reader.stdout) == (0, "survived\n"), reader.stderr
    assert not (tmp_path / "marker").exists()
    writer = watched_child(code.replace("WRITES", "True"), **env)
    assert writer.returncode == -signal.SIGKILL, writer.stdout + writer.stderr
    (table / "part-1.parquet").unlink()
    retry = watched_child(code.replace("WRITES", "True"), **env)
    assert (retry.returncode, retry.stdout) == (0, "survived\n"), retry.stderr


def test_once_without_a_marker_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_FAULT", "before_gold:exit1:once")
    monkeypatch.delenv("PIPELINE_FAULT_MARKER", raising=False)
    with pytest.raises(ConfigError, match="PIPELINE_FAULT_MARKER"):
        fault.maybe_fail("before_gold")


def test_write_points_are_named_by_layer_and_table_and_commits_are_counted() -> None:
    assert fault.table_of("s3a://bucket/lake/gold/daily_line_summary/") == \
        "gold/daily_line_summary"
    proc = child("""
        from jobs import fault
        for uri in ("file:/l/bronze/orders", "file:/l/ops/runs", "file:/l/silver/orders"):
            fault.before_write(uri)
            print("wrote", uri, flush=True)
            fault.after_write(uri)
    """, PIPELINE_FAULT="commit:2")
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.splitlines() == ["wrote file:/l/bronze/orders", "wrote file:/l/ops/runs"]


@pytest.mark.parametrize("kind", ["during_write", "during_vacuum"])
def test_the_watcher_kills_when_a_data_file_appears_or_goes(tmp_path: Path, kind: str) -> None:
    table = tmp_path / "lake" / "silver" / "lineitem" / "_order_month=1998-08-01"
    table.mkdir(parents=True)
    old = table / "part-0.parquet"
    old.write_bytes(b"PAR1")
    change = f"open({str(table / 'part-1.parquet')!r}, 'wb').close()" \
        if kind == "during_write" else f"os.remove({str(old)!r})"
    proc = watched_child(f"""
        import os
        armed({str(tmp_path / "lake")!r})
        print("armed", flush=True)
        {change}
        watcher_done()
        print("survived")
    """, PIPELINE_FAULT=f"{kind}:silver/lineitem")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert proc.stdout == "armed\n"


def test_the_watcher_ignores_other_tables_and_the_log(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "silver" / "orders" / "_delta_log").mkdir(parents=True)
    proc = watched_child(f"""
        armed({str(lake)!r})
        open({str(lake / "silver" / "orders" / "_delta_log" / "x.parquet")!r}, "wb").close()
        looked_again()
        print("survived")
    """, PIPELINE_FAULT="during_write:silver/orders")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "survived\n"


def test_watched_points_need_a_local_lake_and_cannot_exit1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_FAULT", "during_write:silver/orders")
    with pytest.raises(ConfigError, match="needs a local lake"):
        fault.arm("s3a://bucket/lake")
    monkeypatch.setenv("PIPELINE_FAULT", "during_write:silver/orders:exit1")
    with pytest.raises(ConfigError, match="can only kill"):
        fault.arm("/tmp/lake")


def test_the_trace_lists_every_point_passed_in_order(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    proc = child("""
        from jobs import fault
        fault.maybe_fail("before_ingest")
        fault.before_write("file:/l/bronze/orders")
        fault.after_write("file:/l/bronze/orders")
        fault.maybe_fail("after_ingest")
    """, PIPELINE_FAULT_TRACE=str(trace))
    assert proc.returncode == 0, proc.stderr
    assert trace.read_text().splitlines() == [
        "before_ingest", "before_write:bronze/orders", "after_write:bronze/orders", "commit:1",
        "after_ingest"]
