"""What the PDF inspection report says, section by section.

Page 1 is for the operator and takes ten seconds: the cell, a large verdict banner (colour +
word + symbol, readable without colour vision), why (one line per place: what, how much
against which limit, where, which finding), the slice of the worst finding with the findings
on it circled, the provenance and the traceability code. Then the recipe's checks (the
quantity each rule judged, defined), every finding, the sign-off and every measurement; then
the figures (findings on their slices, the cell in section, the unrolled cathode thickness)
and the cell's record: its ROI scan plans, synchrotron follow-ups and notes.

Every name, place and number comes from :mod:`core.describe` (the same the command line and
the workstation show); values are written by :mod:`core.report.format`, the building blocks
are in :mod:`core.report.flowables`, and :mod:`core.report.pdf` frames the pages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core import describe
from core.report.flowables import (
    HEAD_FILL,
    INK,
    MUTED,
    RULE,
    SEVERITY_BADGE,
    STATUS_BADGE,
    _badge,
    _fonts,
    _image,
    _styles,
    _t,
    _table,
    _verdict_banner,
)
from core.report.format import date_text, duration_text, fmt, short_hash

if TYPE_CHECKING:
    from core.report import ReportInputs

#: Most findings drawn as figures; the table lists all of them.
MAX_FINDING_FIGURES = 12
#: Reasons listed on page 1 (the findings table has them all).
MAX_REASONS = 8


def _where_cell(where: str) -> str:
    """"slice 8 (z 0.17 mm), winding 10, 102°" → the slice unbroken on one line, the rest below."""
    first, _, rest = str(where).partition(", ")
    text = _t(first).replace(" ", "&nbsp;")
    return text + (f"<br/>{_t(rest)}" if rest else "")


class ReportDocument:
    """Collects the flowables of one report, section by section (:func:`core.report.pdf.build_pdf`
    frames them into pages)."""

    def __init__(self, inputs: ReportInputs, width: float, height: float) -> None:
        self.inputs = inputs
        self.result: Mapping[str, Any] = inputs.result
        self.width = width
        self.height = height
        self.s = _styles()
        self.story: list[Any] = []

    # helpers -------------------------------------------------------------------------
    def p(self, text: str, style: str = "base") -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(text, self.s[style])

    def add(self, *flowables: Any) -> None:
        self.story.extend(flowables)

    def gap(self, points: float) -> None:
        from reportlab.platypus import Spacer

        self.add(Spacer(1, points))

    def note(self, text: str) -> None:
        self.add(self.p(_t(text), "note"))

    def figure(self, title: str | None, build: Callable[[], bytes], caption: str,
               max_height: float | None = None) -> bool:
        """Draw a figure, or a one-line note saying why it is missing; True when drawn."""
        from reportlab.platypus import KeepTogether

        from core.report.figures import NoFigure

        parts: list[Any] = []
        if title:
            parts.append(self.p(_t(title), "h2"))
        try:
            png = build()
        except NoFigure as exc:
            parts.append(self.p(_t(f"Not shown: {exc}."), "note"))
            self.add(KeepTogether(parts))
            return False
        except Exception as exc:  # a figure bug must not cost the operator the report
            parts.append(self.p(_t(f"Not shown: the figure could not be drawn ({type(exc).__name__}: {exc})."),
                                "note"))
            self.add(KeepTogether(parts))
            return False
        parts.append(_image(png, self.width, max_height or 0.8 * self.height))
        if caption:
            parts.append(self.p(caption, "caption"))
        parts.append(self.gap_flowable(6))
        self.add(KeepTogether(parts))
        return True

    def gap_flowable(self, points: float) -> Any:
        from reportlab.platypus import Spacer

        return Spacer(1, points)

    def findings(self) -> list[Mapping[str, Any]]:
        return describe.ordered_findings(self.result.get("findings") or [])

    # page 1 --------------------------------------------------------------------------
    def summary(self) -> None:
        from reportlab.platypus import PageBreak

        from core.report.qr import trace_flowables

        r = self.result
        verdict = str(r.get("verdict") or "")
        overrides = list(self.inputs.overrides or [])
        final = str(overrides[-1].get("new_verdict")) if overrides else verdict
        self.add(self.p("X-RAY CT INSPECTION REPORT", "kicker"))
        self.add(self.p(f"Cell {_t(r.get('cell_id') or 'unknown')}", "title"))
        self.gap(6)
        subtitle = f"Inspection #{self.inputs.inspection_id}" if self.inputs.inspection_id else ""
        self.add(_verdict_banner(final, subtitle, self.width))
        self.gap(6)
        for o in overrides:
            who = o.get("user_full_name") or o.get("user")
            self.add(self.p(
                f"<b>Verdict overridden</b> from {_t(o.get('old_verdict'))} to <b>{_t(o.get('new_verdict'))}</b> "
                f"by {_t(who)} on {_t(date_text(o.get('created_at')))}: “{_t(o.get('reason'))}”. "
                f"The automated verdict was {_t(verdict or '—')}.", "reason"))
        if overrides:
            self.gap(6)
        self.why()
        self.gap(8)
        self.facts_and_picture()
        self.add(*trace_flowables(self.inputs, self.width))  # QR: core/report/qr.py
        self.gap(4)
        self.add(self.p(_t(describe.SLICE_CONVENTION + " Values: ± is the expanded uncertainty (k = 2) "
                           "where the result gives it."), "muted"))
        self.add(PageBreak())
        self.checks()
        self.gap(10)
        self.findings_table()
        self.gap(12)
        self.signoff()
        self.gap(10)
        self.measurements()

    def why(self) -> None:
        """One row per place that set the verdict: what, how much against which limit, where."""
        reasons = describe.reasons(self.result)
        verdict = str(self.result.get("verdict") or "")
        self.add(self.p("<b>Why this verdict</b>", "reason"))
        if not reasons:
            self.add(self.p("No measurement reached a review or fail limit." if verdict == "PASS"
                            else "The result gives no reasons for its verdict.", "reason"))
            return
        rows: list[list[Any]] = [[self.p("", "head"), self.p("What was found", "head"),
                                  self.p("Measured (limit)", "head"), self.p("Where", "head"),
                                  self.p("Finding", "head")]]
        spans = []
        shown = reasons[:MAX_REASONS]
        for reason in shown:
            badge = _badge(*SEVERITY_BADGE.get(reason.severity, (reason.severity, "#EEEEEE", INK)), self.s)
            if reason.finding_id is None:
                spans.append(len(rows))
                rows.append([badge, self.p(_t(reason.sentence or reason.text), "cell"), "", "", ""])
                continue
            ids = f"<b>{_t(reason.finding_id)}</b>"
            if reason.also:
                ids += f"<br/><font size='6.5' color='{MUTED}'>also {_t(', '.join(reason.also))}</font>"
            rows.append([
                badge,
                self.p(f"<b>{_t(reason.label)}</b><br/><font size='7.2' color='{MUTED}'>{_t(reason.sentence)}</font>",
                       "cell"),
                self.p(f"<b>{_t(reason.value)}</b><br/><font size='7.2'>{_t(reason.limit)}</font>", "cell"),
                self.p(_where_cell(reason.where), "cell"),
                self.p(ids, "cell"),
            ])
        w = self.width
        extra = [("SPAN", (1, i), (-1, i)) for i in spans] + [("VALIGN", (0, 0), (-1, -1), "TOP")]
        self.add(_table(rows, [0.11 * w, 0.43 * w, 0.15 * w, 0.21 * w, 0.10 * w], zebra=False, extra=extra))
        if len(reasons) > len(shown):
            self.note(f"… and {len(reasons) - len(shown)} more (all findings are listed on page 2).")

    def facts_and_picture(self) -> None:
        """The provenance beside the slice of the worst finding (when the volume is at hand)."""
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        from core.report import figures as fig

        facts = self.details_table(0.56 * self.width if self.inputs.volume is not None else self.width)
        picture = None
        if self.inputs.volume is not None and describe.worst_finding(self.result.get("findings") or []):
            try:
                png = fig.overview_figure(self.inputs.volume, self.result)
                picture = _image(png, 0.42 * self.width, 0.42 * self.width * 1.05)
            except Exception:  # noqa: BLE001 - the page works without its picture
                picture = None
        if picture is None:
            self.add(facts)
            return
        table = Table([[facts, picture]], colWidths=[0.57 * self.width, 0.43 * self.width], hAlign="LEFT")
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                   ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                                   ("LINEBEFORE", (1, 0), (1, 0), 0.25, colors.HexColor(RULE))]))
        self.add(table)

    def details_table(self, width: float) -> Any:
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        r = self.result
        spacing = describe.spacing_of(r)
        voxel = " × ".join(describe.number(v, "µm") for v in spacing) + " µm (z × y × x)" if spacing else "—"
        shape = r.get("shape_zyx")
        shape_text = " × ".join(str(int(v)) for v in shape) + " voxels (z × y × x)" if shape else "—"
        if shape and spacing:
            shape_text += f", {describe.number(int(shape[0]) * spacing[0] / 1000.0, 'mm')} mm tall"
        geometry = r.get("geometry") or {}
        cell_geom = []
        if geometry.get("windings") is not None:
            cell_geom.append(f"{geometry['windings']} windings")
        diameter = geometry.get("can_outer_diameter_mm")
        if diameter is None and geometry.get("can_outer_radius_um") is not None:
            diameter = 2 * float(geometry["can_outer_radius_um"]) / 1000.0
        if diameter is not None:
            cell_geom.append(f"can Ø {describe.number(diameter, 'mm')} mm")
        selection = r.get("recipe_selection") or {}
        recipe = str(r.get("recipe") or "—")
        if selection.get("reason"):
            recipe += f" — {selection['reason']}"
        pairs = [
            ("Date", date_text(r.get("finished_at") or r.get("started_at"))),
            ("Operator", r.get("operator") or "—"),
            ("Recipe", recipe),
            ("Recipe hash", short_hash(r.get("recipe_hash"))),
            ("Software", f"cellqc {r.get('software_version')}" if r.get("software_version") else "—"),
            ("Processing time", duration_text(r)),
            ("Voxel size", voxel),
            ("Volume", shape_text),
            ("Cell", ", ".join(cell_geom) or "—"),
            ("Inspection", f"#{self.inputs.inspection_id}" if self.inputs.inspection_id else "not logged"),
        ]
        if r.get("source"):
            pairs.append(("Source", r.get("source")))
        rows = []
        for key, value in pairs:
            text = _t(value)
            if key in ("Recipe hash", "Source") and value != "—":
                text = f'<font name="{_fonts()["mono"]}" size="7">{text}</font>'
            rows.append([self.p(_t(key), "head"), self.p(text, "cell")])
        table = Table(rows, colWidths=[0.27 * width, 0.73 * width], hAlign="LEFT")
        table.setStyle(TableStyle([
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor(RULE)),
            ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.HexColor("#90A4AE")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ]))
        return table

    def details(self) -> None:
        """The provenance table alone (kept for callers that lay out their own page)."""
        self.add(self.details_table(self.width))

    # page 2 --------------------------------------------------------------------------
    def checks(self) -> None:
        """The recipe's rules: the quantity each judged (defined), its worst value, the limits."""
        rows_in = describe.check_rows(self.result)
        self.add(self.p("The recipe's checks", "h1"))
        if not rows_in:
            self.note("The result holds no limits.")
            return
        rows: list[list[Any]] = [[self.p("Check (what is compared with the limits)", "head"),
                                  self.p("Worst value", "headr"), self.p("Review at", "headr"),
                                  self.p("Fail at", "headr"), self.p("Result", "head")]]
        for row in rows_in:
            value = _t(row.value) + (f" <font color='{MUTED}'>({_t(row.finding_id)})</font>" if row.finding_id else "")
            badge = _badge(*STATUS_BADGE[row.status], self.s) if row.status in STATUS_BADGE else self.p("—", "muted")
            rows.append([
                self.p(f"<b>{_t(row.label)}</b><br/><font size='6.8' color='{MUTED}'>{_t(row.definition)}</font>",
                       "cell"),
                self.p(value, "cellr"), self.p(_t(row.review), "cellr"), self.p(_t(row.fail), "cellr"), badge,
            ])
        w = self.width
        self.add(_table(rows, [0.46 * w, 0.18 * w, 0.12 * w, 0.12 * w, 0.12 * w],
                        extra=[("VALIGN", (0, 0), (-1, -1), "TOP")]))

    def findings_table(self) -> None:
        findings = self.findings()
        self.add(self.p(f"Findings ({len(findings)})", "h1"))
        if not findings:
            self.note("The detectors found nothing to report.")
            return
        rows: list[list[Any]] = [[self.p("ID", "head"), self.p("Severity", "head"), self.p("What", "head"),
                                  self.p("Value", "headr"), self.p("Where", "head"),
                                  self.p("Description", "head")]]
        roi_of: dict[str, list[str]] = {}  # the ROI scans planned for each finding (the cell's story)
        for plan in self.inputs.roi_plans or []:
            body = plan.get("plan") if isinstance(plan.get("plan"), Mapping) else plan
            for fid in body.get("finding_ids") or []:
                roi_of.setdefault(str(fid), []).append(f"#{plan.get('id')} ({plan.get('status') or 'planned'})")
        for f in findings:
            severity = str(f.get("severity") or "info").lower()
            badge = SEVERITY_BADGE.get(severity, (severity, "#EEEEEE", INK))
            loc = describe.finding_location(f, self.result)
            where = "<br/>".join(_t(x).replace(" ", "&nbsp;") if i == 0 else _t(x)
                                 for i, x in enumerate((loc.slice_text(), loc.roll_text(), loc.span_text())) if x) or "—"
            sentence = describe.finding_sentence(f, self.result)
            if f.get("related"):
                sentence += f". Also seen as {', '.join(str(x) for x in f['related'])}"
            if roi_of.get(str(f.get("id"))):
                sentence += f". ROI scan {', '.join(roi_of[str(f.get('id'))])}"
            rows.append([
                self.p(f"<b>{_t(f.get('id'))}</b>", "cell"),
                _badge(*badge, self.s),
                self.p(_t(describe.finding_label(f)), "cell"),
                self.p(_t(describe.value_text(f)), "cellr"),
                self.p(where, "cell"),
                self.p(_t(sentence), "small"),
            ])
        w = self.width
        self.add(_table(rows, [0.06 * w, 0.11 * w, 0.15 * w, 0.11 * w, 0.21 * w, 0.36 * w],
                        extra=[("VALIGN", (0, 0), (-1, -1), "TOP")]))

    def measurements(self) -> None:
        """Every measurement of the result, named and with its unit, two to a row."""
        from reportlab.platypus import CondPageBreak

        pairs = describe.measurement_rows(self.result)
        self.add(CondPageBreak(0.25 * self.height))
        self.add(self.p("All measurements", "h1"))
        if not pairs:
            self.note("The result holds no measurements.")
            return
        rows: list[list[Any]] = [[self.p("Measurement", "head"), self.p("Value", "headr"),
                                  self.p("Measurement", "head"), self.p("Value", "headr")]]
        half = (len(pairs) + 1) // 2
        for i in range(half):
            row: list[Any] = []
            for label, value in (pairs[i], pairs[i + half] if i + half < len(pairs) else ("", "")):
                row += [self.p(_t(label), "small"), self.p(_t(value), "cellr")]
            rows.append(row)
        w = self.width
        self.add(_table(rows, [0.35 * w, 0.15 * w, 0.35 * w, 0.15 * w]))
        self.add(self.p(_t("The recipe's checks above compare the worst finding of each rule with its limits; "
                           "these are every measurement of the result as it is filed."), "muted"))

    # kept for callers of the old layout
    def metrics(self) -> None:
        self.checks()

    def signoff(self) -> None:
        from reportlab.lib import colors
        from reportlab.platypus import KeepTogether, Table, TableStyle

        line = "_" * 26
        rows = [
            [self.p("<b>Quality sign-off</b>", "base"), "", ""],
            [self.p(f"Reviewed by<br/><br/>{line}", "small"), self.p(f"Date<br/><br/>{line}", "small"),
             self.p(f"Signature<br/><br/>{line}", "small")],
            [self.p("Disposition:&nbsp;&nbsp; ☐ release &nbsp;&nbsp; ☐ re-test &nbsp;&nbsp; ☐ scrap &nbsp;&nbsp; "
                    "☐ send for ROI / synchrotron follow-up", "small"), "", ""],
        ]
        table = Table(rows, colWidths=[self.width / 3] * 3, hAlign="LEFT")
        table.setStyle(TableStyle([
            ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#90A4AE")),
            ("SPAN", (0, 0), (-1, 0)),
            ("SPAN", (0, 2), (-1, 2)),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_FILL)),
            ("TOPPADDING", (0, 0), (-1, -1), 4),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ("LEFTPADDING", (0, 0), (-1, -1), 6),
        ]))
        self.add(KeepTogether([table]))

    # figures -------------------------------------------------------------------------
    def figures(self) -> None:
        from reportlab.platypus import CondPageBreak, PageBreak

        from core.report import figures as fig

        inputs = self.inputs
        findings = self.findings()
        spacing = describe.spacing_of(self.result)
        if findings and inputs.volume is not None:
            self.add(PageBreak())
            self.add(self.p("Findings on the slices", "h1"))
            shown = findings[:MAX_FINDING_FIGURES]
            for f in shown:
                loc = describe.finding_location(f, self.result, nz=inputs.volume.shape[0])
                title = (f"{f.get('id')} · {describe.finding_label(f)} · {describe.value_text(f)} · "
                         f"{loc.slice_text()}")
                caption = (f"{_t(describe.finding_sentence(f, self.result))}. Left: the axial slice through the "
                           "finding, its bounding box outlined. Right: the whole slice, the finding circled.")
                self.figure(title, lambda f=f: fig.finding_figure(inputs.volume, f), caption)
            if len(findings) > len(shown):
                self.note(f"{len(findings) - len(shown)} more finding(s) omitted here "
                          f"(the first {len(shown)} by severity are shown; all are in the table).")
        elif findings:
            self.add(CondPageBreak(0.3 * self.height))
            self.add(self.p("Findings on the slices", "h1"))
            self.note(f"Slices of the {len(findings)} finding(s) not shown: "
                      + (inputs.volume_note or "the volume was not available to the report."))

        nz = inputs.volume.shape[0] if inputs.volume is not None else None
        if inputs.volume is None:
            self.add(CondPageBreak(0.1 * self.height))
            self.add(self.p("The cell in section", "h1"))
            self.note("Vertical sections not shown: "
                      + (inputs.volume_note or "the volume was not available to the report."))
        elif nz is not None and nz < describe.MIN_SECTION_SLICES:
            self.inputs.notes.append(f"The cell in section is left out: the volume has {nz} slice(s), too few "
                                     "to show anything in a vertical section.")
        else:
            self.add(CondPageBreak(0.45 * self.height))
            self.add(self.p("The cell in section", "h1"))
            height_mm = nz * spacing[0] / 1000.0 if spacing else 0.0
            shape = inputs.volume.shape
            width_mm = max(shape[1] * spacing[1], shape[2] * spacing[2]) / 1000.0 if spacing else 0.0
            factor = describe.section_exaggeration(height_mm, width_mm)
            stretch = (f" The height is drawn ×{factor:g} (the volume is {describe.number(height_mm, 'mm')} mm tall "
                       f"and {describe.number(width_mm, 'mm')} mm wide); its ticks are true millimetres."
                       if factor != 1 else "")
            self.figure(None, lambda: fig.section_figure(inputs.volume, inputs.axis_center_yx_px, findings),
                        "Vertical sections through the cell axis (dotted line). Boxes: the findings, projected onto "
                        "each plane." + stretch, max_height=0.55 * self.height)

        self.add(CondPageBreak(0.5 * self.height))
        self.add(self.p("Cathode sheet thickness", "h1"))
        summary = inputs.thickness_summary()
        if summary is None:
            self.note("Not shown: " + (inputs.thickness_note or "the inspection gave no thickness map or values."))
            return
        review, fail = fig._limits_pct(self.result)
        limits = (f" The colour bar marks the recipe's review (±{describe.number(review, '%')} %) and fail "
                  f"(±{describe.number(fail, '%')} %) deviations." if review is not None and fail is not None else "")
        self.figure(
            None, lambda: fig.thickness_map_figure(summary, self.result),
            "The cathode sheet (coating + Al foil + coating) unrolled: arc length along the sheet from its inner end "
            "(the long sheet cut into strips), against height z. Colour: thickness against the cell median "
            f"({describe.number(summary.median_um, 'µm')} µm), blue thinner, red thicker.{limits} Boxes: the findings "
            "(colour = severity), named above. Hatched: the cell's anatomy (tab window, the cathode's ends, "
            "one-sided stretches, coating-edge bands): not measured, not defects. Grey: not measured. Thin white "
            "lines: where each winding starts.")
        self.figure(None, lambda: fig.thickness_histogram_figure(summary, self.result),
                    "Every measured thickness sample. Dashed and dash-dotted lines: the recipe's review and fail "
                    "deviations either side of the cell median; the statistics are the result's.")

    # the cell's record ---------------------------------------------------------------
    def generic_section(self, title: str, items: Sequence[Mapping[str, Any]], empty: str) -> None:
        from reportlab.platypus import KeepTogether

        self.add(self.p(_t(title), "h2"))
        if not items:
            self.note(empty)
            return
        for n, item in enumerate(items, start=1):
            parts: list[Any] = [self.p(f"<b>{_t(item.get('title') or f'{title} {n}')}</b>", "base")]
            rows = [[self.p("Field", "head"), self.p("Value", "head")]]
            for key, value in item.items():
                if key in ("title", "figure_png", "caption") or isinstance(value, (bytes, bytearray)):
                    continue
                if isinstance(value, (dict, list, tuple)):
                    from core.store.audit import canonical_json

                    value = canonical_json(value)
                    value = value if len(value) <= 300 else value[:297] + "…"
                if key == "roi_request":
                    value = f"ROI request #{value} (see the plans above)"
                rows.append([self.p(_t(describe.metric_label(str(key))[0]), "cell"),
                             self.p(_t(fmt(value) if isinstance(value, float) else value), "small")])
            parts.append(_table(rows, [0.3 * self.width, 0.7 * self.width]))
            self.add(KeepTogether(parts))
            if item.get("figure_png"):
                self.figure(None, lambda item=item: bytes(item["figure_png"]), _t(item.get("caption") or ""))

    def roi_table(self) -> None:
        plans = list(self.inputs.roi_plans or [])
        self.add(self.p(f"ROI local-tomography plans ({len(plans)})", "h2"))
        if not plans:
            self.note("No ROI scan is planned for this cell (plan them with `cellqc roi plan "
                      f"{self.inputs.inspection_id or 'INSPECTION_ID'}`).")
            return
        structured = [p for p in plans if isinstance(p.get("plan"), Mapping) or "fov_mm" in p]
        others = [p for p in plans if p not in structured]
        if structured:
            rows = [[self.p(h, "head") for h in ("ROI", "State", "Findings", "Where (centre)", "Field of view",
                                                 "Voxel", "Scan")]]
            for row in describe.roi_plan_rows(structured, self.result):
                rows.append([self.p(f"<b>#{_t(row['id'])}</b>", "cell"), self.p(_t(row["status"]), "cell"),
                             self.p(_t(row["findings"]), "cell"), self.p(_t(row["where"]), "small"),
                             self.p(_t(row["fov"]), "small"), self.p(_t(row["voxel"]), "small"),
                             self.p(_t(row["scan"]), "small")])
            w = self.width
            self.add(_table(rows, [0.07 * w, 0.1 * w, 0.12 * w, 0.23 * w, 0.15 * w, 0.09 * w, 0.24 * w]))
        if others:
            self.generic_section("Other plans", others, "")

    def later_sections(self) -> None:
        from reportlab.platypus import CondPageBreak

        inputs = self.inputs
        self.gap(6)
        self.add(CondPageBreak(0.3 * self.height))
        self.add(self.p("The cell's record: ROI scans and synchrotron follow-up", "h1"))
        if not inputs.roi_plans and not inputs.followups:
            self.note("None yet for this cell: no ROI scan planned, no follow-up result imported.")
        else:
            self.roi_table()
            self.gap(6)
            self.generic_section("Synchrotron follow-up", inputs.followups,
                                 "No follow-up result has been imported for this cell.")
        if inputs.notes:
            self.gap(6)
            self.add(self.p("Notes", "h2"))
            for text in inputs.notes:
                self.note(text)
