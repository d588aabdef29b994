"""Tests of the static HTML run report in ``jobs.report.render`` (no Spark).

The ledger below covers three days: an initial load ~100x larger than the daily drops, a
day whose first silver attempt failed and was retried, and the report day, whose quality
step failed with a message containing markup.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from html.parser import HTMLParser

from jobs.report import DqRow, QuarantineCount, ReportInput, RunRow, render_html, report_name

D1, D2, D3 = dt.date(1998, 8, 1), dt.date(1998, 8, 2), dt.date(1998, 8, 3)
GENERATED = dt.datetime(1998, 8, 4, 6, 30, 0)


def _run(run_id: str, step: str, ds: dt.date, status: str, start: str, secs: float | None,
         written: dict[str, int] | None = None, quarantined: dict[str, int] | None = None,
         message: str | None = None) -> RunRow:
    started = dt.datetime.combine(ds, dt.time.fromisoformat(start))
    ended = None if secs is None else started + dt.timedelta(seconds=secs)
    return RunRow(run_id=run_id, step=step, ds=ds, status=status, started_at=started,
                  ended_at=ended, rows_read={}, rows_written=written or {},
                  rows_quarantined=quarantined or {}, rows_duplicate={}, message=message)


def _dq(table: str, ds: dt.date, expectation: str, action: str, failed: int, outcome: str,
        at: str = "05:00:00") -> DqRow:
    return DqRow(run_id=f"dq-{ds}", table=table, ds=ds, expectation=expectation, action=action,
                 failed_rows=failed, outcome=outcome,
                 evaluated_at=dt.datetime.combine(ds, dt.time.fromisoformat(at)))


RUNS = (
    # Initial load: bronze 6,001,215 + 1,500,000 = 7,501,215.
    _run("r1", "ingest", D1, "succeeded", "01:00:00", 600.0,
         {"lineitem": 6_001_215, "orders": 1_500_000}),
    _run("r2", "silver", D1, "succeeded", "01:10:00", 900.0,
         {"lineitem": 6_001_000, "orders": 1_500_000}, {"lineitem": 215}),
    _run("r3", "gold", D1, "succeeded", "01:30:00", 120.0,
         {"daily_line_summary": 9_000, "revenue_by_nation": 25}),
    _run("r4", "quality", D1, "succeeded", "01:35:00", 30.0),
    # Daily drop: the first silver attempt failed after 4,321 s; the retry took 47.5 s.
    _run("r5", "ingest", D2, "succeeded", "01:00:00", 20.0, {"lineitem": 60_175, "orders": 15_000}),
    _run("r6", "silver", D2, "failed", "01:01:00", 4321.0, {"lineitem": 7_777},
         message="executor lost"),
    _run("r7", "silver", D2, "succeeded", "03:00:00", 47.5,
         {"lineitem": 45_175, "orders": 15_000}, {"lineitem": 12}),
    _run("r8", "gold", D2, "succeeded", "03:01:00", 12.0, {"daily_line_summary": 1_234}),
    _run("r9", "quality", D2, "succeeded", "03:02:00", 8.0),
    # Report day: quality fails with a message that contains markup.
    _run("r10", "ingest", D3, "succeeded", "01:00:00", 21.0,
         {"lineitem": 59_000, "orders": 14_800}),
    _run("r11", "silver", D3, "succeeded", "01:01:00", 44.0,
         {"lineitem": 58_990, "orders": 14_790}, {"orders": 10}),
    _run("r12", "gold", D3, "succeeded", "01:02:00", 11.0, {"daily_line_summary": 1_240}),
    _run("r13", "quality", D3, "failed", "01:03:00", 9.0,
         message="row count <b>drift</b> & more"),
    _run("r14", "maintain", D3, "skipped", "01:04:00", 2.0),
)

DQ = (
    _dq("lineitem", D1, "l_quantity_positive", "drop", 215, "dropped"),
    _dq("orders", D1, "o_totalprice_positive", "warn", 0, "passed"),
    _dq("lineitem", D2, "l_quantity_positive", "drop", 12, "dropped"),
    _dq("orders", D2, "o_totalprice_positive", "warn", 0, "passed"),
    # A stale evaluation of the same check on D3, superseded by the 05:00 one.
    _dq("orders", D3, "o_orderdate_in_range", "drop", 5_555, "dropped", at="02:00:00"),
    _dq("orders", D3, "o_orderdate_in_range", "drop", 10, "dropped"),
    _dq("orders", D3, "o_totalprice_positive", "warn", 0, "passed"),
    _dq("gold/daily_line_summary", D3, "row_count_matches_silver", "fail", 1, "failed"),
)

DATA = ReportInput(ds=D3, lake="s3://lake-bucket/tpch", runs=RUNS, dq=DQ, generated_at=GENERATED)


class _TagChecker(HTMLParser):
    """Records unbalanced svg/table/div tags; HTMLParser itself never rejects input."""

    TRACKED = frozenset({"svg", "table", "div"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.TRACKED:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.TRACKED:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_balanced(page: str) -> None:
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []


def test_report_name() -> None:
    assert report_name(D3, "tpch") == "tpch_daily_1998-08-03.html"
    assert report_name(D3, "flights") == "flights_daily_1998-08-03.html"


def test_title_header_and_chart_count() -> None:
    page = render_html(DATA)
    assert "<title>TPC-H daily pipeline — run report for 1998-08-03</title>" in page
    assert "<h1>TPC-H daily pipeline — run report for 1998-08-03</h1>" in page
    assert "s3://lake-bucket/tpch" in page
    assert "1998-08-04 06:30:00 UTC" in page
    # Rows per layer, quarantine, durations, expectation outcomes.
    assert page.count("<svg") == 4
    assert page.count('role="img"') == 4


def test_page_is_self_contained_and_balanced() -> None:
    page = render_html(DATA)
    for forbidden in ("<script", "<link", "http://", "https://", "@import", "url("):
        assert forbidden not in page
    _check_balanced(page)


def test_rows_per_layer_table_has_exact_numbers_and_log_ticks() -> None:
    page = render_html(DATA)
    table = page[page.index("<caption>Rows per layer per day (exact)"):]
    table = table[: table.index("</table>")]
    # ds, bronze, silver, quarantine, gold
    assert ('<td>1998-08-01</td><td class="num">7,501,215</td><td class="num">7,501,000</td>'
            '<td class="num">215</td><td class="num">9,025</td>') in table
    assert ('<td>1998-08-02</td><td class="num">75,175</td><td class="num">60,175</td>'
            '<td class="num">12</td><td class="num">1,234</td>') in table
    assert ('<td>1998-08-03</td><td class="num">73,800</td><td class="num">73,780</td>'
            '<td class="num">10</td><td class="num">1,240</td>') in table
    assert "rows, log scale" in page
    for tick in ("1", "10", "100", "1k", "10k", "100k", "1M", "10M"):
        assert f'text-anchor="end">{tick}</text>' in page


def test_latest_succeeded_run_wins_over_failed_attempt() -> None:
    page = render_html(DATA)
    assert "silver, 1998-08-02: 47.5 s" in page
    assert "4,321.0" not in page
    assert "7,777" not in page
    assert "executor lost" not in page


def test_succeeded_run_wins_over_later_failed_retry() -> None:
    retry = _run("r15", "gold", D3, "failed", "04:00:00", 3.0, {"daily_line_summary": 4_444},
                 message="retry broke")
    page = render_html(dataclasses.replace(DATA, runs=(*RUNS, retry)))
    gold_line = next(line for line in page.splitlines() if '<span class="step">gold<' in line)
    assert ">succeeded</span> 11.0 s (2 attempts)" in gold_line
    assert "4,444" not in page
    assert "retry broke" not in page


def test_banner_lists_steps_in_order_with_words_and_escaped_message() -> None:
    page = render_html(DATA)
    banner = page[page.index('<ul class="banner"'): page.index("</ul>")]
    steps = [s for s in ("ingest", "silver", "gold", "quality", "maintain")
             if f'<span class="step">{s}</span>' in banner]
    assert steps == ["ingest", "silver", "gold", "quality", "maintain"]
    positions = [banner.index(f'<span class="step">{s}</span>') for s in steps]
    assert positions == sorted(positions)
    assert ">failed</span> 9.0 s" in banner
    assert ">skipped</span> 2.0 s" in banner
    assert "row count &lt;b&gt;drift&lt;/b&gt; &amp; more" in page
    assert "<b>" not in page


def test_quarantine_legend_and_latest_dq_evaluation() -> None:
    page = render_html(DATA)
    assert "Quarantined rows by reason over days" in page
    for reason in ("lineitem.l_quantity_positive", "orders.o_orderdate_in_range"):
        assert f">{reason}</text>" in page
    assert "orders.o_orderdate_in_range, 1998-08-03: 10 rows" in page
    assert "5,555" not in page


def test_expectation_outcomes_and_not_passed_table() -> None:
    page = render_html(DATA)
    for outcome in ("passed", "warned", "dropped", "failed"):
        assert f">{outcome}</text>" in page
    table = page[page.index("<caption>Expectations that did not pass on 1998-08-03"):]
    table = table[: table.index("</table>")]
    assert ('<td>gold/daily_line_summary</td><td>row_count_matches_silver</td><td>fail</td>'
            '<td class="num">1</td><td>failed</td>') in table
    assert ('<td>orders</td><td>o_orderdate_in_range</td><td>drop</td>'
            '<td class="num">10</td><td>dropped</td>') in table
    assert "o_totalprice_positive" not in table


def test_no_quarantine_shows_sentence_instead_of_chart() -> None:
    dq = tuple(r for r in DQ if r.action != "drop")
    page = render_html(dataclasses.replace(DATA, dq=dq))
    assert "No rows were quarantined on any day." in page
    assert page.count("<svg") == 3
    _check_balanced(page)


def test_empty_input_renders_nothing_to_report() -> None:
    page = render_html(ReportInput(ds=D3, lake="file:///tmp/lake", runs=(), dq=(),
                                   generated_at=GENERATED))
    assert "Nothing to report yet" in page
    assert "run report for 1998-08-03" in page
    assert "<svg" not in page
    _check_balanced(page)


def test_output_is_deterministic_and_independent_of_row_order() -> None:
    first = render_html(DATA)
    assert render_html(DATA) == first
    shuffled = dataclasses.replace(DATA, runs=tuple(reversed(RUNS)), dq=tuple(reversed(DQ)))
    assert render_html(shuffled) == first


def test_quarantine_counts_from_the_tables_cover_parse_reasons() -> None:
    counts = (
        QuarantineCount("lineitem", D3, "wrong_field_count", 3),
        QuarantineCount("lineitem", D3, "bad_date:l_shipdate", 2),
        QuarantineCount("orders", D3, "o_orderdate_in_range", 10),
    )
    page = render_html(dataclasses.replace(DATA, quarantine=counts))
    legend = page[page.index("Quarantined rows by reason over days"):]
    legend = legend[: legend.index("</svg>")]
    assert "lineitem.wrong_field_count" in legend
    assert "lineitem.bad_date:l_shipdate" in legend
    # The table counts replace the drop expectations of the ledger.
    assert "lineitem.l_quantity_positive" not in legend
    _check_balanced(page)


def _legend_colours(page: str, title: str) -> list[str]:
    """Fill colours of the legend swatches (12 x 12 squares) of the chart named ``title``."""
    chart = page[page.index(f">{title}</title>"):]
    chart = chart[: chart.index("</svg>")]
    return re.findall(r'width="12" height="12" fill="(#[0-9A-Fa-f]{6})"', chart)


def test_every_quarantine_reason_has_its_own_colour() -> None:
    # Twelve reasons: more than the eight colours of the base palette.
    counts = tuple(QuarantineCount("lineitem", D3 if i % 2 else D2, f"reason_{i:02d}", i + 1)
                   for i in range(12))
    page = render_html(dataclasses.replace(DATA, quarantine=counts))
    colours = _legend_colours(page, "Quarantined rows by reason over days")
    assert len(colours) == 12
    assert len({c.upper() for c in colours}) == 12


def test_extra_steps_and_outcomes_get_colours_of_their_own() -> None:
    runs = (*RUNS, *(_run(f"x{i}", f"backfill_{i}", D3, "succeeded", "02:00:00", 5.0)
                     for i in range(10)))
    dq = (*DQ, *(_dq("orders", D3, f"check_{i}", "warn", 0, f"outcome_{i}") for i in range(10)))
    page = render_html(dataclasses.replace(DATA, runs=runs, dq=dq))
    steps = _legend_colours(page, "Step durations")
    outcomes = _legend_colours(page, "Expectation outcomes per day")
    # ingest, silver, gold, quality, maintain and the ten others.
    assert len(steps) == 15
    assert len({c.upper() for c in steps}) == 15
    # passed, warned, dropped, failed and the ten others.
    assert len(outcomes) == 14
    assert len({c.upper() for c in outcomes}) == 14
