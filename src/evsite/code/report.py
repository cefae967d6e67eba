"""Render a check Report as text (rich), JSON, Markdown or HTML.

The HTML is one self-contained, printable file for a permit application: summary, the items to
correct, the one-line diagram (inline SVG), every finding with its rule and arithmetic, and the
permit tables. It is written as well-formed XML (XHTML syntax) so that it can be validated and
post-processed by ordinary XML tools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from html import escape
from typing import Any, Literal

import orjson
from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

from evsite import __version__
from evsite.code.check import Report
from evsite.code.findings import Finding, Status
from evsite.code.oneline import render_svg
from evsite.code.rules.context import ReportTable

Format = Literal["text", "json", "md", "html"]
FORMATS: tuple[str, ...] = ("text", "json", "md", "html")

_STYLE = {Status.FAIL: "bold red", Status.WARN: "yellow", Status.PASS: "green", Status.INFO: "cyan"}


def render(report: Report, fmt: str, verbose: bool = False) -> str:
    """The report in one of FORMATS, as text ready to print or write."""
    if fmt == "json":
        return render_json(report)
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "text":
        return render_text(report, verbose=verbose)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- JSON


def render_json(report: Report) -> str:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"


# --------------------------------------------------------------------------- text


def _summary(report: Report) -> str:
    counts = report.counts()
    verdict = "FAIL" if report.failed else "PASS"
    return f"{verdict}: " + ", ".join(f"{n} {s}" for s, n in counts.items())


def _painter(color_system: ColorSystem | None) -> Callable[[str, str], str]:
    """Wrap text in the ANSI codes of a rich style (or leave it plain when there is no colour)."""
    if color_system is None:
        return lambda text, style: text
    styles: dict[str, Style] = {}

    def paint(text: str, style: str) -> str:
        if not style:
            return text
        if style not in styles:
            styles[style] = Style.parse(style)
        return styles[style].render(text, color_system=color_system)

    return paint


def text_lines(report: Report, verbose: bool = False, color_system: ColorSystem | None = None) -> Iterator[str]:
    """Findings grouped by element; arithmetic and fixes shown for failures and warnings (all with verbose).

    Lines are styled with rich's Style → ANSI rendering but assembled as plain strings: rich's layout
    engine costs about a second for the 15,000 lines of a 1,000-EVSE site.
    """
    paint = _painter(color_system)
    yield paint(f"{report.site.name} — design check ({report.edition})", "bold")
    for element, findings in report.groups().items():
        yield ""
        yield paint(element, "bold underline")
        for f in findings:
            status = paint(f"{f.status.value.upper():<4}", _STYLE[f.status])
            head = paint(f"{f.topic} [{f.rule}]", "bold" if f.status is Status.FAIL else "")
            yield f"  {status}  {head} {f.message}"
            if verbose or f.status in (Status.FAIL, Status.WARN):
                for step in f.arithmetic:
                    yield paint(f"          {step}", "dim")
                if f.fix:
                    yield paint(f"        fix: {f.fix}", "bold")
    for table in report.tables:
        yield ""
        yield paint(table.title, "bold underline")
        yield paint("  " + " | ".join(table.columns), "bold")
        for row in table.rows:
            yield "  " + " | ".join(row)
    yield ""
    yield paint(_summary(report), "bold red" if report.failed else "bold green")


def print_text(report: Report, console: Console, verbose: bool = False) -> None:
    """Print the text report on a rich console, in colour when it is a colour terminal."""
    system = console._color_system if console.is_terminal else None
    console.file.write("\n".join(text_lines(report, verbose, system)) + "\n")
    console.file.flush()


def render_text(report: Report, verbose: bool = False, color: bool = False) -> str:
    return "\n".join(text_lines(report, verbose, ColorSystem.STANDARD if color else None)) + "\n"


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _inputs_text(inputs: dict[str, Any]) -> str:
    """`key=value; …` with floats to 3 places; scalars take a fast path (a big site has ~75,000)."""
    parts = []
    for key, value in inputs.items():
        kind = type(value)
        if kind is float:
            text = repr(round(value, 3))
        elif kind is str:
            text = value
        elif kind is int or kind is bool:
            text = str(value)
        else:
            text = f"{_rounded(value)}"
        parts.append(f"{key}={text}")
    return "; ".join(parts)


class _Escaper:
    """Escapes a report's texts once each.

    A 1,000-EVSE site has ~15,000 findings: topics, rules and fixes recur thousands of times, and
    memoised rule results share one inputs dict and one arithmetic list between identical designs,
    so those are remembered by identity (the report keeps them alive while it is rendered). The
    steps of a finding are escaped in one call, joined by NUL, which never occurs in report text.
    """

    def __init__(self, escape_fn: Callable[[str], str], step_sep: str) -> None:
        self._escape = escape_fn
        self._step_sep = step_sep
        self._texts: dict[object, str] = {}
        self._shared: dict[int, tuple[object, str]] = {}

    def text(self, value: object) -> str:
        done = self._texts.get(value)
        if done is None:
            done = self._texts[value] = self._escape(str(value))
        return done

    def _by_identity(self, obj: object, make: Callable[[], str]) -> str:
        hit = self._shared.get(id(obj))
        if hit is None or hit[0] is not obj:
            hit = self._shared[id(obj)] = (obj, make())
        return hit[1]

    def steps(self, steps: list[str]) -> str:
        """The steps escaped and joined by the step separator."""
        return self._by_identity(steps, lambda: self._escape("\0".join(steps)).replace("\0", self._step_sep))

    def inputs(self, inputs: dict[str, Any]) -> str:
        return self._by_identity(inputs, lambda: self._escape(_inputs_text(inputs)))


_UPPER = {s: s.value.upper() for s in Status}


def _md_table(table: ReportTable) -> list[str]:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", _md(table.note)]
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    site = report.site
    lines = [
        f"# Design check: {_md(site.name)}",
        "",
        f"- Code basis: {report.edition}; IEEE 519-2022",
        f"- AHJ: {_md(site.jurisdiction.ahj or 'not given')}",
    ]
    if site.address:
        lines.append(f"- Address: {_md(site.address)}")
    lines += [f"- Result: **{_summary(report)}**", f"- Generated by evsite {__version__}", ""]
    problems = [f for f in report.findings if f.status in (Status.FAIL, Status.WARN)]
    if problems:
        lines += ["## Items to correct or review", ""]
        lines += [
            f"- **{f.status.value.upper()}** {_md(f.element)} — {_md(f.topic)} ({f.rule}): {_md(f.message)}"
            + (f" *Fix:* {_md(f.fix)}" if f.fix else "")
            for f in problems
        ]
        lines.append("")
    lines += ["## Findings by element", ""]
    esc, rule = _Escaper(_md, "\n    - "), _Escaper(str, "")
    for element, findings in report.groups().items():
        lines += [f"### {_md(element)}", ""]
        for f in findings:
            lines.append(f"- **{_UPPER[f.status]}** {esc.text(f.topic)} — `{rule.text(f.rule)}` — {_md(f.message)}")
            if f.arithmetic:
                lines.append(f"    - {esc.steps(f.arithmetic)}")
            if f.inputs:
                lines.append(f"    - inputs: {esc.inputs(f.inputs)}")
            if f.fix:
                lines.append(f"    - **fix:** {esc.text(f.fix)}")
        lines.append("")
    lines += ["## Permits and classification", ""]
    for table in report.tables:
        lines += _md_table(table)
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;font-size:11pt;color:#222;margin:2em;max-width:1200px}
h1{font-size:18pt;margin-bottom:.2em}h2{font-size:14pt;border-bottom:2px solid #444;margin-top:1.6em}
h3{font-size:12pt;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #bbb;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#eee}
.st{font-weight:bold;text-transform:uppercase;white-space:nowrap}.fail{color:#b00020}.warn{color:#a15c00}
.pass{color:#1b7f2a}.info{color:#1f5f9f}.rule{white-space:nowrap;font-size:9pt}
ol.steps{margin:.2em 0 .2em 1.2em;padding:0;font-size:9pt;color:#444}.inputs{font-size:8pt;color:#666}
.fix{font-weight:bold}.verdict{font-size:13pt;font-weight:bold}
.diagram{overflow-x:auto;border:1px solid #ccc;padding:4px}.diagram svg{max-width:100%;height:auto}
@media print{body{margin:0;font-size:9pt}h2{page-break-after:avoid}tr{page-break-inside:avoid}
.diagram{border:none;overflow:visible}section.diagram-section{page-break-before:always}}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _html_table(table: ReportTable) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f"<p>{_e(table.note)}</p>" if table.note else ""
    return f"<h3>{_e(table.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _finding_rows(findings: Iterable[Finding], esc: _Escaper, with_element: bool = False) -> str:
    out = []
    for f in findings:
        status = f.status.value
        cells = [f'<tr><td class="st {status}">{status}</td>']
        if with_element:
            cells.append(f"<td>{esc.text(f.element)}</td>")
        cells.append(f'<td>{esc.text(f.topic)}</td><td class="rule">{esc.text(f.rule)}</td><td>{escape(f.message)}')
        if f.arithmetic:
            cells.append(f'<ol class="steps"><li>{esc.steps(f.arithmetic)}</li></ol>')
        if f.inputs:
            cells.append(f'<div class="inputs">inputs: {esc.inputs(f.inputs)}</div>')
        if f.fix:
            cells.append(f'<div class="fix">Fix: {esc.text(f.fix)}</div>')
        cells.append("</td></tr>")
        out.append("".join(cells))
    return "".join(out)


def render_html(report: Report, svg: str | None = None) -> str:
    site = report.site
    svg = svg if svg is not None else render_svg(site)
    verdict = "fail" if report.failed else "pass"
    meta = [f"Code basis: {report.edition}; IEEE 519-2022", f"AHJ: {site.jurisdiction.ahj or 'not given'}"]
    if site.address:
        meta.append(f"Address: {site.address}")
    meta.append(f"Generated by evsite {__version__}")
    parts = [
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">',
        f'<head><meta charset="utf-8"/><title>Design check: {_e(site.name)}</title><style>{_CSS}</style></head>',
        "<body>",
        f"<header><h1>Design check: {_e(site.name)}</h1>",
        "".join(f"<div>{_e(m)}</div>" for m in meta),
        f'<p class="verdict {verdict}">{_e(_summary(report))}</p></header>',
    ]
    esc = _Escaper(escape, "</li><li>")
    problems = [f for f in report.findings if f.status in (Status.FAIL, Status.WARN)]
    if problems:
        parts += [
            '<section id="problems"><h2>Items to correct or review</h2><table><thead><tr><th>Status</th>'
            "<th>Element</th><th>Check</th><th>Rule</th><th>Finding</th></tr></thead><tbody>",
            _finding_rows(problems, esc, with_element=True),
            "</tbody></table></section>",
        ]
    parts += [
        '<section id="diagram" class="diagram-section"><h2>One-line diagram</h2>',
        f'<div class="diagram">{svg}</div></section>',
        '<section id="findings"><h2>Findings by element</h2>',
    ]
    for element, findings in report.groups().items():
        parts.append(
            f"<h3>{_e(element)}</h3><table><thead><tr><th>Status</th><th>Check</th><th>Rule</th>"
            f"<th>Finding and arithmetic</th></tr></thead><tbody>{_finding_rows(findings, esc)}</tbody></table>"
        )
    parts.append("</section>")
    parts.append('<section id="permits"><h2>Permits and classification</h2>')
    parts += [_html_table(t) for t in report.tables]
    parts += ["</section>", "</body>", "</html>", ""]
    return "\n".join(parts)
