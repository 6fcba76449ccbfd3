"""The doctor's report as people read it: tables in the terminal, one self-contained HTML file."""

from __future__ import annotations

import io
from pathlib import Path

from jinja2 import Environment
from rich.console import Console
from rich.table import Table

from .doctor import LIST_MAX, Report

TERMINAL_ROWS = 20


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:TERMINAL_ROWS]:
        table.add_row(*(str(value) for value in row))
    if len(rows) > TERMINAL_ROWS:
        table.caption = f"first {TERMINAL_ROWS} of {len(rows)}; the HTML and JSON reports have them all"
    return table


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]es-faq doctor[/bold] {report.alias} -> {report.index}: {report.faqs} FAQs "
                  f"({report.enabled} enabled), {report.probed} probed; collision: logit + "
                  f"{report.cosine_weight} x cosine >= {report.threshold}")
    console.print(_table(f"Collisions: {len(report.collisions)}",
                         ["FAQ", "question", "FAQ", "question", "score", "logit", "cosine", "what differs"],
                         [[c.faq_a, c.question_a, c.faq_b, c.question_b, c.score, c.logit, c.cosine,
                           "; ".join(c.differences)] for c in report.collisions]))
    console.print(_table(f"Similar questions closer to another FAQ: {len(report.strays)}",
                         ["FAQ", "similar question", "own logit", "other FAQ", "its question", "logit"],
                         [[s.faq_id, s.question, s.own_logit, s.other_faq, s.other_question, s.other_logit]
                          for s in report.strays]))
    unreached = ("not judged" if report.unreached_count is None
                 else f"{report.unreached_count} of {report.enabled} (over {report.searches_logged} logged searches)")
    console.print(f"Unreached FAQs: {unreached}" + (f": {', '.join(report.unreached[:TERMINAL_ROWS])}"
                                                    if report.unreached else ""))
    console.print(f"Empty answers: {report.empty_answer_count}"
                  + (f": {', '.join(report.empty_answers[:TERMINAL_ROWS])}" if report.empty_answers else ""))
    console.print(_table(f"Duplicated answers: {len(report.duplicate_answers)} groups", ["FAQs", "answer"],
                         [[", ".join(d["faq_ids"]), d["answer"][:80]] for d in report.duplicate_answers]))
    for note in report.notes:
        console.print(f"note: {note}")


def score_histogram_svg(report: Report) -> str:
    """Where the candidate FAQ pairs' best scores fall, with the threshold: an inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    values = report.candidate_scores
    if values:
        ax.hist(values, bins=40, color="#8aa4c8")
    ax.axvline(report.threshold, color="#c0392b", linestyle="--", label=f"threshold {report.threshold}")
    ax.set_xlabel("collision score of the best question pair (cross-encoder logit + weight x cosine)")
    ax.set_ylabel("FAQ pairs")
    ax.set_title(f"{len(values)} candidate FAQ pairs from Elasticsearch; "
                 f"{len(report.collisions)} at or above the threshold", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline in HTML


TEMPLATE = Path(__file__).with_name("doctor.html")


def render_html(report: Report) -> str:
    """One file: styles inline, the picture an inline SVG, no script and no external asset."""
    return Environment(autoescape=True).from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        r=report, svg=score_histogram_svg(report), limit=LIST_MAX)
