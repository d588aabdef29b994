"""Render the run ledger as one self-contained static HTML report.

The page is opened straight from object storage or attached to an alert, so everything is
inline: CSS in a ``<style>`` block, charts as ``<svg>``, and no script, font or URL that
could be blocked or gone by the time someone reads it. Only the standard library is used so
the report can be built next to the scheduler without a Spark session.
"""

from __future__ import annotations

import colorsys
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["DqRow", "QuarantineCount", "ReportInput", "RunRow", "render_html", "report_name"]


@dataclass(frozen=True)
class RunRow:
    """One row of ``ops/runs``; timestamps are naive UTC."""

    run_id: str
    step: str
    ds: dt.date
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    rows_read: Mapping[str, int]
    rows_written: Mapping[str, int]
    rows_quarantined: Mapping[str, int]
    rows_duplicate: Mapping[str, int]
    message: str | None


@dataclass(frozen=True)
class DqRow:
    """One row of ``ops/dq_results``; for ``action == "drop"`` the expectation is the reason."""

    run_id: str
    table: str
    ds: dt.date
    expectation: str
    action: str
    failed_rows: int
    outcome: str
    evaluated_at: dt.datetime


@dataclass(frozen=True)
class QuarantineCount:
    """Rows of one ``quarantine/<table>`` with one reason, for one ``ds``."""

    table: str
    ds: dt.date
    reason: str
    rows: int


@dataclass(frozen=True)
class ReportInput:
    """Everything the report shows; ``generated_at`` is passed in so output is reproducible.

    ``quarantine`` (counts read from the quarantine tables) covers every reason, parse
    errors included; without it the quarantine chart falls back to the ``drop``
    expectations of ``dq``.
    """

    ds: dt.date
    lake: str
    runs: Sequence[RunRow]
    dq: Sequence[DqRow]
    generated_at: dt.datetime
    quarantine: Sequence[QuarantineCount] = ()


@dataclass(frozen=True)
class _Series:
    name: str
    colour: str
    values: Sequence[float]


_STEPS = ("ingest", "silver", "gold", "quality")
_OUTCOMES = ("passed", "warned", "dropped", "failed")
# Okabe-Ito: distinguishable under the common colour-vision deficiencies. Charts with more
# series than it holds continue with generated hues (_distinct_colours).
_PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
            "#000000")
# Spreads consecutive generated hues as far apart as possible, for any number of them.
_GOLDEN_FRACTION = 0.618033988749895
_STATUS_COLOURS = {"succeeded": "#009E73", "failed": "#D55E00", "skipped": "#56B4E9"}
_STEP_COLOURS = {"ingest": "#E69F00", "silver": "#56B4E9", "gold": "#009E73",
                 "quality": "#0072B2", "maintain": "#CC79A7"}
_OUTCOME_COLOURS = {"passed": "#009E73", "warned": "#E69F00", "dropped": "#56B4E9",
                    "failed": "#D55E00"}
_OTHER = "#999999"

