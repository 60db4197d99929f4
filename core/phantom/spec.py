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
}


@dataclass
class CellSpec:
    """Construction of a wound cell.

    Attributes
    ----------
    kind : {"18650", "21700"}
        Sets the can radius and wall when those are left as ``None``.
    voxel_size_um : float
        Isotropic voxel size of the rendered volume (5–25 µm is realistic).
    n_slices : int
        Number of axial slices.
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
    n_slices: int = 8
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

    def __post_init__(self) -> None:
        defaults = {"18650": (9200.0, 250.0), "21700": (10500.0, 300.0)}
        if self.kind not in defaults:
            raise ValueError(f"unknown cell kind {self.kind!r}; use 18650 or 21700")
        outer, wall = defaults[self.kind]
        if self.can_outer_radius_um is None:
            self.can_outer_radius_um = outer
        if self.can_wall_um is None:
            self.can_wall_um = wall
        if not 1.0 <= self.voxel_size_um <= 100.0:
            raise ValueError(f"voxel size {self.voxel_size_um} µm is outside 1–100 µm")
        if self.n_slices < 1:
            raise ValueError("n_slices must be ≥ 1")

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
