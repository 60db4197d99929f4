"""The slice viewer (pyqtgraph): axial slice and vertical section through the cell axis,
window/level, zoom and pan, a slice slider, overlays of findings and traced layers; and the
unrolled electrode map with its colour bar.

Slice switching stays instant on large volumes: slices are read one at a time from the
volume's (possibly lazy) array into a small LRU cache, the neighbours in the direction of
travel are prefetched in a background thread (:mod:`qc_app.gui.slices`, which has no Qt),
the display levels are fixed (no histogram pass per slice) and the layer overlays of each
slice are built once.

Coordinates on screen are millimetres (anisotropic voxels display at their true shape);
finding boxes and traced layers are converted from voxel indices (pixel centres at i + ½).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core import describe
from qc_app.gui import theme
from qc_app.gui.slices import SliceCache, read_section, robust_levels, section_is_cheap

pg.setConfigOptions(imageAxisOrder="row-major", background="#000000", foreground="#FFFFFF",
                    antialias=False)

#: A vertical section is drawn at least this tall relative to its width (height exaggerated;
#: the rule is :func:`core.describe.section_exaggeration`, the report's too).
MIN_SECTION_ASPECT = describe.MIN_SECTION_ASPECT


def _colour(name: str, alpha: int = 255) -> QtGui.QColor:
    colour = QtGui.QColor(name)
    colour.setAlpha(alpha)
    return colour


def _pen(colour: str, width: float = 2.0, style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine) -> QtGui.QPen:
    pen = QtGui.QPen(QtGui.QColor(colour))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


def _rect_item(x0: float, y0: float, x1: float, y1: float, pen: QtGui.QPen) -> QtWidgets.QGraphicsRectItem:
    item = QtWidgets.QGraphicsRectItem(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
    item.setPen(pen)
    item.setBrush(QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
    item.setZValue(20)
    return item


def finding_slice(finding: dict[str, Any], nz: int) -> int:
    """The slice on which a finding is shown (:func:`core.describe.finding_slice`: its centroid's,
    rounded halves up, kept inside its bbox and the volume — the report's and the CLI's slice)."""
    z = describe.finding_slice(finding, nz)
    return 0 if z is None else z


class VolumeViewer(QtWidgets.QWidget):
    """Axial slice + vertical section through the axis, with overlays and a slice slider."""

    slice_changed = QtCore.Signal(int)
    finding_clicked = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.volume = None
        self.cache: SliceCache | None = None
        self.geometry = None
        self.findings: list[dict[str, Any]] = []
        self.selected_id: str | None = None
        self.center_yx: tuple[float, float] | None = None
        self.section_angle_deg = 0.0
        self.z = 0
        self.levels: tuple[float, float] = (0.0, 1.0)
        self._last_z = 0
        self._layer_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._slice_items: list[QtWidgets.QGraphicsItem] = []
        self._section_items: list[QtWidgets.QGraphicsItem] = []
        self._section_geom: dict[str, Any] = {}
        self._section_key: tuple | None = None
        self._section_gen = 0
        self._section_future: tuple | None = None
        self._section_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cellqc-section")
        self._section_timer = QtCore.QTimer(self)
        self._section_timer.setInterval(40)
        self._section_timer.timeout.connect(self._poll_section)
        self._build()

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.axial = pg.PlotWidget(name="axial")
        self.axial.setAspectLocked(True)
        self.axial.invertY(True)
        self.axial.setLabel("bottom", "x (mm)")
        self.axial.setLabel("left", "y (mm)")
        for side in ("left", "bottom"):
            self.axial.getAxis(side).enableAutoSIPrefix(False)
        self.axial.setMenuEnabled(False)
        self.axial.setTitle("Axial slice", color="#FFFFFF", size="12pt")
        self.axial_img = pg.ImageItem()
        self.axial.addItem(self.axial_img)
        self.cu_item = pg.PlotDataItem(pen=pg.mkPen(_colour(theme.LAYER_CU, 210), width=1.2), connect="finite")
        self.sheet_item = pg.PlotDataItem(pen=pg.mkPen(_colour(theme.LAYER_SHEET, 170), width=1.0),
                                          connect="finite")
        self.section_line = pg.PlotDataItem(pen=pg.mkPen(theme.AXIS_LINE, width=2, style=QtCore.Qt.PenStyle.DashLine))
        for item in (self.cu_item, self.sheet_item, self.section_line):
            item.setZValue(10)
            self.axial.addItem(item)
        self.axial.scene().sigMouseClicked.connect(self._axial_clicked)

        self.section = pg.PlotWidget(name="section")
        self.section.setAspectLocked(True)
        self.section.invertY(True)
        self.section.setLabel("bottom", "from the axis (mm)")
        self.section.setLabel("left", "z (mm)")
        self.section.setMenuEnabled(False)
        self.section.setTitle("Section through the axis", color="#FFFFFF", size="12pt")
        for side in ("left", "bottom"):
            self.section.getAxis(side).enableAutoSIPrefix(False)
        self.section_img = pg.ImageItem()
        self.section.addItem(self.section_img)
        self.z_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#FFD400", width=2))
        self.z_line.setZValue(10)
        self.section.addItem(self.z_line)
        self.section.scene().sigMouseClicked.connect(self._section_clicked)

        self.hist = pg.HistogramLUTWidget(image=self.axial_img)
        self.hist.setMinimumWidth(100)
        self.hist.setMaximumWidth(120)
        self.hist.item.sigLevelsChanged.connect(self._levels_changed)
        self.hist.setToolTip("Window / level: drag the yellow bounds (A: automatic window)")

        views = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        views.addWidget(self.axial)
        views.addWidget(self.section)
        views.setStretchFactor(0, 3)
        views.setStretchFactor(1, 2)
        views.setChildrenCollapsible(False)

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(views, 1)
        top.addWidget(self.hist)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("sliceSlider")
        self.slider.setRange(0, 0)
        self.slider.setPageStep(10)
        self.slider.valueChanged.connect(self.set_slice)
        self.slider.setToolTip("Slice (Page Up / Page Down, Home / End)")
        self.slice_label = QtWidgets.QLabel("no volume")
        self.slice_label.setMinimumWidth(210)
        self.angle_spin = QtWidgets.QSpinBox()
        self.angle_spin.setRange(0, 179)
        self.angle_spin.setSuffix(" °")
        self.angle_spin.setWrapping(True)
        self.angle_spin.setToolTip("Direction of the vertical section through the axis "
                                   "(double-click the axial slice to aim it)")
        self.angle_spin.valueChanged.connect(lambda v: self.set_section_angle(float(v)))
        self.layers_box = QtWidgets.QCheckBox("Layers")
        self.layers_box.setChecked(True)
        self.layers_box.setToolTip("Traced Cu collectors (orange) and cathode sheet edges (blue) — L")
        self.layers_box.toggled.connect(lambda _: self._update_overlays())
        self.findings_box = QtWidgets.QCheckBox("Findings")
        self.findings_box.setChecked(True)
        self.findings_box.setToolTip("Outlines of the findings — F")
        self.findings_box.toggled.connect(lambda _: self._update_overlays())
        self.auto_button = QtWidgets.QPushButton("Auto window")
        self.auto_button.setToolTip("Automatic window / level (A)")
        self.auto_button.clicked.connect(self.auto_window)
        self.reset_button = QtWidgets.QPushButton("Whole slice")
        self.reset_button.setToolTip("Zoom out to the whole slice (Ctrl+0); wheel zooms, drag pans")
        self.reset_button.clicked.connect(self.reset_view)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("Slice"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.slice_label)
        options = QtWidgets.QHBoxLayout()
        options.addWidget(QtWidgets.QLabel("Section direction"))
        options.addWidget(self.angle_spin)
        options.addSpacing(12)
        options.addWidget(self.layers_box)
        options.addWidget(self.findings_box)
        options.addStretch(1)
        options.addWidget(self.auto_button)
        options.addWidget(self.reset_button)

        content = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top, 1)
        layout.addLayout(controls)
        layout.addLayout(options)
        self.empty = QtWidgets.QLabel(
            "<div style='font-size:22px'><b>No volume open</b></div><br>"
            "<div style='font-size:16px'>Scan the cell's barcode, then open its volume (Ctrl+O),<br>"
            "drop the file on this window, or pick it from the Queue.</div>")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("viewerEmpty")
        self.stack = QtWidgets.QStackedLayout(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)

    # ------------------------------------------------------------------ data
    @property
    def nz(self) -> int:
        return self.volume.shape[0] if self.volume is not None else 0

    def _mm(self) -> tuple[float, float, float]:
        sz, sy, sx = self.volume.spacing_um
        return sz / 1000.0, sy / 1000.0, sx / 1000.0

    def set_volume(self, volume: Any, *, keep_view: bool = False) -> None:
        """Show a volume (a :class:`core.io.volume.Volume`); resets overlays."""
        if self.cache is not None:
            self.cache.close()
        self.volume = volume
        self.cache = SliceCache(volume) if volume is not None else None
        self.geometry = None
        self.findings = []
        self.selected_id = None
        self._layer_cache.clear()
        self._section_key = None
        self.stack.setCurrentIndex(0 if volume is None else 1)
        if volume is None:
            self.axial_img.clear()
            self.section_img.clear()
            self.slider.setRange(0, 0)
            self.slice_label.setText("no volume")
            self._clear_items()
            return
        nz, ny, nx = volume.shape
        self.center_yx = ((ny - 1) / 2.0, (nx - 1) / 2.0)
        self.levels = robust_levels(self.cache)
        self.z = -1
        self.slider.blockSignals(True)
        self.slider.setRange(0, nz - 1)
        self.slider.setValue(nz // 2)
        self.slider.blockSignals(False)
        self.set_slice(nz // 2)
        _, sy, sx = self._mm()
        self.axial_img.setRect(QtCore.QRectF(0, 0, nx * sx, ny * sy))
        self.hist.item.setLevels(*self.levels)
        self.hist.item.setHistogramRange(*self._hist_range())
        self._update_section(force=True)
        if not keep_view:
            self.reset_view()

    def _hist_range(self) -> tuple[float, float]:
        lo, hi = self.levels
        pad = 0.25 * (hi - lo)
        return lo - pad, hi + pad

    def set_inspection(self, geometry: Any, findings: list[dict[str, Any]],
                       axis_center_yx: tuple[float, float] | None) -> None:
        """Overlays of an inspection: its geometry (may be None: from the log), its findings."""
        self.geometry = geometry
        self.findings = list(findings or [])
        self.selected_id = None
        self._layer_cache.clear()
        if axis_center_yx is not None and all(v is not None and math.isfinite(v) for v in axis_center_yx):
            self.center_yx = (float(axis_center_yx[0]), float(axis_center_yx[1]))
        self._section_key = None
        self._update_section(force=True)
        self._update_overlays()

    def close_volume(self) -> None:
        self.set_volume(None)

    # ------------------------------------------------------------------ slices
    @QtCore.Slot(int)
    def set_slice(self, z: int) -> None:
        if self.volume is None:
            return
        z = int(min(max(int(z), 0), self.nz - 1))
        if z == self.z:
            return
        step = z - self._last_z if self.z >= 0 else 1
        self._last_z, self.z = z, z
        data = self.cache.get(z)
        self.axial_img.setImage(data, autoLevels=False, levels=self.levels)
        if self.slider.value() != z:
            self.slider.blockSignals(True)
            self.slider.setValue(z)
            self.slider.blockSignals(False)
        self.slice_label.setText(self.slice_text(z))
        self.z_line.setPos(self._section_y(z + 0.5))
        self._update_overlays()
        direction = 1 if step >= 0 else -1
        self.cache.prefetch([z + direction, z + 2 * direction, z - direction])
        self.slice_changed.emit(z)

    def slice_text(self, z: int | None = None) -> str:
        """``"slice 8 of 0–15 · z 0.17 mm"``: the one convention (slices from 0, z from the face of
        slice 0 to the slice's centre; :mod:`core.describe`)."""
        if self.volume is None:
            return "no volume"
        z = self.z if z is None else z
        z_mm = describe.slice_z_mm(z, self.volume.spacing_um[0])
        return f"slice {z} of 0–{self.nz - 1} · z {describe.number(z_mm, 'mm')} mm"

    def open_on(self, findings: list[dict[str, Any]], roll_slices: tuple[int, int] | None = None) -> dict | None:
        """Where an inspection opens: the worst finding (selected and zoomed), else the middle of
        the jelly roll's slices (not the middle of the volume: a cell's top scan is mostly
        headspace). Returns the finding opened on, or None."""
        worst = describe.worst_finding(findings)
        if worst is not None and worst.get("centroid_zyx_px") is not None:
            self.select_finding(dict(worst))
            return dict(worst)
        if roll_slices is not None and self.volume is not None:
            self.set_slice((int(roll_slices[0]) + int(roll_slices[1])) // 2)
        return None

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.z + delta)

    # ------------------------------------------------------------------ window / level
    @QtCore.Slot()
    def _levels_changed(self) -> None:
        lo, hi = self.hist.item.getLevels()
        self.levels = (float(lo), float(hi))
        self.section_img.setLevels(self.levels)

    @QtCore.Slot()
    def auto_window(self) -> None:
        if self.cache is None:
            return
        self.levels = robust_levels(self.cache)
        self.hist.item.setLevels(*self.levels)
        self.hist.item.setHistogramRange(*self._hist_range())
        self.axial_img.setLevels(self.levels)
        self.section_img.setLevels(self.levels)

    # ------------------------------------------------------------------ view
    @QtCore.Slot()
    def reset_view(self) -> None:
        if self.volume is None:
            return
        for view in (self.axial, self.section):
            box = view.getViewBox()
            box.enableAutoRange()
            box.updateAutoRange()  # now, not at the next paint: a finding chosen next zooms from here

    def zoom(self, factor: float) -> None:
        """Zoom the axial view about its centre (factor < 1 zooms in)."""
        self.axial.getViewBox().scaleBy((factor, factor))

    def axial_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The axial view's visible ((x0, x1), (y0, y1)) in mm."""
        (x0, x1), (y0, y1) = self.axial.getViewBox().viewRange()
        return (x0, x1), (y0, y1)

    # ------------------------------------------------------------------ layers
    def _layers(self, z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        if self.geometry is None or z >= len(getattr(self.geometry, "slices", [])):
            return None
        if z in self._layer_cache:
            return self._layer_cache[z]
        s = self.geometry.slices[z]
        if not s.is_roll or s.frame is None or s.t_rad.size == 0:
            self._layer_cache[z] = None
            return None
        px = float(self.geometry.pixel_um)
        _, sy, sx = self._mm()

        def trace(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            xs, ys = [], []
            for arr in arrays:
                for k in range(arr.shape[0]):
                    rr = np.asarray(arr[k], float) / px
                    if not np.isfinite(rr).any():
                        continue
                    y, x = s.frame.to_yx(s.t_rad, rr)
                    jump = np.r_[False, np.abs(np.diff(rr)) > 3]
                    y = np.where(jump, np.nan, y)
                    x = np.where(jump, np.nan, x)
                    xs += [x, [np.nan]]
                    ys += [y, [np.nan]]
            if not xs:
                return np.zeros(0), np.zeros(0)
            return (np.concatenate(xs) + 0.5) * sx, (np.concatenate(ys) + 0.5) * sy

        cu_x, cu_y = trace([s.cu_radius_um])
        sh_x, sh_y = trace([s.sheet_inner_um, s.sheet_outer_um])
        self._layer_cache[z] = (cu_x, cu_y, sh_x, sh_y)
        return self._layer_cache[z]

    # ------------------------------------------------------------------ overlays
    def _clear_items(self) -> None:
        for item in self._slice_items:
            self.axial.removeItem(item)
        self._slice_items = []

    def _finding_by_id(self, fid: str | None) -> dict[str, Any] | None:
        return next((f for f in self.findings if f.get("id") == fid), None)

    def _update_overlays(self) -> None:
        if self.volume is None:
            return
        layers = self._layers(self.z) if self.layers_box.isChecked() else None
        if layers is not None:
            self.cu_item.setData(layers[0], layers[1])
            self.sheet_item.setData(layers[2], layers[3])
        else:
            self.cu_item.setData([], [])
            self.sheet_item.setData([], [])
        self._clear_items()
        _, sy, sx = self._mm()
        if self.findings_box.isChecked():
            for f in self.findings:
                b = f.get("bbox_zyx_px")
                if not b or not (int(b[0]) <= self.z < max(int(b[3]), int(b[0]) + 1)):
                    continue
                selected = f.get("id") == self.selected_id
                colour = theme.SELECTED if selected else theme.SEVERITY_COLOURS.get(f.get("severity"), "#FFFFFF")
                margin = 2 if not selected else 4
                rect = _rect_item((b[2] - margin) * sx, (b[1] - margin) * sy, (b[5] + margin) * sx,
                                  (b[4] + margin) * sy, _pen(colour, 3.5 if selected else 2.0))
                rect.setZValue(25 if selected else 20)
                self.axial.addItem(rect, ignoreBounds=True)
                label = pg.TextItem(f.get("id", ""), color=colour, anchor=(0, 1),
                                    fill=pg.mkBrush(0, 0, 0, 180))
                font = QtGui.QFont("DejaVu Sans", 12 if selected else 10)
                font.setBold(True)
                label.setFont(font)
                label.setPos((b[2] - margin) * sx, (b[1] - margin) * sy)
                label.setZValue(26 if selected else 21)
                self.axial.addItem(label, ignoreBounds=True)
                self._slice_items += [rect, label]
        self._update_section_overlays()

    # ------------------------------------------------------------------ section
    def set_section_angle(self, angle_deg: float) -> None:
        angle = float(angle_deg) % 180.0
        if abs(angle - self.section_angle_deg) < 1e-6 and self._section_key is not None:
            return
        self.section_angle_deg = angle
        if int(round(angle)) % 180 != self.angle_spin.value():
            self.angle_spin.blockSignals(True)
            self.angle_spin.setValue(int(round(angle)) % 180)
            self.angle_spin.blockSignals(False)
        self._update_section()

    def _section_y(self, z_index: float) -> float:
        """The section view's y coordinate (mm, exaggerated) of slice position ``z_index``."""
        if self.volume is None:
            return 0.0
        return z_index * self._mm()[0] * self._section_geom.get("exaggeration", 1.0)

    def _section_samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        _, ny, nx = self.volume.shape
        cy, cx = self.center_yx
        a = math.radians(self.section_angle_deg)
        half = math.hypot(ny, nx)
        s = np.arange(-math.ceil(half), math.ceil(half) + 1, dtype=float)
        y = cy + s * math.sin(a)
        x = cx + s * math.cos(a)
        inside = (y >= -0.5) & (y <= ny - 0.5) & (x >= -0.5) & (x <= nx - 0.5)
        s, y, x = s[inside], y[inside], x[inside]
        _, sy, sx = self._mm()
        step_mm = math.hypot(math.sin(a) * sy, math.cos(a) * sx)
        yi = np.clip(np.round(y).astype(int), 0, ny - 1)
        xi = np.clip(np.round(x).astype(int), 0, nx - 1)
        return s, yi, xi, step_mm

    def _update_section(self, force: bool = False) -> None:
        if self.volume is None or self.center_yx is None:
            return
        key = (round(self.section_angle_deg, 3), round(self.center_yx[0], 2), round(self.center_yx[1], 2))
        if key == self._section_key and not force:
            return
        self._section_key = key
        s, yi, xi, step_mm = self._section_samples()
        nz, ny, nx = self.volume.shape
        sz, sy, sx = self._mm()
        width = max(s.size * step_mm, 1e-9)
        height = nz * sz
        # The report's rule and width (the slice's larger side), so both stretch alike.
        exaggeration = describe.section_exaggeration(height, max(ny * sy, nx * sx))
        s0_mm = (float(s[0]) - 0.5) * step_mm if s.size else 0.0
        self._section_geom = {"s0": float(s[0]) if s.size else 0.0, "step_mm": step_mm,
                              "exaggeration": exaggeration, "s": s,
                              "rect": QtCore.QRectF(s0_mm, 0, width, height * exaggeration)}
        axis = self.section.getAxis("left")
        axis.setScale(1.0 / exaggeration)
        self.section.setLabel("left", "z (mm)" if exaggeration == 1 else f"z (mm), drawn ×{exaggeration:g}")
        self.z_line.setPos(self._section_y(self.z + 0.5))
        # The section's trace on the axial slice.
        _, sy, sx = self._mm()
        if s.size:
            cy, cx = self.center_yx
            a = math.radians(self.section_angle_deg)
            ends = np.array([s[0], s[-1]])
            self.section_line.setData((cx + ends * math.cos(a) + 0.5) * sx, (cy + ends * math.sin(a) + 0.5) * sy)
        self._update_section_overlays()
        self._section_gen += 1
        if section_is_cheap(self.volume):
            self._show_section(read_section(self.volume, yi, xi))
        else:  # a large or lazy volume: read the section in the background, never in the UI thread
            self.section.setTitle("Section through the axis (reading…)", color="#FFD400", size="12pt")
            self._section_future = (self._section_gen, self.volume,
                                    self._section_pool.submit(read_section, self.volume, yi, xi))
            self._section_timer.start()

    @QtCore.Slot()
    def _poll_section(self) -> None:
        if self._section_future is None:
            self._section_timer.stop()
            return
        gen, volume, future = self._section_future
        if not future.done():
            return
        self._section_timer.stop()
        self._section_future = None
        if gen != self._section_gen or volume is not self.volume:
            return  # a newer section was asked for meanwhile
        try:
            data = future.result()
        except Exception as exc:  # noqa: BLE001 - shown in the view's title, never raised
            self.section.setTitle(f"Section: cannot read ({type(exc).__name__})", color="#FFB199", size="12pt")
            return
        self._show_section(data)

    def _show_section(self, data: np.ndarray) -> None:
        self.section.setTitle("Section through the axis", color="#FFFFFF", size="12pt")
        self.section_img.setImage(data, autoLevels=False, levels=self.levels)
        self.section_img.setRect(self._section_geom["rect"])  # after setImage: the rect scales the pixels
        self.section.getViewBox().enableAutoRange()

    @property
    def section_ready(self) -> bool:
        return self._section_future is None and self.section_img.image is not None

    def _to_section(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(along, across) the section line, in pixels, for pixel coordinates (y, x)."""
        cy, cx = self.center_yx
        a = math.radians(self.section_angle_deg)
        dy, dx = np.asarray(y, float) - cy, np.asarray(x, float) - cx
        return dy * math.sin(a) + dx * math.cos(a), -dy * math.cos(a) + dx * math.sin(a)

    def _update_section_overlays(self) -> None:
        for item in self._section_items:
            self.section.removeItem(item)
        self._section_items = []
        if self.volume is None or not self.findings_box.isChecked() or not self._section_geom:
            return
        step = self._section_geom["step_mm"]
        ex = self._section_geom["exaggeration"]
        sz = self._mm()[0]
        for f in self.findings:
            b = f.get("bbox_zyx_px")
            if not b:
                continue
            ys = np.array([b[1], b[1], b[4], b[4]], float) - 0.5
            xs = np.array([b[2], b[5], b[2], b[5]], float) - 0.5
            along, across = self._to_section(ys, xs)
            if across.min() > 1.5 or across.max() < -1.5:  # the section misses this finding
                continue
            selected = f.get("id") == self.selected_id
            colour = theme.SELECTED if selected else theme.SEVERITY_COLOURS.get(f.get("severity"), "#FFFFFF")
            pad = 2
            rect = _rect_item((along.min() - pad) * step, b[0] * sz * ex, (along.max() + pad) * step,
                              max(b[3], b[0] + 1) * sz * ex, _pen(colour, 3.5 if selected else 2.0))
            self.section.addItem(rect, ignoreBounds=True)
            self._section_items.append(rect)

    # ------------------------------------------------------------------ findings
    def select_finding(self, finding: dict[str, Any] | None, *, zoom: bool = True) -> None:
        """Move to a finding: its slice, a section through it, zoomed and outlined."""
        if finding is None or self.volume is None:
            self.selected_id = None
            self._update_overlays()
            return
        self.selected_id = finding.get("id")
        z = finding_slice(finding, self.nz)
        cz, cy, cx = (float(v) for v in finding["centroid_zyx_px"])
        if self.center_yx is not None and math.hypot(cy - self.center_yx[0], cx - self.center_yx[1]) > 1.0:
            angle = math.degrees(math.atan2(cy - self.center_yx[0], cx - self.center_yx[1]))
            self.set_section_angle(angle)
        if z != self.z:
            self.set_slice(z)
        else:
            self._update_overlays()
        if zoom:
            _, sy, sx = self._mm()
            b = finding.get("bbox_zyx_px") or [cz, cy, cx, cz + 1, cy + 1, cx + 1]
            half = max((b[4] - b[1]) * sy, (b[5] - b[2]) * sx, 1.0) * 1.5
            yc, xc = (cy + 0.5) * sy, (cx + 0.5) * sx
            self.axial.getViewBox().setRange(xRange=(xc - half, xc + half), yRange=(yc - half, yc + half),
                                             padding=0)

    # ------------------------------------------------------------------ mouse
    def _axial_clicked(self, event: Any) -> None:
        if self.volume is None:
            return
        pos = self.axial.getViewBox().mapSceneToView(event.scenePos())
        _, sy, sx = self._mm()
        y, x = pos.y() / sy - 0.5, pos.x() / sx - 0.5
        if event.double():
            if self.center_yx is not None:
                angle = math.degrees(math.atan2(y - self.center_yx[0], x - self.center_yx[1]))
                self.set_section_angle(angle)
            return
        for f in self.findings:
            b = f.get("bbox_zyx_px")
            if b and int(b[0]) <= self.z < max(int(b[3]), int(b[0]) + 1) and \
                    b[1] - 3 <= y <= b[4] + 3 and b[2] - 3 <= x <= b[5] + 3:
                self.finding_clicked.emit(f["id"])
                return

    def _section_clicked(self, event: Any) -> None:
        if self.volume is None or not self._section_geom:
            return
        pos = self.section.getViewBox().mapSceneToView(event.scenePos())
        z = pos.y() / (self._mm()[0] * self._section_geom["exaggeration"])
        if 0 <= z < self.nz:
            self.set_slice(int(z))

    def shutdown(self) -> None:
        self._section_timer.stop()
        self._section_pool.shutdown(wait=False, cancel_futures=True)
        if self.cache is not None:
            self.cache.close()


class MapView(QtWidgets.QWidget):
    """The unrolled electrode maps (arc length × height) with a colour bar, the findings and the
    cell's anatomy marked where they sit on the sheet (:func:`core.report.thickness.sheet_marks`,
    as the report draws them). Rows are slices: slice 0 at the top, each row from its slice's
    upper face to its lower face (heights in mm from slice 0's face)."""

    #: Deviation from the median shown at the ends of the colour bar for thickness maps.
    THICKNESS_SPAN = 0.3

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.maps: dict[str, Any] = {}
        self.current: str | None = None
        self.findings: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {}
        self.selected_id: str | None = None
        self.seam_deg: float | None = None
        self.direction = 1
        self.spacing_z_mm: float | None = None
        self.marks: list[Any] = []
        self._rows = (0.0, 0.01)
        self._winding_items: list[Any] = []
        self._marker_items: list[Any] = []
        self._limit_lines: list[Any] = []
        self._limits: list[float] = []
        self.plot = pg.PlotWidget(name="map")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "arc length along the cathode sheet from its inner end (mm)")
        self.plot.setLabel("left", "z (mm)")
        self.plot.invertY(True)  # like the section view: slice 0 at the top
        self.img = pg.ImageItem()
        self.plot.addItem(self.img)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.colour_bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("CET-D1"),
                                          interactive=True, width=28)
        self.colour_bar.setImageItem(self.img, insert_in=self.plot.getPlotItem())
        self.colour_bar.sigLevelsChanged.connect(lambda *_: self._place_limit_lines())
        self.z_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#FFD400", width=2, style=QtCore.Qt.PenStyle.DashLine))
        self.plot.addItem(self.z_line)
        self.z_line.setVisible(False)
        self.choice = QtWidgets.QComboBox()
        self.choice.currentIndexChanged.connect(self._choice_changed)
        self.caption = QtWidgets.QLabel("Run an inspection to see the unrolled electrode.")
        self.caption.setProperty("role", "hint")
        self.caption.setWordWrap(True)
        self.fit_button = QtWidgets.QPushButton("Whole map")
        self.fit_button.clicked.connect(lambda: self.plot.getViewBox().autoRange(padding=0.01))
        head = QtWidgets.QHBoxLayout()
        head.addWidget(QtWidgets.QLabel("Map"))
        head.addWidget(self.choice)
        head.addWidget(self.caption, 1)
        head.addWidget(self.fit_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.plot, 1)

    def set_maps(self, maps: dict[str, Any] | None, note: str | None = None,
                 spacing_z_um: float | None = None, findings: list[dict[str, Any]] | None = None,
                 seam_deg: float | None = None, direction: int = 1, result: dict[str, Any] | None = None) -> None:
        """Show the maps of an inspection (``Inspection.maps``); ``note`` when there are none.

        Findings with a winding are marked where they sit on the unrolled sheet (from their
        winding and polar angle, measured from the seam in the winding direction); with
        ``result``, the cell's anatomy too, and the recipe's limits on the colour bar.
        """
        self.spacing_z_mm = spacing_z_um / 1000.0 if spacing_z_um else None
        self.result = dict(result or {})
        self.findings = [f for f in (findings or []) if f.get("winding") is not None
                         and f.get("angle_deg") is not None]
        self.seam_deg, self.direction = seam_deg, direction
        self.selected_id = None
        self.maps = {k: m for k, m in (maps or {}).items() if m is not None and m.values.size}
        self.choice.blockSignals(True)
        self.choice.clear()
        order = sorted(self.maps, key=lambda k: (k != "cathode_thickness_um", k))
        for key in order:
            self.choice.addItem(f"{self.maps[key].name} ({self.maps[key].unit})", key)
        self.choice.blockSignals(False)
        if not self.maps:
            self.current = None
            self.img.clear()
            self.z_line.setVisible(False)
            self._clear(self._marker_items)
            self._clear(self._winding_items)
            self._clear(self._limit_lines, self.colour_bar)
            self.caption.setText(note or "No unrolled map: run an inspection to see the unrolled electrode.")
            return
        self.show_map(order[0])

    def set_summary(self, summary: Any, result: dict[str, Any]) -> None:
        """Show the thickness map kept in the log (:class:`core.report.thickness.ThicknessSummary`)."""
        from types import SimpleNamespace

        umap = SimpleNamespace(values=summary.values_um, arc_mm=summary.arc_mm, z_index=summary.z_index,
                               winding=summary.winding, name="cathode sheet thickness (kept in the log)", unit="µm",
                               extent_mm=(float(summary.arc_mm[0]), float(summary.arc_mm[-1]),
                                          float(summary.z_index[0]) * summary.spacing_z_um / 1000.0,
                                          float(summary.z_index[-1]) * summary.spacing_z_um / 1000.0))
        self.set_maps({"cathode_thickness_um": umap}, spacing_z_um=summary.spacing_z_um,
                      findings=result.get("findings", []), seam_deg=summary.seam_deg, direction=summary.direction,
                      result=result)

    def _choice_changed(self, index: int) -> None:
        key = self.choice.itemData(index)
        if key:
            self.show_map(key)

    def _clear(self, items: list[Any], owner: Any = None) -> None:
        for item in items:
            (owner or self.plot).removeItem(item)
        items.clear()

    def frame(self) -> Any:
        """Positions on the shown map (:class:`core.report.thickness.SheetFrame`)."""
        from core.report.thickness import SheetFrame

        umap = self.maps[self.current]
        dz_um = 1000.0 * (self.spacing_z_mm or self._rows[1])
        return SheetFrame.from_map(umap, dz_um, self.seam_deg, self.direction)

    def show_map(self, key: str) -> None:
        umap = self.maps[key]
        self.current = key
        values = np.asarray(umap.values, dtype=np.float32)
        finite = values[np.isfinite(values)]
        self._limits = []
        if key == "cathode_thickness_um" and finite.size:
            metrics = self.result.get("metrics") or {}
            med = float(metrics.get("cathode_sheet_thickness_median_um") or np.median(finite))
            lo, hi = med * (1 - self.THICKNESS_SPAN), med * (1 + self.THICKNESS_SPAN)
            cmap = pg.colormap.get("CET-D1")
            lim = (self.result.get("limits") or {}).get("cathode_thickness_max_deviation_pct") or {}
            levels = [(float(lim[k]), k) for k in ("review", "fail") if lim.get(k) is not None]
            for pct, _k in levels:
                self._limits += [med * (1 - pct / 100), med * (1 + pct / 100)]
            marks = "; ".join(f"{k} ±{describe.number(pct, '%')} %" for pct, k in levels)
            self.caption.setText(f"Cell median {describe.quantity(med, 'µm')}: blue thinner, red thicker (bar ends at "
                                 f"±{100 * self.THICKNESS_SPAN:.0f} %; lines: {marks or 'no limits'}). Boxes: findings; "
                                 f"hatched: anatomy (not defects); grey lines: winding starts.")
        elif finite.size:
            lo, hi = (float(v) for v in np.percentile(finite, [1, 99]))
            cmap = pg.colormap.get("viridis")
            self.caption.setText(f"{umap.name}: median {describe.quantity(float(np.median(finite)), umap.unit)}.")
        else:
            lo, hi, cmap = 0.0, 1.0, pg.colormap.get("viridis")
            self.caption.setText(f"{umap.name}: nothing measured.")
        if not hi > lo:
            hi = lo + 1.0
        self.img.setImage(values, autoLevels=False, levels=(lo, hi))
        self.colour_bar.setColorMap(cmap)
        self.colour_bar.setLevels((lo, hi))
        self.colour_bar.getAxis("left").setLabel(umap.unit)
        arc0, arc1 = float(umap.arc_mm[0]), float(umap.arc_mm[-1])
        n_rows = values.shape[0]
        z_index = np.asarray(umap.z_index)
        if self.spacing_z_mm:
            dz = self.spacing_z_mm
        elif z_index.size > 1:
            dz = (umap.extent_mm[3] - umap.extent_mm[2]) / max(int(z_index[-1] - z_index[0]), 1)
        else:
            dz = 0.01
        # Row i spans its slice's faces: from z_index·dz to (z_index + 1)·dz (mm from slice 0's face).
        top = float(z_index[0]) * dz if z_index.size else 0.0
        self._rows = (top, dz * (float(z_index[-1] - z_index[0] + 1) / n_rows if z_index.size > 1 else 1.0))
        darc = (arc1 - arc0) / max(values.shape[1] - 1, 1)
        self.img.setRect(QtCore.QRectF(arc0 - darc / 2, top, (arc1 - arc0) + darc, n_rows * self._rows[1]))
        self._clear(self._winding_items)
        if umap.winding.size:
            starts = umap.arc_mm[np.r_[np.nonzero(np.diff(umap.winding))[0] + 1]]
            for s in starts:
                line = pg.InfiniteLine(pos=float(s), angle=90, pen=pg.mkPen(150, 150, 150, 120, width=1))
                self.plot.addItem(line)
                self._winding_items.append(line)
        self._place_limit_lines()
        self._draw_markers()
        self.fit()

    def _place_limit_lines(self) -> None:
        """The recipe's review and fail deviations as lines across the colour bar."""
        self._clear(self._limit_lines, self.colour_bar)
        lo, hi = self.colour_bar.values
        if not self._limits or not hi > lo:
            return
        for value in self._limits:
            pos = 256.0 * (value - lo) / (hi - lo)
            if 0 <= pos <= 256:
                line = pg.InfiniteLine(pos=pos, angle=0, pen=pg.mkPen("#000000", width=2))
                self.colour_bar.addItem(line)
                self._limit_lines.append(line)

    def fit(self) -> None:
        """The whole map, with room above it for the finding tabs and their labels."""
        if not self.current or self.img.image is None:
            self.plot.getViewBox().enableAutoRange()
            return
        z0, dz = self._rows
        height = self.img.height() * dz
        vb = self.plot.getViewBox()
        vb.setYRange(z0 - (0.3 * height if self.findings else 0.0), z0 + height, padding=0.02)
        vb.enableAutoRange(axis="x")

    def finding_arc_mm(self, finding: dict[str, Any]) -> float | None:
        """Where a finding sits along the unrolled sheet (mm), from its winding and angle."""
        if not self.current or finding.get("winding") is None:
            return None
        return self.frame().arc_at(int(finding["winding"]), float(finding["angle_deg"]))

    def _draw_markers(self) -> None:
        self._clear(self._marker_items)
        if not self.current:
            return
        from core.report.thickness import sheet_marks

        z0 = self._rows[0]
        height = self.img.height() * self._rows[1] if self.img.image is not None else 0
        self.marks = sheet_marks(self.frame(), self.result, self.findings)
        font = QtGui.QFont("DejaVu Sans", 10)
        font.setBold(True)
        for m in self.marks:
            if m.kind in ("anatomy", "band"):
                rect = _rect_item(m.arc0, m.z0, max(m.arc1, m.arc0 + 0.2), m.z1, _pen("#BDBDBD", 1.0,
                                                                                     QtCore.Qt.PenStyle.DashLine))
                rect.setBrush(QtGui.QBrush(QtGui.QColor(120, 120, 120, 110), QtCore.Qt.BrushStyle.BDiagPattern))
                items = [rect]
                if m.kind == "anatomy":
                    label = pg.TextItem(m.label, color="#DDDDDD", anchor=(0.5, 0))
                    label.setPos(0.5 * (m.arc0 + m.arc1), z0 + height)
                    items.append(label)
            elif m.kind == "end":
                items = [pg.InfiniteLine(pos=m.arc0, angle=90, pen=pg.mkPen("#DDDDDD", width=1,
                                                                            style=QtCore.Qt.PenStyle.DashLine))]
            else:
                selected = m.finding_id == self.selected_id
                colour = theme.SELECTED if selected else theme.SEVERITY_COLOURS.get(m.severity, "#FFFFFF")
                items = [_rect_item(m.arc0, m.z0, m.arc1, m.z1, _pen(colour, 3.0 if selected else 1.5))]
            for item in items:
                self.plot.addItem(item, ignoreBounds=True)
            self._marker_items += items
        # One tab and one label above the map per place (findings of one place share it).
        tick = 0.08 * height
        places: list[list[Any]] = []
        for m in sorted((m for m in self.marks if m.kind == "finding"), key=lambda m: m.arc0):
            if places and m.arc0 <= places[-1][-1].arc1 + 0.5:
                places[-1].append(m)
            else:
                places.append([m])
        for group in places:
            selected = any(m.finding_id == self.selected_id for m in group)
            worst = min(group, key=lambda m: describe.SEVERITY_RANK.get(m.severity, 3))
            colour = theme.SELECTED if selected else theme.SEVERITY_COLOURS.get(worst.severity, "#FFFFFF")
            a0, a1 = min(m.arc0 for m in group), max(m.arc1 for m in group)
            tab = _rect_item(a0, z0 - tick, a1, z0, _pen(colour, 2.0))
            tab.setBrush(QtGui.QBrush(QtGui.QColor(colour)))
            label = pg.TextItem(" · ".join(m.label for m in group), color=colour, anchor=(0.5, 1),
                                fill=pg.mkBrush(0, 0, 0, 180))
            label.setFont(font)
            label.setPos(0.5 * (a0 + a1), z0 - tick)
            for item in (tab, label):
                self.plot.addItem(item, ignoreBounds=True)
                self._marker_items.append(item)

    def select_finding(self, finding: dict[str, Any] | None) -> None:
        """Outline a finding on the map (white)."""
        self.selected_id = finding.get("id") if finding else None
        self._draw_markers()
        arc = self.finding_arc_mm(finding) if finding and any(f.get("id") == finding.get("id")
                                                               for f in self.findings) else None
        if arc is not None:
            half = max(float(finding.get("arc_length_um") or 0.0) / 2000.0, 0.5)
            span = max(10.0, 6 * half)
            self.plot.getViewBox().setXRange(arc - span, arc + span, padding=0)

    def set_slice_height(self, z_index: int, spacing_z_um: float) -> None:
        """Mark the height of the viewer's slice on the map (its centre, mm from slice 0's face)."""
        if not self.maps:
            return
        self.z_line.setVisible(True)
        self.z_line.setPos(describe.slice_z_mm(z_index, spacing_z_um))