_LEFT, _RIGHT, _TOP, _PLOT_H = 96.0, 24.0, 40.0, 240.0

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#222;
max-width:72rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.5rem}
.meta{color:#555}
.banner{list-style:none;padding:.75rem 1rem;border:1px solid #ccc;border-radius:6px}
.banner li{margin:.3rem 0}
.step{display:inline-block;min-width:6rem;font-weight:600}
.badge{display:inline-block;min-width:5.5rem;padding:0 .4rem;border-radius:4px;color:#000;
font-weight:600;text-align:center}
.msg{font-family:ui-monospace,monospace;color:#7a2900}
table{border-collapse:collapse;margin-top:.75rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem}th{background:#f3f3f3;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding-bottom:.3rem}
svg{max-width:100%;height:auto;font-family:inherit;font-size:12px}
""".strip()


def report_name(ds: dt.date, pipeline: str) -> str:
    """File name of the report for one DAG run date.

    :param ds: the DAG run's date.
    :param pipeline: the pipeline (its DAG is ``<pipeline>_daily``).
    :return: ``<pipeline>_daily_<ds>.html``.
    """
    return f"{pipeline}_daily_{ds.isoformat()}.html"


def _fmt_int(value: float) -> str:
    """Format a count with thousands separators.

    :param value: the count (floats are rounded).
    :return: e.g. ``6,001,215``.
    """
    return f"{round(value):,}"


def _fmt_secs(value: float) -> str:
    """Format a duration in seconds with one decimal and thousands separators.

    :param value: seconds.
    :return: e.g. ``1,234.5``.
    """
    return f"{value:,.1f}"


def _fmt_decade(exponent: int) -> str:
    """Short label of a power of ten for a log axis.

    :param exponent: the power of ten.
    :return: ``1``, ``10``, ``100``, ``1k`` ... ``100B``, then ``1e12`` and up.
    """
    for min_exp, suffix in ((9, "B"), (6, "M"), (3, "k")):
        if min_exp <= exponent < min_exp + 3:
            return f"{10 ** (exponent - min_exp)}{suffix}"
    return str(10**exponent) if 0 <= exponent < 3 else f"1e{exponent}"


def _log_ticks(peak: float) -> list[tuple[float, str]]:
    """Decade ticks from 1 up to the first power of ten at or above ``peak``.

    :param peak: largest value to show.
    :return: ``(value, label)`` pairs; at least 1 and 10 so an axis is always drawn.
    """
    top = max(1, math.ceil(math.log10(peak))) if peak > 1 else 1
    return [(10.0**e, _fmt_decade(e)) for e in range(top + 1)]


def _linear_ticks(peak: float) -> list[tuple[float, str]]:
    """Evenly spaced "nice" integer ticks (steps of 1, 2 or 5 times a power of ten).

    :param peak: largest value to show.
    :return: ``(value, label)`` pairs from 0 to the first tick at or above ``peak``.
    """
    raw = max(peak / 5.0, 1.0)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = max(1, math.ceil(peak / step))
    return [(i * step, _fmt_int(i * step)) for i in range(count + 1)]


def _distinct_colours(count: int, taken: Collection[str] = ()) -> list[str]:
    """``count`` colours, different from each other and from every colour in ``taken``.

    The Okabe-Ito colours come first. Beyond them, hues step around the colour wheel by the
    golden ratio (each new hue lands in the widest gap left) and the lightness cycles
    through three levels, so neighbouring series also differ in brightness.

    :param count: how many colours.
    :param taken: colours already in use in the same chart (``#RRGGBB``).
    :return: ``#RRGGBB`` strings, in the order to assign them.
    """
    used = {c.upper() for c in taken}
    colours: list[str] = []
    for colour in _PALETTE:
        if len(colours) < count and colour not in used:
            colours.append(colour)
            used.add(colour)
    step = 0
    while len(colours) < count:
        hue = (step * _GOLDEN_FRACTION) % 1.0
        lightness = (0.45, 0.65, 0.32)[step % 3]
        red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.75)
        colour = f"#{round(red * 255):02X}{round(green * 255):02X}{round(blue * 255):02X}"
        step += 1
        if colour not in used:
            colours.append(colour)
            used.add(colour)
    return colours


def _svg_bar_chart(chart_id: str, title: str, categories: Sequence[str],
                   series: Sequence[_Series], *, y_label: str, value_fmt: Callable[[float], str],
                   unit: str, log_scale: bool = False, stacked: bool = False) -> str:
    """Draw a grouped or stacked bar chart with axes, ticks and a legend as inline SVG.

    :param chart_id: unique id prefix for the ``<title>``/``<desc>`` the SVG is labelled by.
    :param title: chart title, shown and used as the accessible name.
    :param categories: x axis categories (already escaped-safe strings such as ISO dates).
    :param series: one entry per legend item, ``values`` aligned with ``categories``.
    :param y_label: y axis label, including the unit.
    :param value_fmt: formats a value for tooltips.
    :param unit: unit word appended to tooltip values.
    :param log_scale: log10 y axis; zero values draw no bar.
    :param stacked: stack series instead of placing them side by side.
    :return: the ``<svg>`` element.
    """
    if log_scale and stacked:
        raise ValueError("stacked bars on a log axis would misstate each segment")
    n = max(len(series), 1)
    slot = 80.0 if stacked else max(80.0, 14.0 * n + 24.0)
    width = max(480.0, _LEFT + slot * len(categories) + _RIGHT)
    bottom = _TOP + _PLOT_H
    height = bottom + 64.0 + 18.0 * len(series)
    columns = [[s.values[i] for s in series] for i in range(len(categories))]
    peak = max((sum(c) if stacked else max(c, default=0.0) for c in columns), default=0.0)
    ticks = _log_ticks(peak) if log_scale else _linear_ticks(peak)
    top = math.log10(ticks[-1][0]) if log_scale else ticks[-1][0]

    def y_of(value: float) -> float:
        scaled = math.log10(max(value, 1.0)) if log_scale else value
        return bottom - _PLOT_H * scaled / top

    name = escape(title)
    out = [f'<svg role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
           f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
           f'<title id="{chart_id}-title">{name}</title>',
           f'<desc id="{chart_id}-desc">{escape(y_label)} per day; legend below the chart.</desc>',
           f'<text x="{_LEFT:.1f}" y="20" font-size="14" font-weight="600">{name}</text>']
    for value, label in ticks:
        y = y_of(value)
        out.append(f'<line x1="{_LEFT:.1f}" x2="{width - _RIGHT:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#e3e3e3"/>')
        out.append(f'<text x="{_LEFT - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for i, category in enumerate(categories):
        x0 = _LEFT + slot * i
        bar_w = 40.0 if stacked else min(16.0, (slot - 20.0) / n)
        base = bottom
        for j, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            x = x0 + (slot - bar_w) / 2 if stacked else x0 + (slot - bar_w * n) / 2 + bar_w * j
            y_top = y_of(sum(columns[i][: j + 1])) if stacked else y_of(value)
            # Keep a 1-unit value visible on a log axis, where it would be zero pixels tall.
            h = max(base - y_top, 1.0)
            tip = f"{escape(s.name)}, {category}: {value_fmt(value)} {unit}"
            out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}"'
                       f' fill="{s.colour}" stroke="#333" stroke-width="0.5"><title>{tip}</title>'
                       '</rect>')
            if stacked:
                base = y_top
        out.append(f'<text x="{x0 + slot / 2:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">'
                   f'{category}</text>')
    mid_y = _TOP + _PLOT_H / 2
    out += [f'<line x1="{_LEFT:.1f}" x2="{_LEFT:.1f}" y1="{_TOP:.1f}" y2="{bottom:.1f}" '
            'stroke="#333"/>',
            f'<line x1="{_LEFT:.1f}" x2="{width - _RIGHT:.1f}" y1="{bottom:.1f}" '
            f'y2="{bottom:.1f}" stroke="#333"/>',
            f'<text x="{_LEFT + (width - _LEFT - _RIGHT) / 2:.1f}" y="{bottom + 36:.1f}" '
            'text-anchor="middle">day (ds)</text>',
            f'<text x="16" y="{mid_y:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 16 {mid_y:.1f})">{escape(y_label)}</text>']
    for j, s in enumerate(series):
        y = bottom + 54.0 + 18.0 * j
        out.append(f'<rect x="{_LEFT:.1f}" y="{y:.1f}" width="12" height="12" fill="{s.colour}" '
                   f'stroke="#333" stroke-width="0.5"/><text x="{_LEFT + 18:.1f}" '
                   f'y="{y + 10:.1f}">{escape(s.name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]],
           numeric: Sequence[bool]) -> str:
    """Build an HTML table; cells must already be escaped.

    :param caption: visible table caption (escaped here).
    :param headers: column headings (escaped here).
    :param rows: escaped cell texts.
    :param numeric: per column, whether to right-align it.
    :return: the ``<table>`` element.
    """
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>"
                         for c, num in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows)
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>\n{body}\n</tbody></table>")


def _step_key(step: str) -> tuple[int, str]:
    """Sort key putting the pipeline steps in run order and any other step after them."""
    return (_STEPS.index(step) if step in _STEPS else len(_STEPS), step)


def _chosen_runs(runs: Iterable[RunRow]) -> dict[tuple[str, dt.date], RunRow]:
    """Pick the run that represents each (step, ds).

    :param runs: all ledger rows, retries and re-runs included.
    :return: per ``(step, ds)`` the latest succeeded run, else the latest run of any status.
    """
    chosen: dict[tuple[str, dt.date], RunRow] = {}
    for run in runs:
        # The last success is what the tables hold even if a later retry failed; run_id only
        # breaks exact timestamp ties so the choice does not depend on input order.
        rank = (run.status == "succeeded", run.started_at, run.run_id)
        best = chosen.get((run.step, run.ds))
        if best is None or rank > (best.status == "succeeded", best.started_at, best.run_id):
            chosen[(run.step, run.ds)] = run
    return chosen


def _latest_dq(rows: Iterable[DqRow]) -> list[DqRow]:
    """Keep only the latest evaluation of each (table, expectation, ds), sorted.

    :param rows: all ``ops/dq_results`` rows.
    :return: rows whose ``evaluated_at`` is the latest for their key.
    """
    rows = list(rows)
    latest: dict[tuple[str, str, dt.date], dt.datetime] = {}
    for r in rows:
        key = (r.table, r.expectation, r.ds)
        latest[key] = max(latest.get(key, r.evaluated_at), r.evaluated_at)
    kept = [r for r in rows if r.evaluated_at == latest[(r.table, r.expectation, r.ds)]]
    return sorted(kept, key=lambda r: (r.ds, r.table, r.expectation, r.action, r.outcome,
                                       r.failed_rows, r.run_id))


def _duration(run: RunRow) -> float | None:
    """Seconds from start to end, or None while a run has no end (still running or killed)."""
    return None if run.ended_at is None else (run.ended_at - run.started_at).total_seconds()


def _badge(status: str) -> str:
    """Status word on its colour, so the colour is never the only signal."""
    colour = _STATUS_COLOURS.get(status, _OTHER)
    return f'<span class="badge" style="background:{colour}">{escape(status)}</span>'


def _banner(ds: dt.date, runs: Sequence[RunRow],
            chosen: Mapping[tuple[str, dt.date], RunRow]) -> str:
    """One line per step of the report's ds: status, duration and the message of a failure."""
    steps = sorted({r.step for r in runs if r.ds == ds} | set(_STEPS), key=_step_key)
    lines = []
    for step in steps:
        run = chosen.get((step, ds))
        if run is None:
            lines.append(f'<li><span class="step">{escape(step)}</span> {_badge("no run")}</li>')
            continue
        secs = _duration(run)
        took = "no end time recorded" if secs is None else f"{_fmt_secs(secs)} s"
        attempts = sum(1 for r in runs if r.step == step and r.ds == ds)
        extra = f" ({attempts} attempts)" if attempts > 1 else ""
        msg = (f' <span class="msg">{escape(run.message)}</span>'
               if run.status == "failed" and run.message else "")
        lines.append(f'<li><span class="step">{escape(step)}</span> {_badge(run.status)} '
                     f"{took}{extra}{msg}</li>")
    return f'<ul class="banner" aria-label="status for {ds.isoformat()}">\n' + \
        "\n".join(lines) + "\n</ul>"


def _layers_section(days: Sequence[dt.date],
                    chosen: Mapping[tuple[str, dt.date], RunRow]) -> str:
    """Rows per layer per day on a log axis, then the exact numbers as a table."""
    def total(step: str, day: dt.date, field: str) -> float:
        run = chosen.get((step, day))
        counts: Mapping[str, int] = {} if run is None else getattr(run, field)
        return float(sum(counts.values()))

    layers = [("bronze", "ingest", "rows_written", "#E69F00"),
              ("silver", "silver", "rows_written", "#56B4E9"),
              ("quarantine", "silver", "rows_quarantined", "#D55E00"),
              ("gold", "gold", "rows_written", "#F0E442")]
    series = [_Series(name, colour, [total(step, d, field) for d in days])
              for name, step, field, colour in layers]
    labels = [d.isoformat() for d in days]
    chart = _svg_bar_chart("layers", "Rows per layer per day", labels, series,
                           y_label="rows, log scale", value_fmt=_fmt_int, unit="rows",
                           log_scale=True)
    rows = [[label, *(_fmt_int(s.values[i]) for s in series)] for i, label in enumerate(labels)]
    table = _table("Rows per layer per day (exact)", ["ds", *(s.name for s in series)], rows,
                   [False] + [True] * len(series))
    return f"<h2>Rows per layer per day</h2>\n{chart}\n{table}"


def _quarantine_section(days: Sequence[dt.date], dq: Sequence[DqRow],
                        quarantine: Sequence[QuarantineCount] = ()) -> str:
    """Stacked quarantined rows per reason and day, or a sentence when nothing was dropped."""
    totals: dict[tuple[str, dt.date], int] = defaultdict(int)
    if quarantine:
        for q in quarantine:
            totals[(f"{q.table}.{q.reason}", q.ds)] += q.rows
    else:
        for r in dq:
            if r.action == "drop" and r.failed_rows > 0:
                totals[(f"{r.table}.{r.expectation}", r.ds)] += r.failed_rows
    head = ("<h2>Quarantined rows by reason over days</h2>\n<p>A line with several "
            "reasons counts once under each of them.</p>")
    if not totals:
        return f"{head}\n<p>No rows were quarantined on any day.</p>"
    reasons = sorted({reason for reason, _ in totals})
    series = [_Series(reason, colour, [float(totals.get((reason, d), 0)) for d in days])
              for reason, colour in zip(reasons, _distinct_colours(len(reasons)), strict=True)]
    chart = _svg_bar_chart("quarantine", "Quarantined rows by reason over days",
                           [d.isoformat() for d in days], series, y_label="rows",
                           value_fmt=_fmt_int, unit="rows", stacked=True)
    return f"{head}\n{chart}"


def _durations_section(days: Sequence[dt.date],
                       chosen: Mapping[tuple[str, dt.date], RunRow]) -> str:
    """Grouped bars of each step's duration per day (the chosen run of each step)."""
    steps = sorted({step for step, _ in chosen}, key=_step_key)
    extra = [s for s in steps if s not in _STEP_COLOURS]
    colours = {**_STEP_COLOURS,
               **dict(zip(extra, _distinct_colours(len(extra), _STEP_COLOURS.values()),
                          strict=True))}
    series = []
    for step in steps:
        colour = colours[step]
        secs = [chosen.get((step, d)) for d in days]
        series.append(_Series(step, colour,
                              [(_duration(r) or 0.0) if r is not None else 0.0 for r in secs]))
    chart = _svg_bar_chart("durations", "Step durations", [d.isoformat() for d in days], series,
                           y_label="seconds", value_fmt=_fmt_secs, unit="s")
    return f"<h2>Step durations</h2>\n{chart}"


def _expectations_section(ds: dt.date, dq: Sequence[DqRow]) -> str:
    """Stacked outcome counts per day, then the report day's expectations that did not pass."""
    head = "<h2>Expectation outcomes</h2>"
    if not dq:
        return f"{head}\n<p>No expectations have been evaluated yet.</p>"
    days = sorted({r.ds for r in dq})
    extra = sorted({r.outcome for r in dq} - set(_OUTCOMES))
    colours = {**_OUTCOME_COLOURS,
               **dict(zip(extra, _distinct_colours(len(extra), _OUTCOME_COLOURS.values()),
                          strict=True))}
    outcomes = [*_OUTCOMES, *extra]
    series = [_Series(o, colours[o],
                      [float(sum(1 for r in dq if r.ds == d and r.outcome == o)) for d in days])
              for o in outcomes]
    chart = _svg_bar_chart("expectations", "Expectation outcomes per day",
                           [d.isoformat() for d in days], series,
                           y_label="expectations evaluated", value_fmt=_fmt_int,
                           unit="expectations", stacked=True)
    today = [r for r in dq if r.ds == ds]
    bad = [r for r in today if r.outcome != "passed"]
    if not bad:
        detail = f"<p>All {len(today):,} expectations evaluated for {ds.isoformat()} passed.</p>"
    else:
        detail = _table(f"Expectations that did not pass on {ds.isoformat()}",
                        ["table", "expectation", "action", "failed rows", "outcome"],
                        [[escape(r.table), escape(r.expectation), escape(r.action),
                          _fmt_int(r.failed_rows), escape(r.outcome)] for r in bad],
                        [False, False, False, True, False])
    return f"{head}\n{chart}\n{detail}"


def render_html(data: ReportInput) -> str:
    """Render the daily run report as one self-contained HTML page.

    :param data: ledger rows, the report's ds, lake URI and generation time.
    :return: the HTML document; the same input always gives the same bytes.
    """
    title = f"TPC-H daily pipeline — run report for {data.ds.isoformat()}"
    generated = data.generated_at
    if generated.tzinfo is not None:
        generated = generated.astimezone(dt.UTC).replace(tzinfo=None)
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="meta">Lake: <code>{escape(data.lake)}</code><br>'
             f"Generated: {generated:%Y-%m-%d %H:%M:%S} UTC</p>"]
    if not data.runs:
        parts.append("<p>Nothing to report yet: the run ledger has no runs.</p>")
    else:
        chosen = _chosen_runs(data.runs)
        dq = _latest_dq(data.dq)
        days = sorted({r.ds for r in data.runs} | {r.ds for r in dq}
                      | {q.ds for q in data.quarantine})
        parts += [_banner(data.ds, data.runs, chosen), _layers_section(days, chosen),
                  _quarantine_section(days, dq, data.quarantine),
                  _durations_section(days, chosen),
                  _expectations_section(data.ds, dq)]
    body = "\n".join(parts)
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
