"""Security hygiene: no secrets in the repository, every SQL name validated.

* The secret scan runs detect-secrets over the repository's files (tracked, and new files
  that ``.gitignore`` does not exclude) and expects no finding. A second test plants fake
  credentials in a scratch repository and expects the very same scan to report them, so
  a quiet scan means a clean repository, not a blind scanner.
* :func:`jobs.sql.identifier` accepts every name of the lake's catalogue and rejects
  injection attempts with exit status 2.
* An AST scan of ``jobs/`` and ``dags/`` finds every f-string that builds SQL text and
  fails when one interpolates anything but a validated identifier, a rendered literal or
  another SQL fragment built the same way; the scan is run on planted bad code first.

The end-to-end "no credentials in logs" check is in
``tests/integration/dags/test_daily_run.py``: it needs the task logs of a real DAG run.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import secrets
import string
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jobs.delta_io import _key_condition
from jobs.errors import EXIT_CONFIG, ConfigError
from jobs.schemas import silver_columns
from jobs.sql import catalogue, identifier, sql_in, sql_literal
from tests.support.tpch import GOLD, ORDERS_DELETE, TABLES, TOMBSTONES

ROOT = Path(__file__).resolve().parents[3]
DETECT_SECRETS = Path(sys.executable).parent / "detect-secrets"

# The scan's only exclusions, each for a kind of line that names a secret without holding
# one. A finding anywhere else fails the test: remove the secret, or mark a false positive
# in place with a comment saying why and `# pragma: allowlist secret`.
EXCLUDE_LINES = (
    # Helm chart keys that name a Kubernetes Secret object (k8s/helm/airflow-values.yaml,
    # e.g. `fernetKeySecretName: airflow-fernet-key`): the value is the object's name
    # (a DNS-1123 label); the secret itself lives in the cluster. detect-secrets reads YAML
    # values back quoted, hence the optional quotes.
    r"^\s*[A-Za-z]+SecretName: ([\"']?)[a-z0-9]([-a-z0-9]*[a-z0-9])?\1\s*$",
)


def repository_files(root: Path) -> list[str]:
    """The repository's files: tracked ones, and new ones that ``.gitignore`` keeps."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    # A tracked file deleted in the work tree is listed but cannot hold anything.
    return sorted(f for f in listed if f and (root / f).is_file())


