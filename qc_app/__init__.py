"""What people run: the ``cellqc`` command, the GUI and batch processing. Thin: calls into ``core``."""
