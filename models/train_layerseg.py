"""Train the layer/void segmenter and export it to ONNX (models/layerseg.onnx + layerseg.json).

Reproducible: fixed seeds, one CPU thread. Needs torch (dev only, never at run time):

    .venv/bin/pip install torch==2.13.0 onnxscript
    .venv/bin/python -m models.train_layerseg --minutes 15

Training data: ``models.layerseg_data`` (generated cells, seeds 0 … N-1); validation patches
come from seeds 100000 + …; the held-out evaluation (``models.eval_layerseg``) uses seeds and
the phantom's own artifact pipeline that training never sees.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ONNX_PATH = HERE / "layerseg.onnx"
META_PATH = HERE / "layerseg.json"
VAL_SEED0 = 100000


def build_model(channels=(8, 16, 32), n_classes: int = 5):
    import torch
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        """Three-level U-Net: full, 1/2 and 1/4 resolution; softmax probabilities out."""

        def __init__(self):
            super().__init__()
            c1, c2, c3 = channels
            self.e1, self.e2, self.e3 = block(1, c1), block(c1, c2), block(c2, c3)
            self.pool = nn.MaxPool2d(2)
            self.u2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
            self.d2 = block(2 * c2, c2)
            self.u1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
            self.d1 = block(2 * c1, c1)
            self.head = nn.Conv2d(c1, n_classes, 1)
            self.softmax = False

        def forward(self, x):
            x1 = self.e1(x)
            x2 = self.e2(self.pool(x1))
            x3 = self.e3(self.pool(x2))
            y = self.d2(torch.cat([self.u2(x3), x2], 1))
            y = self.d1(torch.cat([self.u1(y), x1], 1))
            logits = self.head(y)
            return torch.softmax(logits, 1) if self.softmax else logits

    return UNet()


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """On-the-fly: residual gain/offset after normalisation, gamma-like bend, extra noise."""
    n = x.shape[0]
    gain = rng.uniform(0.85, 1.15, (n, 1, 1))
    off = rng.uniform(-0.08, 0.08, (n, 1, 1))
    y = x * gain + off
    bend = rng.uniform(-0.1, 0.1, (n, 1, 1))
    y = y + bend * y * (1 - np.clip(y, 0, 1))
    y = y + rng.uniform(0, 0.08, (n, 1, 1)) * rng.standard_normal(x.shape)
    return y.astype(np.float32)


def iou_table(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> list[float]:
    out = []
    for c in range(n_classes):
        inter = np.sum((pred == c) & (truth == c))
        union = np.sum((pred == c) | (truth == c))
        out.append(float(inter / union) if union else math.nan)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=110, help="generated training cells (crops)")
    p.add_argument("--val-cells", type=int, default=12)
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget (one thread)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", default="8,16,32")
    p.add_argument("--cache", default="", help="npz file to keep/reuse the generated patches")
    args = p.parse_args(argv)

    import torch

    from core.phantom.labels import CLASSES, DECISION_WEIGHTS, class_labels
    from core.segment.polar import NORM_HIGH_PCT, NORM_LOW_PCT, PolarSampling
    from models.layerseg_data import make_patches

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.time()
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        d = np.load(cache)
        tr_x, tr_y, va_x, va_y = d["tr_x"], d["tr_y"], d["va_x"], d["va_y"]
    else:
        print(f"generating {args.cells} training cells", flush=True)
        tr = make_patches(range(args.cells))
        print(f"generating {args.val_cells} validation cells", flush=True)
        va = make_patches(range(VAL_SEED0, VAL_SEED0 + args.val_cells))
        tr_x, tr_y, va_x, va_y = tr.x, tr.y, va.x, va.y
        if cache:
            np.savez(cache, tr_x=tr_x, tr_y=tr_y, va_x=va_x, va_y=va_y)
    t_data = time.time() - t_start
    print(f"data: {len(tr_x)} train / {len(va_x)} val patches in {t_data:.0f} s", flush=True)

    channels = tuple(int(c) for c in args.channels.split(","))
    model = build_model(channels, len(CLASSES))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    # Soft-label cross-entropy (partial-volume fractions as targets), rare classes weighted.
    class_w = torch.tensor([1.0, 4.0, 1.0, 2.0, 1.0]).view(1, -1, 1, 1)
    budget = args.minutes * 60
    t0 = time.time()
    step = 0
    losses = []
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        idx = rng.integers(0, len(tr_x), args.batch)
        xb = tr_x[idx].astype(np.float32)
        yb = tr_y[idx].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            xb, yb = xb[:, ::-1], yb[:, :, ::-1]  # angle flip (winding direction)
        if rng.random() < 0.5:
            xb, yb = xb[:, :, ::-1], yb[:, :, :, ::-1]  # radius flip
        xb = augment(np.ascontiguousarray(xb), rng)
        x_t = torch.from_numpy(xb[:, None])
        y_t = torch.from_numpy(np.ascontiguousarray(yb))
        model.train()
        logp = torch.log_softmax(model(x_t), 1)
        loss = -(class_w * y_t * logp).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        step += 1
        if step % 100 == 0:
            print(f"step {step}  loss {np.mean(losses[-100:]):.4f}  {time.time() - t0:.0f} s", flush=True)
    t_train = time.time() - t0

    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(va_x), 32):
            prob = torch.softmax(model(torch.from_numpy(va_x[i:i + 32].astype(np.float32)[:, None])), 1).numpy()
            preds.append(class_labels(np.moveaxis(prob, 1, 0)))
    pred = np.concatenate(preds)
    truth = class_labels(np.moveaxis(va_y.astype(np.float32) / 255.0, 1, 0))
    val_iou = iou_table(pred, truth, len(CLASSES))
    print("validation IoU:", dict(zip(CLASSES, np.round(val_iou, 3), strict=True)), flush=True)

    model.softmax = True
    dummy = torch.zeros(1, 1, 64, 64)
    kwargs = dict(input_names=["image"], output_names=["probabilities"], opset_version=17)
    try:
        torch.onnx.export(model, dummy, str(ONNX_PATH), dynamo=False,
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "probabilities": {0: "n", 2: "h", 3: "w"}},
                          **kwargs)
    except Exception as exc:  # noqa: BLE001 - the legacy exporter may be gone; try dynamo
        print(f"legacy export failed ({exc}); dynamo export", flush=True)
        from torch.export import Dim

        dims = {"x": {0: Dim("n", max=64), 2: 8 * Dim("h8", max=256), 3: 8 * Dim("w8", max=256)}}
        torch.onnx.export(model, (dummy,), str(ONNX_PATH), dynamo=True, dynamic_shapes=dims, **kwargs)
    from core.fileio import sha256_file

    sha = sha256_file(ONNX_PATH)
    meta = {
        "name": "layerseg",
        "version": 1,
        "file": ONNX_PATH.name,
        "sha256": sha,
        "classes": list(CLASSES),
        "decision_weights": list(DECISION_WEIGHTS),
        "input": {"name": "image", "layout": "NCHW, C=1, H=angle samples, W=radius samples",
                  "size_multiple": 8,
                  "normalisation": {"kind": "roll_percentiles", "low_pct": NORM_LOW_PCT, "high_pct": NORM_HIGH_PCT}},
        "output": {"name": "probabilities", "layout": "NCHW, C=classes, softmax"},
        "polar_sampling": {"radial_step_vox": PolarSampling().radial_step_vox,
                           "arc_step_vox": PolarSampling().arc_step_vox},
        "training": {
            "command": "python -m models.train_layerseg " + " ".join(sys.argv[1:] if argv is None else argv),
            "cells": args.cells, "val_cells": args.val_cells, "patches": int(len(tr_x)), "patch_px": int(tr_x.shape[-1]),
            "steps": step, "batch": args.batch, "minutes": round(t_train / 60, 1),
            "data_minutes": round(t_data / 60, 1), "parameters": int(n_params), "channels": list(channels),
            "torch": torch.__version__, "seed": args.seed,
            "final_loss": float(np.mean(losses[-100:])) if losses else None,
        },
        "validation_iou": dict(zip(CLASSES, [round(v, 4) for v in val_iou], strict=True)),
    }
    if META_PATH.exists():  # keep the held-out evaluation written by eval_layerseg
        old = json.loads(META_PATH.read_text())
        if old.get("sha256") == sha and "evaluation" in old:
            meta["evaluation"] = old["evaluation"]
    META_PATH.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {ONNX_PATH} ({ONNX_PATH.stat().st_size / 1e3:.0f} kB, sha256 {sha[:12]}…) and {META_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
