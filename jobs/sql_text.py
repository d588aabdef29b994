"""SQL text from plain values: names checked for shape, and spec queries wrapped.

The leaf of :mod:`jobs.sql`: it imports nothing of the project but its errors, so the spec
checker can use it without depending on the lake's catalogue of names (which is built from
the specs). :mod:`jobs.sql` adds the catalogue check and the literals.
"""

from __future__ import annotations

import re

from jobs.errors import ConfigError

__all__ = ["IDENTIFIER_PATTERN", "plain_identifier", "spec_query"]

# ASCII only: re's \w would also accept non-Latin letters that look like Latin ones.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def plain_identifier(name: str) -> str:
    """Check that a name is a plain identifier (no quotes, spaces, dots); return it.

    :raises ConfigError: for anything that is not ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII).
    """
    if not isinstance(name, str) or IDENTIFIER_PATTERN.fullmatch(name) is None:
        raise ConfigError(
            f"invalid SQL identifier {name!r}: expected ASCII letters, digits and '_', "
            "not starting with a digit"
        )
    return name


def spec_query(text: str, alias: str = "_q") -> str:
    """Wrap SQL a pipeline's spec supplies (a mart, a refresh or a gate query) to run it.

    The text is configuration written by the pipeline's author, checked against the
    declared schemas by ``python -m jobs validate``. It runs as a subquery, so anything but
    a query (``DROP``, ``INSERT``, ``SET``, a second statement) is a syntax error rather
    than executed. The query starts on the second line of the result, for error lines.

    :param text: the query (a trailing ``;`` is allowed).
    :param alias: the subquery's alias (a plain identifier).
    :return: ``SELECT * FROM (<text>) AS <alias>``.
    """
    body = text.strip().rstrip(";").rstrip()
    return f"SELECT * FROM (\n{body}\n) AS {plain_identifier(alias)}"
