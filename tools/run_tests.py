"""``make test``: the whole suite as two pytest processes side by side.

The Airflow end-to-end tests run their jobs as ``spark-submit`` subprocesses and spend
much of their time waiting on them and on Airflow (so do the deployment checks, which
wait on checkov, kustomize, hadolint and kubernetes-validate); every other test shares
one in-process Spark session. On two cores the two groups overlap well, so
they run as two concurrent pytest processes (each group builds its session fixtures
once). Both groups always run to the end; the exit status is non-zero if either failed.
Any arguments are passed to a single, ordinary pytest run instead
(``make test PYTEST_ARGS=tests/unit``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Group 2: what mostly waits on other processes (Airflow and its runners, spark-submit,
# moto, checkov), plus the bad-input catalogue on the in-process Spark session, which evens
# out the two groups' wall time. Every DAG test shares one Airflow home, as one deployment
# would: the local, Kubernetes and EMR runners' runs meet the same metadata database. Its
# in-process session keeps the default JIT (tests/conftest.py): the quick JIT below slows
# a long-lived session down.
GROUP_2 = ("tests/integration/dags", "tests/integration/jobs/test_cli.py",
           "tests/integration/deploy", "tests/unit/test_deploy_doc.py",
           "tests/integration/e2e/test_bad_input.py",
           "tests/integration/e2e/test_concurrent_silver.py",
           "tests/integration/e2e/test_spec_only_pipeline.py")
# Group 2 starts many short-lived spark-submit JVMs on tiny data (and `make chaos` many
# more, with the same options). Each of them spends much of its CPU compiling code it runs
# only briefly, so the quick (C1) JIT and the serial collector save CPU on every start; a
# long-lived session, like group 1's, does better with the default JIT. A value already
# set wins. With C1 alone the JVM reserves only 48 MB for compiled code, which a
# spark-submit of `all` fills ("CodeCache is full. Compiler has been disabled") to run on
# in the interpreter, so the code cache gets the tiered default's 240 MB.
SHORT_JVM_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"
# The tests' own long-lived session (tests/conftest.py, one per group) keeps the default
# JIT but takes the serial collector too: with both cores busy, G1's concurrent work is
# CPU the other group needs.
SESSION_JVM_OPTS = "-XX:+UseSerialGC"


def main(argv: list[str]) -> int:
    """Run the suite; return the exit status."""
    pytest = [sys.executable, "-m", "pytest", "--durations=12"]
    suite = [*pytest, "-m", "not chaos"]
    if argv:
        return subprocess.call([*pytest, *argv], cwd=ROOT)
    with tempfile.TemporaryFile(mode="w+") as group_2_log:
        env = {"SPARK_SUBMIT_OPTS": SHORT_JVM_OPTS, **os.environ}
        group_2 = subprocess.Popen([*suite, *GROUP_2], cwd=ROOT, stdout=group_2_log,
                                   stderr=subprocess.STDOUT, text=True, env=env)
        ignore = [f"--ignore={path}" for path in GROUP_2]
        print(f"== group 1 of 2: every test except {', '.join(GROUP_2)}", flush=True)
        rest = subprocess.call([*suite, *ignore], cwd=ROOT)
        code = group_2.wait()
        group_2_log.seek(0)
        print(f"\n== group 2 of 2: {', '.join(GROUP_2)} (ran alongside group 1)",
              flush=True)
        sys.stdout.write(group_2_log.read())
    print(f"\n== group 1 exit {rest}, group 2 exit {code}")
    return rest or code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
