"""Reconstruction on the CPU: parallel-beam FBP, cone-beam FDK, centre of rotation, rings.

* :func:`fbp` — filtered backprojection (numpy, vectorised, threaded; tomopy's gridrec when
  asked and importable), with padding modes for local (ROI) tomography of truncated data.
* :func:`fdk` — Feldkamp–Davis–Kress for a circular cone-beam orbit on a flat detector.
* :func:`find_center` — centre of rotation (0°/180° registration, sinusoid fit, sharpness).
* :func:`remove_rings` — sinogram stripe filters (Vo et al. 2018 sorting; column means).
* :func:`forward_project` and :mod:`core.recon.phantoms` — simulation and analytic phantoms.
"""

from core.recon.center import find_center, opposite_pairs
from core.recon.fbp import default_angles, fbp, tomopy_available
from core.recon.fdk import fdk
from core.recon.filters import filter_projections, pad_projections, ramp_filter
from core.recon.project import forward_project
from core.recon.rings import radial_profile, remove_rings, ring_amplitude

__all__ = [
    "default_angles",
    "fbp",
    "fdk",
    "filter_projections",
    "find_center",
    "forward_project",
    "opposite_pairs",
    "pad_projections",
    "radial_profile",
    "ramp_filter",
    "remove_rings",
    "ring_amplitude",
    "tomopy_available",
]