def secret_scan(root: Path, files: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Run detect-secrets over ``files`` (relative to ``root``): path -> findings.

    ``--no-verify``: no finding is checked against its service over the network.
    """
    args = [str(DETECT_SECRETS), "scan", "--no-verify"]
    for regex in EXCLUDE_LINES:
        args += ["--exclude-lines", regex]
    out = subprocess.run([*args, *files], cwd=root, capture_output=True, text=True, check=True)
    results: dict[str, list[dict[str, Any]]] = json.loads(out.stdout)["results"]
    return results


def _describe(findings: dict[str, list[dict[str, Any]]]) -> str:
    return "\n".join(f"{path}:{f['line_number']}: {f['type']}"
                     for path, found in sorted(findings.items()) for f in found)


# -- secret scan ---------------------------------------------------------------------------

def test_the_repository_holds_no_secrets() -> None:
    files = repository_files(ROOT)
    # The list is the repository's own: code, tests, deployment files and docs.
    assert {"jobs/sql.py", "tests/integration/repo/test_security.py", "README.md",
            "pyproject.toml"} <= set(files)
    assert any(f.startswith("k8s/") for f in files) and any(f.startswith("dags/") for f in files)

    findings = secret_scan(ROOT, files)

    assert findings == {}, "possible secrets in the repository:\n" + _describe(findings)


def _fake_aws_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _fake_aws_secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def test_the_scan_reports_planted_credentials_in_a_new_file(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("local/\n")
    # Assembled at run time, so this file itself holds no key for the repository scan.
    private_key_header = "-----BEGIN RSA " + "PRIVATE KEY-----"
    body = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(64))
    (tmp_path / "settings.py").write_text(textwrap.dedent(f"""\
        AWS_ACCESS_KEY_ID = "{_fake_aws_key_id()}"
        aws_secret_access_key = "{_fake_aws_secret()}"
        DEPLOY_KEY = '''{private_key_header}
        {body}
        -----END RSA {"PRIVATE KEY"}-----'''
        """))
    # Ignored files are not the repository's: the same scan does not look at them.
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "mine.env").write_text(f"AWS_ACCESS_KEY_ID={_fake_aws_key_id()}\n")

    files = repository_files(tmp_path)
    findings = secret_scan(tmp_path, files)

    assert files == [".gitignore", "settings.py"]
    assert list(findings) == ["settings.py"]
    found = {(f["type"], f["line_number"]) for f in findings["settings.py"]}
    assert {("AWS Access Key", 1), ("Private Key", 3)} <= found
    assert {t for t, line in found if line == 2} & {"AWS Access Key", "Secret Keyword"}


# -- identifier validation -----------------------------------------------------------------

def test_every_catalogue_name_is_accepted() -> None:
    # The catalogue is built from the table definitions; check it against them.
    expected = {*TABLES, ORDERS_DELETE.name, *GOLD, TOMBSTONES, "customer_history"}
    expected |= {c for t in TABLES.values() for c in silver_columns(t)}
    assert expected <= catalogue()
    for name in catalogue():
        assert identifier(name) == name


INJECTIONS = [
    "orders; DROP TABLE x",
    "orders;",
    "orders --",
    "orders/**/",
    "`orders`",
    "orders` WHERE 1=1 --",
    "'orders'",
    '"orders"',
    "orders x",
    " orders",
    "orders\n",
    "orders\t",
    "o_orderkey = 1 OR 1 = 1",
    "s.o_orderkey",
    "silver_orders.o_orderkey",
    "1orders",
    "",
    "\u03bfrders",   # Greek small omicron for the "o"
    "\u043erders",   # Cyrillic small o
    "\uff4frders",   # fullwidth small o
    "order\u0455",   # Cyrillic dze for the "s"
    "orders\u200b",  # zero-width space
    "orders\x00",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_identifier_rejects_anything_but_a_plain_name(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid SQL identifier") as raised:
        identifier(name)
    assert raised.value.exit_code == EXIT_CONFIG
    with pytest.raises(ConfigError, match="invalid SQL identifier"):
        identifier(name, known=False)


def test_identifier_rejects_a_plain_name_outside_the_catalogue() -> None:
    for name in ("students", "orders_x", "silver_students", "gold_orders", "ORDERS"):
        with pytest.raises(ConfigError, match=f"unknown SQL identifier '{name}'") as raised:
            identifier(name)
        assert raised.value.exit_code == EXIT_CONFIG
        # The generic Delta helpers accept any plain name.
        assert identifier(name, known=False) == name


def test_merge_condition_validates_the_key_columns() -> None:
    assert _key_condition(["k", "_ds"], None) == "t.k = s.k AND t._ds = s._ds"
    assert (_key_condition(["o_orderkey"], "t._order_month IN (DATE'1998-08-01')")
            == "t.o_orderkey = s.o_orderkey AND t._order_month IN (DATE'1998-08-01')")
    with pytest.raises(ConfigError, match="invalid SQL identifier"):
        _key_condition(["k = s.k OR true --"], None)


def test_values_are_rendered_as_literals() -> None:
    assert sql_literal(42) == "42"
    assert sql_literal(dt.date(1998, 8, 1)) == "DATE'1998-08-01'"
    # Quotes and backslashes are escaped: the value stays one string literal.
    assert sql_literal("x' OR '1'='1") == r"'x\' OR \'1\'=\'1'"
    assert sql_literal("a\\' OR 1=1 --") == r"'a\\\' OR 1=1 --'"
    assert sql_in([1, "F"]) == "(1, 'F')"
    assert sql_literal(dt.datetime(2013, 1, 1, 5)) == "TIMESTAMP'2013-01-01 05:00:00'"
    assert sql_literal(1.5) == "CAST(1.5 AS DOUBLE)"
    assert sql_literal(Decimal("-2.50")) == "-2.50BD"
    aware = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
    for bad in (True, aware, float("nan"), float("inf"), None):
        with pytest.raises(TypeError, match="unsupported literal"):
            sql_literal(bad)  # type: ignore[arg-type]


# -- no unvalidated name in SQL text -------------------------------------------------------

# Calls that take SQL text: name -> (positions, keywords) of the SQL arguments, or None
# when every string argument is SQL (Spark's and Delta's methods).
SQL_SINKS: dict[str, tuple[tuple[int, ...], tuple[str, ...]] | None] = {
    **dict.fromkeys(("sql", "expr", "selectExpr", "where", "filter", "merge",
                     "whenMatchedUpdate", "whenMatchedDelete", "whenNotMatchedInsert",
                     "whenNotMatchedBySourceUpdate", "whenNotMatchedBySourceDelete")),
    # jobs.delta_io's helpers and the declarative checks: only their SQL parameters.
    "replace_where": ((3,), ("predicate",)),
    "merge_latest": ((4,), ("partition_predicate",)),
    "merge_rows": ((4, 5, 6), ("update_condition", "delete_condition", "partition_predicate")),
    "delete_matching": ((3, 4), ("on", "delete_condition")),
    "update_matching": ((3, 4), ("on", "assignments")),
    "DatasetCheck": ((3,), ("sql",)),
    "Expectation": ((1,), ("condition",)),
}
VIEW_SINKS = {"createOrReplaceTempView", "createTempView", "createOrReplaceGlobalTempView",
              "createGlobalTempView"}
# Text that only SQL has (upper-case keywords, ` = `, a `t.`/`s.` alias before a value).
SQL_TEXT = re.compile(r"\b(SELECT|FROM|WHERE|GROUP BY|HAVING|JOIN|IN|AND|OR|NOT|IS|DATE|ON|"
                      r"USING)\b| = |(^|[^\w.])[ts]\.$")
VALIDATORS = {"identifier", "plain_identifier", "spec_query", "sql_in", "sql_literal"}
# Variables and attributes holding SQL fragments; every f-string that builds one is checked
# where it is built.
FRAGMENTS = {"predicate", "partition_predicate", "condition", "update_condition",
             "delete_condition", "on", "sql", "where"}
CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Module)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class SqlScan:
    """The SQL f-strings of one module and the interpolations in them that are unsafe."""

    def __init__(self, source: str, filename: str) -> None:
        self.filename = filename
        self.tree = ast.parse(source, filename)
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.sql_strings: list[ast.JoinedStr] = []
        self.problems: list[str] = []
        self._scan()

    def _where(self, node: ast.AST) -> str:
        return f"{self.filename}:{getattr(node, 'lineno', '?')}"

    def _scan(self) -> None:
        in_sinks: set[ast.AST] = set()
        for call in ast.walk(self.tree):
            if not isinstance(call, ast.Call):
                continue
            name = _name_of(call.func)
            replace_where = (name == "option" and call.args
                             and isinstance(call.args[0], ast.Constant)
                             and call.args[0].value == "replaceWhere")
            if name in SQL_SINKS or replace_where:
                for arg in self._sql_args(call, SQL_SINKS.get(name or "")):
                    in_sinks.update(n for n in ast.walk(arg) if isinstance(n, ast.JoinedStr))
                    if self._concatenated(arg):
                        self.problems.append(f"{self._where(arg)}: SQL built with + % or "
                                             f"format(): {ast.unparse(arg)}")
            if name in VIEW_SINKS and call.args and not (
                    isinstance(call.args[0], ast.Constant) or self._safe(call.args[0])):
                self.problems.append(f"{self._where(call)}: view name not validated: "
                                     f"{ast.unparse(call.args[0])}")
        for node in ast.walk(self.tree):
            if isinstance(node, ast.JoinedStr) and (node in in_sinks or self._sql_like(node)):
                self.sql_strings.append(node)
                for value in node.values:
                    if isinstance(value, ast.FormattedValue) and not self._safe(value.value):
                        self.problems.append(f"{self._where(node)}: {ast.unparse(value.value)} "
                                             f"interpolated into {ast.unparse(node)}")

    @staticmethod
    def _sql_args(call: ast.Call,
                  spec: tuple[tuple[int, ...], tuple[str, ...]] | None) -> list[ast.expr]:
        if spec is None:
            return [*call.args, *(k.value for k in call.keywords)]
        positions, keywords = spec
        return [*(a for i, a in enumerate(call.args) if i in positions),
                *(k.value for k in call.keywords if k.arg in keywords)]

    @staticmethod
    def _sql_like(node: ast.JoinedStr) -> bool:
        return any(isinstance(v, ast.Constant) and SQL_TEXT.search(str(v.value))
                   for v in node.values)

    @staticmethod
    def _concatenated(arg: ast.AST) -> bool:
        if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add | ast.Mod):
            return any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                       for n in ast.walk(arg))
        return isinstance(arg, ast.Call) and _name_of(arg.func) == "format"

    def _safe(self, node: ast.AST, depth: int = 0) -> bool:
        """Whether an expression can only produce validated names, literals or fragments."""
        if depth > 8:
            return False
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | int)
        if isinstance(node, ast.Call):
            func = _name_of(node.func)
            if func in VALIDATORS:
                return True
            # "sep".join(<validated items>)
            return (func == "join" and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Constant) and len(node.args) == 1
                    and self._safe_items(node.args[0], depth + 1))
        if isinstance(node, ast.JoinedStr):
            return all(self._safe(v.value, depth + 1) for v in node.values
                       if isinstance(v, ast.FormattedValue))
        if isinstance(node, ast.IfExp):
            return self._safe(node.body, depth + 1) and self._safe(node.orelse, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._safe(node.left, depth + 1) and self._safe(node.right, depth + 1)
        name = _name_of(node)
        if name is None:
            return False
        if CONSTANT.match(name) or name in FRAGMENTS:
            return True
        if isinstance(node, ast.Name):
            found = self._bindings(node)
            return bool(found) and all(self._safe_binding(b, depth + 1) for b in found)
        return False

    def _safe_items(self, node: ast.AST, depth: int) -> bool:
        """Whether every item of a collection expression is safe."""
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            return self._safe(node.elt, depth)
        if isinstance(node, ast.List | ast.Tuple):
            return all(self._safe(e, depth) for e in node.elts)
        if isinstance(node, ast.Name):
            found = self._bindings(node)
            return bool(found) and all(
                kind == "value" and self._safe_items(value, depth + 1) for kind, value in found)
        return False

    def _safe_binding(self, binding: tuple[str, ast.AST], depth: int) -> bool:
        kind, value = binding
        return self._safe(value, depth) if kind == "value" else self._safe_items(value, depth)

    def _bindings(self, name: ast.Name) -> list[tuple[str, ast.AST]]:
        """What a name can be bound to: ``("value", expr)`` or ``("item of", collection)``.

        The innermost comprehension or function that binds the name decides; a function
        parameter, loop variable or import binds it to something unknown (no binding).
        """
        node: ast.AST = name
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, _COMPREHENSIONS):
                for gen in node.generators:
                    if isinstance(gen.target, ast.Name) and gen.target.id == name.id:
                        return [("item of", gen.iter)]
            if isinstance(node, _SCOPES):
                if self._binds_otherwise(node, name.id):
                    return []
                found = list(self._assignments(node, name.id))
                if found:
                    return found
        return []

    @staticmethod
    def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
        """Nodes of a scope, without those of the functions defined inside it."""
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            node = todo.pop()
            yield node
            if not isinstance(node, _SCOPES):
                todo.extend(ast.iter_child_nodes(node))

    def _assignments(self, scope: ast.AST, name: str) -> Iterator[tuple[str, ast.AST]]:
        for node in self._own_nodes(scope):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == name for t in node.targets):
                yield "value", node.value
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None \
                    and isinstance(node.target, ast.Name) and node.target.id == name:
                yield "value", node.value

    def _binds_otherwise(self, scope: ast.AST, name: str) -> bool:
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = scope.args
            if name in {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]}:
                return True
        for node in self._own_nodes(scope):
            if isinstance(node, ast.For | ast.AsyncFor | ast.With | ast.NamedExpr):
                targets = ([node.target] if isinstance(node, ast.For | ast.AsyncFor | ast.NamedExpr)
                           else [i.optional_vars for i in node.items if i.optional_vars])
                if any(isinstance(n, ast.Name) and n.id == name
                       for t in targets for n in ast.walk(t)):
                    return True
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                    (a.asname or a.name) == name for a in node.names):
                return True
        return False


def _scan_code(source: str) -> SqlScan:
    return SqlScan(textwrap.dedent(source), "<planted>")


@pytest.mark.parametrize("source", [
    "spark.sql(f'SELECT * FROM {table}')",
    "df.where(f'{column} = 1')",
    "F.expr(f'_order_month IN {months}')",
    "df.where(f\"_ds = DATE'{ds}'\")",
    "spark.sql('SELECT * FROM ' + table)",
    "spark.sql('SELECT * FROM {}'.format(table))",
    "spark.sql('SELECT * FROM %s' % table)",
    "df.createOrReplaceTempView(f'silver_{name}')",
    "df.write.option('replaceWhere', f'{column} > 0')",
    "cond = ' AND '.join(f't.{k} = s.{k}' for k in key)",
    "def f(name):\n    return f'SELECT count(*) FROM silver_{name}'",
    "for key in KEYS:\n    delete_matching(spark, uri, df, f't.{key} = s.o_orderkey', 'true')",
    "names = [k for k in key]\ncond = ' AND '.join(f't.{k} = s.{k}' for k in names)",
])
def test_the_sql_scan_finds_unvalidated_interpolations(source: str) -> None:
    assert _scan_code(source).problems


@pytest.mark.parametrize("source", [
    "spark.sql(f'SELECT * FROM {identifier(table)}')",
    "df.where(f'_ds = {sql_literal(ds)}')",
    "F.expr(f'_order_month IN {sql_in(months)}')",
    "df.createOrReplaceTempView(identifier(f'silver_{name}'))",
    "view = identifier(f'silver_{name}')\ndf.createOrReplaceTempView(view)",
    "names = [identifier(k) for k in key]\ncond = ' AND '.join(f't.{k} = s.{k}' for k in names)",
    "keys = ', '.join(identifier(k) for k in key)\nq = f'SELECT {keys} FROM silver_orders'",
    "def f(predicate):\n    return f't.k = s.k AND {predicate}'",
    "q = f'SELECT * FROM silver_lineitem WHERE _order_month IN {MONTHS}'",
])
def test_the_sql_scan_accepts_validated_interpolations(source: str) -> None:
    assert _scan_code(source).problems == []


def test_no_sql_text_in_jobs_or_dags_interpolates_an_unvalidated_value() -> None:
    # jobs/sql.py and jobs/sql_text.py are where names are checked and literals and spec
    # queries rendered (tested above), so they are not scanned.
    renderers = {ROOT / "jobs" / "sql.py", ROOT / "jobs" / "sql_text.py"}
    scans = [SqlScan(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
             for folder in ("jobs", "dags") for p in sorted((ROOT / folder).rglob("*.py"))
             if p not in renderers]

    problems = [p for scan in scans for p in scan.problems]

    assert problems == [], "SQL text built from unvalidated values:\n" + "\n".join(problems)
    # The scan saw the pipeline's SQL: MERGE conditions, predicates, quality queries.
    seen = {scan.filename for scan in scans if scan.sql_strings}
    assert {"jobs/delta_io.py", "jobs/steps/silver.py", "jobs/steps/gold.py",
            "jobs/steps/quality.py", "jobs/steps/ingest.py"} <= seen
    assert sum(len(scan.sql_strings) for scan in scans) >= 20
