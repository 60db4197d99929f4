"""Parameters of a synthetic cell: its construction, its defects and the imaging artifacts.

All lengths are in µm and angles in degrees; slice positions (``z``) are slice indices of the
generated volume. Angles follow the convention used everywhere in cellqc:
``angle = atan2(y - cy, x - cx)`` in image index coordinates (x = column, y = row), in
[0, 360). A defect's ``winding`` is the winding index counted from the mandrel outwards along
the ray at the defect's own angle; the defect stays on that physical layer over its whole
extent, also where it crosses the spiral's start angle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CellKind = Literal["18650", "21700"]
Region = Literal["middle", "top", "bottom", "full"]
REGIONS = ("middle", "top", "bottom", "full")

# Relative linear attenuation of the materials (arbitrary units, cathode coating = 1).
# Ordering follows lab CT at ~100 kV: steel and Cu brightest, NMC bright, Al and graphite
# faint, separator/electrolyte and gas dark.
MATERIAL_MU: dict[str, float] = {
    "air": 0.0,
    "gas": 0.02,
    "void": 0.05,
    "electrolyte": 0.12,
    "separator": 0.12,
    "anode": 0.30,
    "al": 0.45,
    "cathode": 1.0,
    "cu": 3.2,
    "steel": 2.4,
    "tab": 1.6,
    "particle": 4.5,
    # Anatomy of a real cell: the positive tab (Al, faint like the foil), the negative tab
    # (Ni, bright like Cu), polymer parts (end tape, gasket, insulator discs) and the Al
    # vent plate of the cap assembly.
    "tab_al": 0.45,
    "tab_ni": 3.1,
    "polymer": 0.15,
    "al_part": 0.45,
}


@dataclass
class Anatomy:
    """What every healthy wound cell has, by design (never a defect): sizes in µm or turns.

    Positions along the wound strip are *strip positions* ``s`` in turns: the layer of
    winding ``k`` (counted along a ray from the mandrel, see :class:`CellSpec`) at spiral
    angle ``psi`` lies at ``s = k + psi / 2π`` (``psi`` = 0 at ``spiral_start_deg``). The
    separators start at ``s = 0`` around the mandrel hole. The layer stack keeps its pitch
    where an electrode has ended: the missing layers are electrolyte inside the roll (gas
    beyond the roll's ends).

    Attributes
    ----------
    separator_inner_turns : float
        Separator-only turns around the mandrel: the anode starts at this strip position.
    cathode_start_lag_turns : float
        The cathode starts this far (turns) after the anode.
    cathode_end_lead_turns : float
        The cathode ends this far before the anode.
    separator_outer_turns : float
        Separator-only turns after the anode's end.
    outer_slack_turns : float
        The separators end this many turns before the last winding slot ends (sets the
        angle of the outer end; the slots are ``CellSpec.windings``).
    end_tape_turns, end_tape_um : float
        End tape (polymer) on the last separator wrap, over its last ``end_tape_turns``
        (0: none), ``end_tape_um`` thick.
    anode_inner_single_turns : float
        The anode's inner coating (facing the axis) is left off over its first turns.
    cathode_outer_single_turns : float
        The cathode's outer coating (facing the can) is left off over its last turns.
    anode_outer_single_past_cathode : bool
        The anode's outer coating is left off beyond the cathode's end (it faces no cathode).
    tab_window_mm : float
        Uncoated tab window of the cathode (both coatings off) in mm of strip; 0: none (and
        no positive tab).
    tab_window_position : float
        Centre of the window as a fraction of the cathode's length (0.5: a mid-tab cell).
    positive_tab_width_mm, positive_tab_um : float
        The Al tab strip in the window: width along the strip, thickness (centred on the
        foil; where thicker than the sheet it takes the place of its neighbours).
    positive_tab_offset_mm : float
        Tab centre relative to the window centre, along the strip.
    negative_tab : {"inner", "outer", "none"}
        Ni tab on the anode's Cu at its inner end (on the face left uncoated by
        ``anode_inner_single_turns``) or outer end (on the outer face beyond the cathode's
        end; needs ``anode_outer_single_past_cathode``).
    negative_tab_width_mm, negative_tab_um : float
        Width along the strip and thickness of the Ni tab.
    negative_tab_from_end_mm : float
        Gap between the anode's end and the tab's near edge, along the strip.
    tab_rise_um : float
        Straight part of each tab beyond the separator's edge before it bends over towards
        the cap (positive tab, top) or the can bottom (negative tab, bottom).
    wobble_um : float
        Innermost-turn irregularity: the layers near the mandrel are pushed inwards (into
        the hole) by up to this much, ``wobble_um · g(psi) · w(s)`` with ``g`` in [0, 1]
        from ``wobble_harmonics`` and ``w`` a raised cosine falling from 1 at ``s = 0`` to 0
        at ``s = wobble_fade_turns``.
    wobble_fade_turns : float
        Strip position where the wobble has faded out.
    wobble_harmonics : tuple of (order, relative amplitude, phase_deg)
        Shape of ``g`` around the turn (normalised to [0, 1]).
    overhang_top_um, overhang_top_amplitude_um, overhang_top_angle_deg : float or None
        Anode overhang over the cathode at the top end, ``mean + amplitude · cos(angle -
        angle_deg)`` µm (``None``: the ``CellSpec.anode_overhang_*`` fields).
    overhang_bottom_um, overhang_bottom_amplitude_um, overhang_bottom_angle_deg : float
        The same at the bottom end.
    separator_beyond_anode_top_um, separator_beyond_anode_bottom_um : float
        How far the separators reach beyond the anode's edge at each end.
    groove_depth_um, groove_height_um : float
        The bead (groove) pressed into the can below the cap: the can's radius is smaller
        by ``groove_depth_um`` at its centre (raised-cosine profile of full height
        ``groove_height_um``).
    groove_gap_um : float
        From the groove's lower end down to the separators' top edge.
    crimp_inward_um : float
        The can's rim is curled in over the cap by this much (from the can's outer face).
    cap_um : float
        Sheet thickness of the cap (terminal disc and flange) and of the vent plate.
    flange_drop_um : float
        The cap's flange lies this far below the terminal's top face.
    gasket_um : float
        Polymer gasket between the crimped rim and the flange.
    can_bottom_um : float
        Thickness of the can's bottom disc.
    bottom_gap_um : float
        From the separators' bottom edge to the can bottom's inner face.
    insulator_um : float
        Polymer insulator discs above and below the roll (0: none).
    """

    separator_inner_turns: float = 1.0
    cathode_start_lag_turns: float = 0.3
    cathode_end_lead_turns: float = 0.25
    separator_outer_turns: float = 1.0
    outer_slack_turns: float = 0.4
    end_tape_turns: float = 0.3
    end_tape_um: float = 40.0
    anode_inner_single_turns: float = 0.7
    cathode_outer_single_turns: float = 0.6
    anode_outer_single_past_cathode: bool = True
    tab_window_mm: float = 12.0
    tab_window_position: float = 0.5
    positive_tab_width_mm: float = 4.0
    positive_tab_um: float = 120.0
    positive_tab_offset_mm: float = 0.0
    negative_tab: Literal["inner", "outer", "none"] = "outer"
    negative_tab_width_mm: float = 4.0
    negative_tab_um: float = 90.0
    negative_tab_from_end_mm: float = 1.0
    tab_rise_um: float = 800.0
    wobble_um: float = 120.0
    wobble_fade_turns: float = 2.5
    wobble_harmonics: tuple[tuple[int, float, float], ...] = ((2, 1.0, 0.0), (3, 0.7, 50.0), (5, 0.4, 120.0))
    overhang_top_um: float | None = None
    overhang_top_amplitude_um: float | None = None
    overhang_top_angle_deg: float | None = None
    overhang_bottom_um: float = 600.0
    overhang_bottom_amplitude_um: float = 150.0
    overhang_bottom_angle_deg: float = 90.0
    separator_beyond_anode_top_um: float = 500.0
    separator_beyond_anode_bottom_um: float = 500.0
    groove_depth_um: float = 1000.0
    groove_height_um: float = 1200.0
    groove_gap_um: float = 600.0
    crimp_inward_um: float = 1500.0
    cap_um: float = 350.0
    flange_drop_um: float = 1350.0
    gasket_um: float = 900.0
    can_bottom_um: float = 400.0
    bottom_gap_um: float = 700.0
    insulator_um: float = 200.0

    def __post_init__(self) -> None:
        self.wobble_harmonics = tuple(tuple(h) for h in self.wobble_harmonics)  # type: ignore[assignment]
        if self.negative_tab not in ("inner", "outer", "none"):
            raise ValueError(f"negative_tab must be inner, outer or none, got {self.negative_tab!r}")
        turns = ("separator_inner_turns", "cathode_start_lag_turns", "cathode_end_lead_turns",
                 "separator_outer_turns", "outer_slack_turns", "end_tape_turns",
                 "anode_inner_single_turns", "cathode_outer_single_turns", "wobble_fade_turns")
        for name in turns:
            if not 0.0 <= getattr(self, name) <= 3.0:
                raise ValueError(f"anatomy {name} = {getattr(self, name)} turns is outside 0–3")
        if self.end_tape_turns > 1.0:
            raise ValueError("anatomy end_tape_turns must be ≤ 1 turn")
        if self.wobble_fade_turns < 1.0 and self.wobble_um > 0:
            raise ValueError("anatomy wobble_fade_turns must be ≥ 1 turn")
        if not 0.0 < self.tab_window_position < 1.0:
            raise ValueError("anatomy tab_window_position must be in (0, 1)")
        if self.negative_tab == "outer" and not self.anode_outer_single_past_cathode:
            raise ValueError("an outer negative tab sits on the anode's uncoated outer face: "
                             "set anode_outer_single_past_cathode")
        sizes = ("end_tape_um", "tab_window_mm", "positive_tab_width_mm", "positive_tab_um",
                 "negative_tab_width_mm", "negative_tab_um", "negative_tab_from_end_mm", "tab_rise_um",
                 "wobble_um", "overhang_bottom_um", "separator_beyond_anode_top_um",
                 "separator_beyond_anode_bottom_um", "groove_depth_um", "groove_height_um",
                 "groove_gap_um", "crimp_inward_um", "cap_um", "flange_drop_um", "gasket_um",
                 "can_bottom_um", "bottom_gap_um", "insulator_um")
        for name in sizes:
            if not 0.0 <= getattr(self, name) < 1e5:
                raise ValueError(f"anatomy {name} = {getattr(self, name)} must be ≥ 0")


@dataclass
class CellSpec:
    """Construction of a wound cell.

    Attributes
    ----------
    kind : {"18650", "21700"}
        Sets the can radius and wall when those are left as ``None``.
    voxel_size_um : float
        In-plane voxel size of the rendered volume (5–25 µm is realistic).
    slice_spacing_um : float or None
        Distance between slices (µm); ``None``: ``voxel_size_um`` (isotropic voxels).
    n_slices : int or None
        Number of axial slices; ``None``: 8 for the middle of the roll, else what the
        ``region`` needs (see :func:`core.phantom.anatomy.cell_layout`).
    anatomy : Anatomy, bool or None
        The anatomy of a real wound cell (electrode ends, single-sided stretches, tabs, the
        innermost turn, roll ends, cap, groove and can bottom). ``True`` (default): the
        defaults of :class:`Anatomy`; ``False``/``None``: the idealised roll (every layer
        in every winding, no tabs) — then ``region`` must be "middle".
    region : {"middle", "top", "bottom", "full"}
        Which part of the cell the volume shows, along the axis: the middle of the roll;
        the top (above the cap down into the roll: crimp, cap, groove, headspace, tab,
        the roll's top end); the bottom (the roll's bottom end, the negative tab, the can's
        bottom disc); or the cell's full height. Slice 0 is the topmost.
    height_um : float or None
        Height of the can; ``None``: 65 mm (18650) or 70 mm (21700).
    slab_top_um : float or None
        Where slice 0 starts: µm along the axis from the terminal's top face (the cell's top),
        overriding the region's placement (e.g. a few slices around a roll end at fine
        voxels); ``None``: from the region.
    anode_coating_um, cu_foil_um, separator_um, cathode_coating_um, al_foil_um : float
        Nominal layer stack of one winding (inside out: anode | Cu | anode | separator |
        cathode | Al | cathode | separator).
    mandrel_radius_um : float
        Radius where the innermost winding starts (the mandrel hole).
    can_outer_radius_um, can_wall_um : float or None
        Steel can; ``None`` takes the kind's default.
    coating_jitter : float
        Relative standard deviation of each winding's coating thicknesses (the separator
        gives way so that the pitch stays constant).
    ovality : float
        Roll ovality e: the roll's iso-lines are ellipses with semi-axes r(1+e), r(1-e).
    ovality_angle_deg : float
        Direction of the long axis.
    spiral_start_deg : float
        Angle at which the innermost winding starts.
    center_offset_um : (float, float)
        Offset (y, x) of the cell axis from the image centre (the rotation axis).
    axis_drift_um_per_slice : (float, float)
        Lateral drift (y, x) of the cell axis per slice (a tilted cell).
    headspace_slices : int
        The first slices show the cap and headspace (can, tabs, no jelly roll).
    image_size_px : int or None
        Square image size; ``None`` fits the can with a margin.
    roll_end_um : float or None
        Render the top end of the jelly roll: the anode sheet (anode coatings, Cu foil,
        separators) ends at this axial position (µm from the face of the first slice,
        ``z_index * voxel`` being a slice's upper face); above it only gas inside the can.
        ``None`` (default): the roll fills every slice below the headspace.
    anode_overhang_um : float
        With ``roll_end_um``: the cathode sheet (coatings + Al) stops this far below the
        anode's end (negative: the cathode sticks out beyond the anode).
    anode_overhang_amplitude_um, anode_overhang_angle_deg : float
        The overhang varies with the polar angle as
        ``anode_overhang_um + amplitude · cos(angle - angle_deg)``.
    can_dent_um, can_dent_angle_deg, can_dent_span_deg : float
        A dent pushing the can wall (outer and inner face) inwards by ``can_dent_um`` at
        ``can_dent_angle_deg``, a raised cosine of full width ``can_dent_span_deg``.
    """

    kind: CellKind = "18650"
    voxel_size_um: float = 20.0
    n_slices: int | None = None
    anode_coating_um: float = 70.0
    cu_foil_um: float = 10.0
    separator_um: float = 20.0
    cathode_coating_um: float = 60.0
    al_foil_um: float = 15.0
    mandrel_radius_um: float = 2000.0
    can_outer_radius_um: float | None = None
    can_wall_um: float | None = None
    roll_can_gap_um: float = 120.0
    coating_jitter: float = 0.02
    ovality: float = 0.0
    ovality_angle_deg: float = 0.0
    spiral_start_deg: float = 0.0
    center_offset_um: tuple[float, float] = (0.0, 0.0)
    axis_drift_um_per_slice: tuple[float, float] = (0.0, 0.0)
    headspace_slices: int = 0
    image_size_px: int | None = None
    roll_end_um: float | None = None
    anode_overhang_um: float = 1000.0
    anode_overhang_amplitude_um: float = 0.0
    anode_overhang_angle_deg: float = 0.0
    can_dent_um: float = 0.0
    can_dent_angle_deg: float = 0.0
    can_dent_span_deg: float = 30.0
    slice_spacing_um: float | None = None
    anatomy: Anatomy | bool | None = True
    region: Region = "middle"
    height_um: float | None = None
    slab_top_um: float | None = None

    def __post_init__(self) -> None:
        defaults = {"18650": (9200.0, 250.0, 65000.0), "21700": (10500.0, 300.0, 70000.0)}
        if self.kind not in defaults:
            raise ValueError(f"unknown cell kind {self.kind!r}; use 18650 or 21700")
        outer, wall, height = defaults[self.kind]
        if self.can_outer_radius_um is None:
            self.can_outer_radius_um = outer
        if self.can_wall_um is None:
            self.can_wall_um = wall
        if self.height_um is None:
            self.height_um = height
        if not 1.0 <= self.voxel_size_um <= 100.0:
            raise ValueError(f"voxel size {self.voxel_size_um} µm is outside 1–100 µm")
        if self.slice_spacing_um is None:
            self.slice_spacing_um = float(self.voxel_size_um)
        if not 1.0 <= self.slice_spacing_um <= 500.0:
            raise ValueError(f"slice spacing {self.slice_spacing_um} µm is outside 1–500 µm")
        if self.anatomy is True:
            self.anatomy = Anatomy()
        elif self.anatomy is False:
            self.anatomy = None
        elif isinstance(self.anatomy, dict):
            self.anatomy = Anatomy(**self.anatomy)
        elif self.anatomy is not None and not isinstance(self.anatomy, Anatomy):
            raise ValueError(f"anatomy must be an Anatomy, True or False, got {self.anatomy!r}")
        if self.region not in REGIONS:
            raise ValueError(f"unknown region {self.region!r}; use one of {', '.join(REGIONS)}")
        if self.anatomy is None and (self.region != "middle" or self.slab_top_um is not None):
            raise ValueError(f"region {self.region!r} and slab_top_um need the anatomy (the idealised roll has no ends)")
        if self.n_slices is None:
            if self.region == "middle" or self.slab_top_um is not None:
                self.n_slices = 8
            else:
                from core.phantom.anatomy import region_slices

                self.n_slices = region_slices(self)
        if self.n_slices < 1:
            raise ValueError("n_slices must be ≥ 1")
        if self.headspace_slices and self.region != "middle":
            raise ValueError("headspace_slices is for the middle region (the top region has a real headspace)")
        if self.roll_end_um is not None and self.region != "middle":
            raise ValueError("roll_end_um is for the middle region (the top and bottom regions have real roll ends)")

    @property
    def spacing_um(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in µm."""
        v = float(self.voxel_size_um)
        return (float(self.slice_spacing_um), v, v)  # type: ignore[arg-type]

    @property
    def pitch_um(self) -> float:
        """Radial advance of the spiral per turn: the thickness of one winding's stack."""
        return (
            2 * self.anode_coating_um
            + self.cu_foil_um
            + 2 * self.separator_um
            + 2 * self.cathode_coating_um
            + self.al_foil_um
        )

    @property
    def cathode_sheet_um(self) -> float:
        """Nominal cathode sheet thickness: coating + Al foil + coating."""
        return 2 * self.cathode_coating_um + self.al_foil_um

    @property
    def can_inner_radius_um(self) -> float:
        return float(self.can_outer_radius_um) - float(self.can_wall_um)  # type: ignore[arg-type]

    @property
    def windings(self) -> int:
        """Number of complete turns that fit between the mandrel and the can."""
        room = self.can_inner_radius_um - self.roll_can_gap_um - self.mandrel_radius_um
        return int(room // self.pitch_um) - 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CollectorDeflection:
    """A Cu current collector pushed radially out of its winding's path.

    The displacement is ``amplitude_um * w(angle) * w(z)`` with raised-cosine windows whose
    full support is ``angular_span_deg`` and ``height_span_um`` (half maximum at half the
    span). Positive amplitude moves the foil outwards, towards the next Al foil.
    """

    winding: int
    angle_deg: float
    amplitude_um: float = 80.0
    angular_span_deg: float = 30.0
    z_center: float = 0.0
    height_span_um: float = 1000.0
    kind: str = field(default="collector_deflection", init=False)


@dataclass
class DelaminationVoid:
    """A lens-shaped gas/electrolyte void inside a cathode coating.

    It starts ``depth_um`` from the Al foil on the given ``side`` ("inner" = the coating
    facing the cell axis, "outer" = facing the can) and is ``thickness_um`` thick at its
    centre, ``arc_length_um`` long along the winding and ``height_um`` tall along the axis.
    """

    winding: int
    angle_deg: float
    thickness_um: float = 40.0
    arc_length_um: float = 600.0
    height_um: float = 300.0
    z_center: float = 0.0
    side: Literal["inner", "outer"] = "outer"
    depth_um: float = 10.0
    kind: str = field(default="delamination", init=False)


@dataclass
class CoatingPatch:
    """A rectangular patch of a cathode sheet whose thickness differs from nominal.

    ``sheet_change`` is the relative change of the whole sheet (coating + Al + coating)
    thickness, e.g. -0.25 for a sheet 25 % thinner; both coatings change equally.
    """

    winding: int
    angle_deg: float
    sheet_change: float = -0.25
    arc_length_um: float = 1500.0
    height_um: float = 600.0
    z_center: float = 0.0
    kind: str = field(default="coating_patch", init=False)


@dataclass
class ForeignParticle:
    """A dense (metallic) sphere lodged in the roll."""

    radius_um: float
    angle_deg: float
    diameter_um: float = 80.0
    z_center: float = 0.0
    kind: str = field(default="foreign_particle", init=False)


Defect = CollectorDeflection | DelaminationVoid | CoatingPatch | ForeignParticle


@dataclass
class Artifacts:
    """Imaging conditions applied after rendering.

    Attributes
    ----------
    blur_sigma_px : float
        Gaussian point-spread function (voxels).
    noise_sigma : float
        Additive Gaussian noise, relative to the cathode coating's attenuation.
    ring_count : int
        Ring artifacts about the rotation axis (the image centre).
    ring_amplitude : float
        Typical ring amplitude relative to the cathode coating.
    cupping : float
        Beam-hardening cupping: the centre of the can is darker by this fraction.
    streaks_fbp : bool
        Project and reconstruct each slice with parallel-beam FBP (true streaks; slow).
    fbp_angles : int or None
        Number of projections for ``streaks_fbp``; ``None`` uses π/2 · width.
    """

    blur_sigma_px: float = 0.7
    noise_sigma: float = 0.08
    ring_count: int = 6
    ring_amplitude: float = 0.08
    cupping: float = 0.12
    streaks_fbp: bool = False
    fbp_angles: int | None = None

    @classmethod
    def clean(cls) -> Artifacts:
        """No blur, noise, rings or cupping: the ideal partial-volume render."""
        return cls(blur_sigma_px=0.0, noise_sigma=0.0, ring_count=0, cupping=0.0)
