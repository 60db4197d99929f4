"""Learned layer and void segmentation (ONNX Runtime), an option beside the classic detectors.

The segmenter choice picks, per detector, which function runs (:func:`detector_for`):

- ``classic`` (default): the classic detectors only; the model is never loaded.
- ``onnx``: the model-based variants in :func:`_model_detectors` instead of the classic
  detectors of the same name (today: ``delamination``, :mod:`core.segment.voids`).
- ``classic+onnx``: the classic detectors decide; those in :func:`_second_opinion_detectors`
  (today: ``delamination``, :mod:`core.segment.opinion`) add the model's second opinion to
  their findings and list the model's own finds as ``info`` (never changing the verdict).

Every other detector is the classic one. The model, its checksum and its card are in
``models/`` (``layerseg.onnx``, ``layerseg.json``, ``layerseg_card.md``).
"""

from __future__ import annotations

from collections.abc import Callable

SEGMENTERS = ("classic", "onnx", "classic+onnx")
DEFAULT_SEGMENTER = "classic"


def _model_detectors() -> dict[str, Callable]:
    from core.segment import voids

    return {"delamination": voids.detect}


def _second_opinion_detectors() -> dict[str, Callable]:
    from core.segment import opinion

    return {"delamination": opinion.detect}


def detector_for(name: str, segmenter: str = DEFAULT_SEGMENTER) -> Callable:
    """The detector function to run for ``name`` under the segmenter choice."""
    from core.detectors import DETECTORS

    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; use one of {', '.join(SEGMENTERS)}")
    variants = {"onnx": _model_detectors, "classic+onnx": _second_opinion_detectors}.get(segmenter)
    if variants is not None:
        model = variants().get(name)
        if model is not None:
            return model
    return DETECTORS[name]


__all__ = ["DEFAULT_SEGMENTER", "SEGMENTERS", "detector_for"]
