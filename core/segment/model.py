"""The shipped ONNX layer/void segmenter, run with ONNX Runtime on bounded CPU threads.

The model and its metadata live in ``models/`` (``layerseg.onnx``, ``layerseg.json``); the
file's SHA-256 is checked against the metadata before the session is created, and nothing is
ever downloaded. Inputs are polar unwraps (angle × radius, ``core.segment.polar``) of any size:
they are cut into tiles with an overlap (periodic in angle, mirrored in radius) and only each
tile's centre is kept, so tile borders never show.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.fileio import sha256_file

#: The shipped models: the ``models`` package's folder, wherever it is installed (a checkout,
#: site-packages, the desktop bundle's ``_internal``), found through importlib.resources.
MODELS_DIR = Path(str(resources.files("models")))
DEFAULT_MODEL = "layerseg"
THREADS_ENV = "CELLQC_SEGMENT_THREADS"


class ModelError(InputError):
    """The model file is missing, altered (checksum) or unreadable."""


def default_threads() -> int:
    """Intra-op threads: ``$CELLQC_SEGMENT_THREADS``, else at most 2 (the app's other work and
    batch workers share the machine)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    sha256: str
    classes: tuple[str, ...]
    decision_weights: tuple[float, ...]
    size_multiple: int
    meta: dict[str, Any]


def model_info(name: str = DEFAULT_MODEL, models_dir: Path | None = None) -> ModelInfo:
    """Read and check the metadata of a shipped model (not the weights' checksum yet)."""
    d = Path(models_dir) if models_dir else MODELS_DIR
    meta_path = d / f"{name}.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(meta_path, f"cannot read the model's metadata: {exc}") from None
    path = d / meta.get("file", f"{name}.onnx")
    return ModelInfo(name=name, path=path, sha256=str(meta["sha256"]), classes=tuple(meta["classes"]),
                     decision_weights=tuple(float(w) for w in meta.get("decision_weights", [1.0] * len(meta["classes"]))),
                     size_multiple=int(meta.get("input", {}).get("size_multiple", 8)), meta=meta)


class LayerSegmenter:
    """ONNX Runtime session of the layer/void segmenter.

    Parameters
    ----------
    name : str
        Model name in ``models/`` (default ``layerseg``).
    threads : int, optional
        Intra-op threads (default :func:`default_threads`); inter-op is always 1.
    tile : int
        Tile edge (samples) fed to the network; ``overlap`` samples on each side are context only.
    """

    def __init__(self, name: str = DEFAULT_MODEL, threads: int | None = None, tile: int = 256,
                 overlap: int = 24, models_dir: Path | None = None):
        from core.extras import require_extra

        require_extra("onnx", "the learned segmenter (--segmenter onnx or classic+onnx)")
        import onnxruntime as ort

        self.info = model_info(name, models_dir)
        if not self.info.path.is_file():
            raise ModelError(self.info.path, "model file not found")
        actual = sha256_file(self.info.path)
        if actual != self.info.sha256:
            raise ModelError(self.info.path, f"checksum mismatch: {actual[:12]}… ≠ {self.info.sha256[:12]}… in the metadata")
        m = self.info.size_multiple
        if tile % m or overlap % m or tile <= 2 * overlap:
            raise ValueError(f"tile and overlap must be multiples of {m}, tile > 2·overlap")
        self.threads = int(threads or default_threads())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(self.info.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.tile, self.overlap = tile, overlap
        self._lock = threading.Lock()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw network call: (N, 1, H, W) float32 → (N, C, H, W) probabilities."""
        with self._lock:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]

    def predict(self, polar: np.ndarray, periodic: bool = True) -> np.ndarray:
        """Class probabilities (C, n_t, n_rho) float32 of a normalised polar image (n_t, n_rho).

        Tiled with overlap: angle wraps when ``periodic`` (a full turn), radius is mirrored.
        """
        x = np.asarray(polar, np.float32)
        n_t, n_r = x.shape
        core = self.tile - 2 * self.overlap
        o = self.overlap
        pad_t = (-n_t) % core
        pad_r = (-n_r) % core
        mode_t = "wrap" if periodic else "reflect"
        xp = np.pad(x, ((o, o + pad_t), (0, 0)), mode=mode_t)
        xp = np.pad(xp, ((0, 0), (o, o + pad_r)), mode="reflect")
        n_classes = len(self.info.classes)
        out = np.empty((n_classes, n_t + pad_t, n_r + pad_r), np.float32)
        starts = [(i, j) for i in range(0, n_t + pad_t, core) for j in range(0, n_r + pad_r, core)]
        batch_n = 4
        for b in range(0, len(starts), batch_n):
            chunk = starts[b:b + batch_n]
            tiles = np.stack([xp[i:i + self.tile, j:j + self.tile] for i, j in chunk])[:, None]
            prob = self.run(tiles)
            for (i, j), p in zip(chunk, prob, strict=True):
                out[:, i:i + core, j:j + core] = p[:, o:o + core, o:o + core]
        return out[:, :n_t, :n_r]

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """Class index (uint8) from probabilities with the model's decision weights."""
        w = np.asarray(self.info.decision_weights, np.float32).reshape((-1,) + (1,) * (probabilities.ndim - 1))
        return np.argmax(probabilities * w, axis=0).astype(np.uint8)


_CACHE: dict[tuple[str, int], LayerSegmenter] = {}
_CACHE_LOCK = threading.Lock()


def get_segmenter(name: str = DEFAULT_MODEL, threads: int | None = None) -> LayerSegmenter:
    """A shared session per (model, threads): loading and checking costs ~0.1 s."""
    key = (name, int(threads or default_threads()))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = LayerSegmenter(name, threads=key[1])
        return _CACHE[key]
