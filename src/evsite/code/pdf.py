"""The permit package as a PDF drawing set on ANSI B (11 × 17 in) sheets, drawn with reportlab.

Every page carries a title block (project, preparer and license, sheet number and title, seal box).
Text is never smaller than 8 pt at print size, so the sheets read when printed at 100 %. The one-line
diagram is drawn with reportlab's canvas from the same rows as the SVG (`oneline.layout_rows`) and is
split across sheets E-1.0, E-1.1, … so that a large garage stays legible.

reportlab is an optional dependency (`pip install 'evsite[pdf]'`); this module is imported only for PDF output,
and `evsite check` says what to install when it is missing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any, ClassVar

import reportlab
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from evsite.code.oneline import _Row, layout_rows
from evsite.code.package import Package, elements_text, oneline_chunks
from evsite.code.rules.context import ReportTable, num
from evsite.code.rules.ieee519 import short_circuit_a

MIN_PT = 8.0  # smallest text on any sheet, at print size
BODY_PT = 9.0
INCH = 72.0
PAGE = (17 * INCH, 11 * INCH)  # ANSI B landscape
MARGIN = 0.5 * INCH
TITLE_H = 0.9 * INCH

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/Library/Fonts")
_FALLBACK_GLYPHS = {"→": "->", "φ": "ph", "′": "'", "″": '"', "Σ": "sum", "Δ": "d", "✓": "ok"}


def _fonts() -> tuple[str, str, Callable[[str], str]]:
    """Register a Unicode font (DejaVu where the system has it, else reportlab's own Vera).

    Returns the regular and bold names and a function that replaces characters the font lacks."""
    from reportlab.pdfbase import pdfmetrics

    if "evsite" in pdfmetrics.getRegisteredFontNames():
        font = pdfmetrics.getFont("evsite")
    else:
        pairs = [(Path(d) / "DejaVuSans.ttf", Path(d) / "DejaVuSans-Bold.ttf") for d in _FONT_DIRS]
        own = Path(reportlab.__file__).parent / "fonts"
        pairs.append((own / "Vera.ttf", own / "VeraBd.ttf"))
        regular, bold = next((r, b) for r, b in pairs if r.is_file() and b.is_file())
        pdfmetrics.registerFont(TTFont("evsite", str(regular)))
        pdfmetrics.registerFont(TTFont("evsite-bold", str(bold)))
        pdfmetrics.registerFontFamily(
            "evsite", normal="evsite", bold="evsite-bold", italic="evsite", boldItalic="evsite-bold"
        )
        font = pdfmetrics.getFont("evsite")
    have = font.face.charToGlyph

    def clean(text: str) -> str:
        if all(ord(ch) in have or ch in "\n\t" for ch in text):
            return text
        return "".join(ch if ord(ch) in have else _FALLBACK_GLYPHS.get(ch, "?") for ch in text)

    return "evsite", "evsite-bold", clean


def render_pdf(pkg: Package) -> bytes:
    """The package as PDF bytes."""
    return _Builder(pkg).build()


class _Builder:
    def __init__(self, pkg: Package) -> None:

        self.pkg = pkg
        self.font, self.bold, self.clean = _fonts()
        self.body = ParagraphStyle("body", fontName=self.font, fontSize=BODY_PT, leading=BODY_PT * 1.25)
        self.cell = ParagraphStyle("cell", fontName=self.font, fontSize=MIN_PT, leading=MIN_PT * 1.2)
        self.head_cell = ParagraphStyle("hcell", parent=self.cell, fontName=self.bold)
        self.h1 = ParagraphStyle("h1", fontName=self.bold, fontSize=16, leading=20, spaceAfter=6)
        self.h2 = ParagraphStyle("h2", fontName=self.bold, fontSize=12, leading=15, spaceBefore=8, spaceAfter=4)
        self.width = PAGE[0] - 2 * MARGIN
        self.height = PAGE[1] - 2 * MARGIN - TITLE_H - 8
        self.story: list[Any] = []

    # ------------------------------------------------------------------ helpers

    def p(self, text: str, style: Any = None) -> Any:

        return Paragraph(escape(self.clean(text)), style or self.body)

    def sheet(self, number: str, title: str, first: bool = False) -> None:

        if not first:
            self.story.append(PageBreak())
        self.story.append(_SheetMark(number, title))
        self.story.append(self.p(title, self.h1))

    def table(
        self, t: ReportTable, widths: list[float] | None = None, wrap: set[int] | None = None, title: bool = True
    ) -> None:
        """A ReportTable; columns in `wrap` (all when None) wrap as paragraphs, others are plain text."""
        from reportlab.platypus import Table, TableStyle

        if title:
            self.story.append(self.p(t.title, self.h2))
        head = [self.p(c, self.head_cell) for c in t.columns]

        room = [w - 7 for w in widths] if widths else None  # less the cell padding
        body: list[list[Any]] = []
        for row in t.rows:
            cells: list[Any] = []
            for i, value in enumerate(row):
                text = self.clean(value)
                fits = room is not None and stringWidth(text, self.font, MIN_PT) <= room[i]
                # A Paragraph only where the text must wrap: they cost most of the time on large sites.
                cells.append(self.p(text, self.cell) if (wrap is None or i in wrap) and not fits else text)
            body.append(cells)
        table = Table([head, *body], colWidths=widths, repeatRows=1, hAlign="LEFT")
        style = [
            ("FONT", (0, 0), (-1, -1), self.font, MIN_PT),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]
        table.setStyle(TableStyle(style))
        self.story.append(table)
        if t.note:
            self.story.append(self.p(t.note, self.cell))

    # ------------------------------------------------------------------ sheets

    def build(self) -> bytes:

        buf = io.BytesIO()
        doc = BaseDocTemplate(
            buf,
            pagesize=PAGE,
            title=self.clean(f"{self.pkg.project}: permit package"),
            author=self.clean(self.pkg.report.site.permit.preparer or ""),
            subject="EV charging permit package",
            creator="evsite",
        )
        y = MARGIN + TITLE_H + 8
        frame = Frame(MARGIN, y, self.width, self.height, id="body", showBoundary=0)
        half = (self.width - 18) / 2
        columns = [
            Frame(MARGIN, y, half, self.height, id="left"),
            Frame(MARGIN + half + 18, y, half, self.height, id="right"),
        ]
        doc.addPageTemplates(
            [
                PageTemplate(id="sheet", frames=[frame], onPageEnd=self._title_block),
                PageTemplate(id="columns", frames=columns, onPageEnd=self._title_block),
            ]
        )
        self._cover()
        self._actions()
        self._oneline()
        self._panels()
        self._worksheet()
        self._schedules()
        self._permit_tables()
        self._appendix()
        doc.build(self.story)
        return buf.getvalue()

    def _cover(self) -> None:

        pkg = self.pkg
        self.sheet("E-0.0", f"{pkg.project}: EV charging permit package", first=True)
        kv = Table(
            [[self.p(k, self.head_cell), self.p(v, self.cell)] for k, v in pkg.cover],
            colWidths=[1.8 * INCH, 6.2 * INCH],
        )
        kv.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, "#888888"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        index = ReportTable("Sheet index", ("Sheet", "Title"), tuple((s.number, s.title) for s in pkg.sheets))
        left: list[Any] = [kv, self.p("Scope of work", self.h2), *[self.p("• " + s) for s in pkg.scope]]
        if pkg.notes:
            left += [self.p("Jurisdiction notes and local amendments", self.h2), *[self.p("• " + n) for n in pkg.notes]]
        self.story.append(Spacer(1, 4))
        right_start = len(self.story)
        self.table(index, [0.9 * INCH, 5.6 * INCH], wrap={1})
        self.table(pkg.revisions, [0.6 * INCH, 1.0 * INCH, 4.9 * INCH], wrap={2})
        right = self.story[right_start:]
        del self.story[right_start:]
        layout = Table([[left, right]], colWidths=[8.3 * INCH, self.width - 8.3 * INCH])
        layout.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
        self.story.append(layout)

    def _actions(self) -> None:
        assert self.pkg.actions is not None
        self.sheet("E-0.1", "Items needing action (failures first, then items for review)")
        w = [0.35, 0.65, 1.6, 1.6, 2.0, 4.9, 4.9]
        self.table(self.pkg.actions, [x * INCH for x in w], wrap={2, 3, 4, 5, 6}, title=False)

    def _oneline(self) -> None:
        rows = layout_rows(self.pkg.idx)
        chunks = oneline_chunks(rows)
        for i, chunk in enumerate(chunks):
            number = f"E-1.{i}"
            part = f" ({i + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            self.sheet(number, f"One-line diagram{part}")
            self.story.append(_OneLine(self, chunk, first=i == 0, last=i == len(chunks) - 1))

    def _panels(self) -> None:
        for i, s in enumerate(self.pkg.panel_schedules):
            self.sheet(f"E-2.{i}", f"EV panel schedule: panel {s.panel.id}")
            n = len(s.phases)
            self.table(s.table, [x * INCH for x in [0.8, 1.2, 3.2, 0.6, 0.8] + [1.0] * n], wrap={2})
            self.table(s.totals, [3.2 * INCH] + [1.2 * INCH] * n, wrap={0})

    def _worksheet(self) -> None:
        assert self.pkg.load_worksheet is not None
        self.sheet("E-3.0", "Load calculation worksheet")
        self.table(self.pkg.load_worksheet, [x * INCH for x in [2.6, 2.6, 10.0, 0.7]], wrap={0, 1, 2}, title=False)

    def _schedules(self) -> None:
        assert self.pkg.equipment is not None and self.pkg.conductors is not None
        self.sheet("E-4.0", "Equipment schedule")
        self.table(
            self.pkg.equipment,
            [x * INCH for x in [2.0, 2.2, 1.6, 2.0, 2.6, 3.4, 0.5]],
            wrap={0, 1, 3, 4, 5},
            title=False,
        )
        self.sheet("E-4.1", "Conductor and raceway schedule")
        w = [1.1, 0.9, 2.6, 0.7, 1.0, 6.3, 0.7, 0.7, 0.7]
        self.table(self.pkg.conductors, [x * INCH for x in w], wrap={2, 5}, title=False)

    def _permit_tables(self) -> None:
        self.sheet("E-5.0", "Permit scope, inspections, EVSE classification")
        for t in self.pkg.report.tables:
            n = len(t.columns)
            self.table(t, [self.width / n] * n if n > 4 else [3 * INCH] * n)

    def _appendix(self) -> None:

        self.story.append(NextPageTemplate("columns"))
        self.sheet("A-1", "Appendix: calculations and every finding")
        self.story.append(
            self.p(
                "Each finding names its rule and shows the arithmetic. Identical results on several elements "
                "(the same design repeated) are listed once with the elements they apply to."
            )
        )
        for kind, entries in self.pkg.appendix:
            self.story.append(self.p(kind.capitalize(), self.h2))
            for entry in entries:
                f = entry.finding
                head = f"{elements_text(entry.elements)} — {f.topic}: {f.status.value.upper()} ({f.rule})"
                lines = [f.message, *(f"{n}. {line}" for n, line in enumerate(f.arithmetic, 1))]
                if f.fix:
                    lines.append(f"Fix: {f.fix}")
                self.story.append(_TextBlock(self, [(head, True), *((line, False) for line in lines)]))

    # ------------------------------------------------------------------ title block

    def _title_block(self, canvas: Any, doc: Any) -> None:
        number, title = getattr(canvas, "_evsite_sheet", ("", ""))
        x0, y0, w, h = MARGIN, MARGIN, self.width, TITLE_H
        canvas.saveState()
        canvas.setLineWidth(1.2)
        canvas.rect(MARGIN - 6, MARGIN - 6, PAGE[0] - 2 * MARGIN + 12, PAGE[1] - 2 * MARGIN + 12)
        canvas.setLineWidth(0.8)
        canvas.rect(x0, y0, w, h)
        cols = [0.0, 6.2 * INCH, 9.2 * INCH, 13.0 * INCH, w]
        for c in cols[1:-1]:
            canvas.line(x0 + c, y0, x0 + c, y0 + h)
        lines = self.pkg.title_block
        canvas.setFont(self.bold, 10)
        canvas.drawString(x0 + 6, y0 + h - 14, self.clean(lines[0])[:80])
        canvas.setFont(self.font, MIN_PT + 1)
        canvas.drawString(x0 + 6, y0 + h - 28, self.clean(lines[1])[:95])
        canvas.drawString(x0 + 6, y0 + h - 42, self.clean(lines[2])[:95])
        canvas.drawString(
            x0 + 6, y0 + 8, self.clean(f"Generated by evsite from the site file; {self.pkg.report.edition}")
        )
        canvas.setFont(self.font, MIN_PT)
        canvas.drawString(x0 + cols[1] + 6, y0 + h - 12, "SEAL / SIGNATURE")
        canvas.setFont(self.font, MIN_PT + 1)
        rev = self.pkg.revisions.rows[-1]
        canvas.drawString(x0 + cols[2] + 6, y0 + h - 14, self.clean(f"Rev {rev[0]}  {rev[1]}"))
        _fit(canvas, self.bold, self.clean(title), x0 + cols[2] + 6, y0 + h - 32, cols[3] - cols[2] - 12, 11)
        canvas.setFont(self.font, MIN_PT + 1)
        canvas.drawString(x0 + cols[2] + 6, y0 + 8, f"Page {doc.page}")
        canvas.setFont(self.font, MIN_PT)
        canvas.drawString(x0 + cols[3] + 6, y0 + h - 12, "SHEET")
        canvas.setFont(self.bold, 28)
        canvas.drawString(x0 + cols[3] + 6, y0 + 16, number)
        canvas.restoreState()


def _fit(canvas: Any, font: str, text: str, x: float, y: float, width: float, size: float) -> None:
    """Draw `text` in `width`: smaller down to MIN_PT, then on two lines."""

    while size > MIN_PT and stringWidth(text, font, size) > width:
        size -= 0.5
    canvas.setFont(font, size)
    if stringWidth(text, font, size) <= width:
        canvas.drawString(x, y, text)
        return
    words, line = text.split(), ""
    while words and stringWidth(f"{line} {words[0]}".strip(), font, size) <= width:
        line = f"{line} {words.pop(0)}".strip()
    canvas.drawString(x, y + size * 0.6, line)
    canvas.drawString(x, y - size * 0.6, " ".join(words))


class _SheetMark(Flowable):
    """Zero-size marker: the title block drawn at the end of the page shows this sheet."""

    def __init__(self, number: str, title: str) -> None:
        super().__init__()
        self.number, self.title = number, title

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return 0.0, 0.0

    def draw(self) -> None:
        self.canv._evsite_sheet = (self.number, self.title)


class _TextBlock(Flowable):
    """Lines of plain text, wrapped by word, splittable across columns: one appendix finding.

    reportlab's Paragraph parses markup and measures every fragment; thousands of findings took
    seconds. Here word widths are cached (the arithmetic repeats the same words) and lines are drawn
    directly. The first line is bold; the rest are indented under it."""

    INDENT = 14.0
    LEADING = MIN_PT * 1.2
    SPACE_BEFORE = 3.0
    _widths: ClassVar[dict[tuple[str, str], float]] = {}

    def __init__(self, builder: _Builder, lines: list[tuple[str, bool]]) -> None:
        super().__init__()
        self.b, self.lines = builder, lines
        self.wrapped: list[tuple[str, bool]] = []
        self.width_for = -1.0

    def _word(self, word: str, font: str) -> float:
        key = (word, font)
        found = self._widths.get(key)
        if found is None:
            found = self._widths[key] = float(stringWidth(word, font, MIN_PT))
        return found

    def _wrap_lines(self, width: float) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        for text, bold in self.lines:
            font = self.b.bold if bold else self.b.font
            room = width - (0 if bold else self.INDENT)
            space = self._word(" ", font)
            line: list[str] = []
            used = 0.0
            for word in self.b.clean(text).split():
                w = self._word(word, font)
                if line and used + space + w > room:
                    out.append((" ".join(line), bold))
                    line, used = [], 0.0
                used += (space if line else 0.0) + w
                line.append(word)
            out.append((" ".join(line), bold))
        return out

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        if self.width_for != avail_width:
            self.wrapped, self.width_for = self._wrap_lines(avail_width), avail_width
        return avail_width, self.SPACE_BEFORE + len(self.wrapped) * self.LEADING

    def split(self, avail_width: float, avail_height: float) -> list[Any]:
        self.wrap(avail_width, avail_height)
        fit = int((avail_height - self.SPACE_BEFORE) // self.LEADING)
        if fit < 2 or fit >= len(self.wrapped):
            return []
        return [_TextBlock(self.b, self.wrapped[:fit]), _TextBlock(self.b, self.wrapped[fit:])]

    def draw(self) -> None:
        c = self.canv
        c.setFillColor(_COLOURS["power"])
        y = len(self.wrapped) * self.LEADING - MIN_PT
        for text, bold in self.wrapped:
            c.setFont(self.b.bold if bold else self.b.font, MIN_PT)
            c.drawString(0 if bold else self.INDENT, y, text)
            y -= self.LEADING


ROW_PT = 15.0
_COLOURS = {"power": "#222222", "ems": "#8b1fa9", "comms": "#1f6fb2", "meter": "#0a7d32"}


class _OneLine(Flowable):
    """One sheet of the one-line diagram: source and service on the first, legend on every sheet."""

    HEADER = 96.0

    def __init__(self, builder: _Builder, rows: list[_Row], first: bool, last: bool) -> None:
        super().__init__()
        self.b, self.rows, self.first, self.last = builder, rows, first, last

    MAX_SCALE = 1.6  # a small site is drawn larger to fill the sheet; never smaller than 1 (text ≥ 8 pt)

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        natural_h = (self.HEADER if self.first else 12) + len(self.rows) * ROW_PT + 40
        labels = max((self._width(f"{r.meter or ''} {r.ems or ''}") for r in self.rows), default=0) + 60
        natural_w = self._columns()[3] + labels + 160
        self.scale = max(1.0, min(self.MAX_SCALE, avail_height / natural_h, avail_width / natural_w))
        self.w = avail_width / self.scale
        self.h = natural_h
        return avail_width, natural_h * self.scale

    def _columns(self) -> tuple[float, float, float, float]:
        """x of the conductor text, x and width of the EVSE boxes, and where the EVSE boxes end."""
        depth = max((r.depth for r in self.rows), default=0)
        text_x = 16 + (depth + 1) * 22.0 + 120
        text_w = max((self._width(r.text) for r in self.rows if r.kind != "panel"), default=100)
        evse_x = text_x + text_w + 16
        evse_w = max((self._width(r.right) for r in self.rows), default=80) + 12
        return text_x, evse_x, evse_w, evse_x + evse_w

    def _text(self, x: float, y: float, text: str, size: float = MIN_PT, bold: bool = False, colour: str = "") -> None:
        c = self.canv
        c.setFillColor(colour or _COLOURS["power"])
        c.setFont(self.b.bold if bold else self.b.font, size)
        c.drawString(x, y, self.b.clean(text))

    def _width(self, text: str, size: float = MIN_PT) -> float:

        return float(stringWidth(self.b.clean(text), self.b.font, size))

    def draw(self) -> None:
        c = self.canv
        c.scale(self.scale, self.scale)
        idx = self.b.pkg.idx
        top = self.h
        left = 6.0

        def bus_x(level: int) -> float:
            return left + 10 + level * 22.0

        text_x, evse_x, evse_w, _ = self._columns()
        backbone_x = self.w - 150
        y = top
        if self.first:
            y = self._header(idx, left, top)
        else:
            self._text(left, top - 8, "(continued from the previous sheet)", MIN_PT)
            y = top - 12
        c.setLineWidth(0.8)
        rows_top = y
        open_bus: dict[int, list[float]] = {}  # level -> [top, bottom] of the vertical bus line
        segments: list[tuple[int, float, float]] = []
        for row in self.rows:
            mid = y - ROW_PT / 2
            attach = bus_x(row.depth)
            open_bus.setdefault(row.depth, [rows_top, mid])[1] = mid
            c.setStrokeColor(_COLOURS["power"])
            if row.kind == "panel":
                own = bus_x(row.depth + 1)
                if row.depth + 1 in open_bus:
                    start, end = open_bus.pop(row.depth + 1)
                    segments.append((row.depth + 1, start, end))
                open_bus[row.depth + 1] = [mid, mid]
                c.line(attach, mid, own, mid)
                c.setFillColor(_COLOURS["power"])
                c.rect(own - 4, mid - 5, 8, 10, fill=1, stroke=0)
                self._text(own + 10, mid - 3, row.text, 9, bold=True)
            else:
                c.line(attach, mid, text_x - 6, mid)
                if row.breaker:
                    c.setFillColor("#ffffff")
                    c.rect(attach + 8, mid - 4, 8, 8, fill=1, stroke=1)
                    label = f"{row.breaker}, {row.volts}" if row.volts else row.breaker
                    self._text(text_x - 10 - self._width(label), mid + 2.5, label)
                self._text(text_x, mid - 3, row.text, bold=row.kind == "feeder")
                if row.kind in ("circuit", "group"):
                    c.setFillColor("#eef6ee")
                    c.roundRect(evse_x, mid - 6.5, evse_w, 13, 2, fill=1, stroke=1)
                    self._text(evse_x + 5, mid - 3, row.right)
            x = evse_x + evse_w + 8
            if row.meter:
                c.setStrokeColor(_COLOURS["meter"])
                c.setFillColor("#ffffff")
                c.circle(x + 5, mid, 5, fill=1, stroke=1)
                self._text(x + 2.2, mid - 2.8, "M", MIN_PT, colour=_COLOURS["meter"])
                self._text(x + 13, mid - 3, row.meter, colour=_COLOURS["meter"])
                x += 18 + self._width(row.meter)
            if row.ems:
                label = row.ems if "EMS" in row.ems.upper() else f"EMS {row.ems}"
                self._text(x + 4, mid - 3, label, colour=_COLOURS["ems"])
                x += 10 + self._width(label)
            if row.comms:
                c.setStrokeColor(_COLOURS["comms"])
                c.setDash(3, 2)
                c.line(min(x + 4, backbone_x - 40), mid - 5, backbone_x, mid - 5)
                c.setDash()
                self._text(backbone_x - 4 - self._width(row.comms), mid - 3, row.comms, colour=_COLOURS["comms"])
            elif row.wireless:
                self._text(x + 8, mid - 3, f"((·)) {row.wireless}", colour=_COLOURS["comms"])
            y -= ROW_PT
        segments += [(level, a, b) for level, (a, b) in open_bus.items()]
        c.setStrokeColor(_COLOURS["power"])
        c.setLineWidth(1.6)
        for level, start, end in segments:
            if start > end:
                c.line(bus_x(level), start, bus_x(level), end)
        c.setLineWidth(0.8)
        self._backbone(backbone_x, top, y)
        self._text(
            left,
            4,
            "□ breaker (rating, poles, volts, phases)   ○M meter   ▭ EVSE   - - - wired comms to the site controller   "
            "((·)) wireless/PLC   EMS: energy management limit (625.42(A), 750.30)",
        )

    def _header(self, idx: Any, left: float, top: float) -> float:
        c = self.canv
        service = idx.site.service
        x = left + 10
        c.setStrokeColor(_COLOURS["power"])
        c.setFillColor("#ffffff")
        c.circle(x, top - 12, 8, fill=0)
        c.circle(x, top - 24, 8, fill=0)
        source = f"Utility {service.system.value}"
        if service.transformer:
            source += f", transformer {num(service.transformer.kva)} kVA, {num(service.transformer.impedance_pct)} %Z"
        available, _ = short_circuit_a(idx)
        if service.available_fault_current_a:
            source += f"; available fault current {num(service.available_fault_current_a)} A at the service (110.24)"
        elif available is not None:
            source += f"; available fault current ≤ {num(available, 0)} A (transformer, infinite bus) (110.24)"
        else:
            source += "; available fault current: not stated in the site file"
        self._text(left + 26, top - 16, source, 10, bold=True)
        c.setLineWidth(1.6)
        c.line(x, top - 32, x, top - self.HEADER)
        c.setLineWidth(0.8)
        c.rect(x - 5, top - 60, 10, 10, fill=1, stroke=1)
        alloc = f" (EV allocation {num(service.allocation_a)} A)" if service.allocation_a else ""
        self._text(left + 26, top - 58, f"Service {num(service.rating_a)} A{alloc}", 9)
        meters = idx.meters_by_node.get("service", [])
        if meters:
            self._text(
                left + 26, top - 44, "Meter " + ", ".join(f"{m.id} ({m.accuracy.value})" for m in meters),
                colour=_COLOURS["meter"],
            )  # fmt: skip
        ems = idx.ems_by_node.get("service", [])
        if ems:
            text = ", ".join(f"{e.id} ≤ {num(e.setpoint_a)} A" for e in ems)
            self._text(left + 26, top - 72, f"EMS {text} on the service (625.42(A), 220.70)", colour=_COLOURS["ems"])
        return top - self.HEADER

    def _backbone(self, x: float, top: float, bottom: float) -> None:
        c = self.canv
        site = self.b.pkg.report.site
        c.setStrokeColor(_COLOURS["comms"])
        c.setFillColor("#eef3fb")
        c.roundRect(x - 6, top - 34, 150, 30, 3, fill=1, stroke=1)
        self._text(x, top - 16, "evsite site controller (EMS)", MIN_PT, bold=True, colour=_COLOURS["comms"])
        versions = ", ".join(sorted({e.ocpp.version for e in site.evse})) or "—"
        self._text(x, top - 28, f"OCPP {versions} to the chargers", colour=_COLOURS["comms"])
        c.setDash(4, 2)
        c.line(x, top - 34, x, bottom)
        c.setDash()


__all__ = ["render_pdf"]
