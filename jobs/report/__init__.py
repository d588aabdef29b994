"""Static HTML run report built from the run ledger (standard library only)."""

from __future__ import annotations

from jobs.report.render import (
    DqRow,
    QuarantineCount,
    ReportInput,
    RunRow,
    render_html,
    report_name,
)

__all__ = ["DqRow", "QuarantineCount", "ReportInput", "RunRow", "render_html", "report_name"]
