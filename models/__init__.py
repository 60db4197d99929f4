"""ONNX models shipped with cellqc, their training scripts and model cards."""
