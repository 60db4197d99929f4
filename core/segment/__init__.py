"""Learned layer and void segmentation (ONNX Runtime), an option beside the classic detectors.

``cellqc inspect --segmenter onnx`` runs the model-based variants in :data:`MODEL_DETECTORS`
instead of the classic detectors of the same name (today: ``delamination``); every other
detector is the classic one. The model, its checksum and its card are in ``models/``
(``layerseg.onnx``, ``layerseg.json``, ``layerseg_card.md``).
"""

from __future__ import annotations

from collections.abc import Callable

SEGMENTERS = ("classic", "onnx")
DEFAULT_SEGMENTER = "classic"


def _model_detectors() -> dict[str, Callable]:
    from core.segment import voids

    return {"delamination": voids.detect}


def detector_for(name: str, segmenter: str = DEFAULT_SEGMENTER) -> Callable:
    """The detector function to run for ``name`` under the segmenter choice."""
    from core.detectors import DETECTORS

    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; use one of {', '.join(SEGMENTERS)}")
    if segmenter == "onnx":
        model = _model_detectors().get(name)
        if model is not None:
            return model
    return DETECTORS[name]


__all__ = ["DEFAULT_SEGMENTER", "SEGMENTERS", "detector_for"]
