"""Static HTML run report built from the run ledger (standard library only)."""

from __future__ import annotations

from jobs.report.render import DqRow, ReportInput, RunRow, render_html, report_name

__all__ = ["DqRow", "ReportInput", "RunRow", "render_html", "report_name"]
