"""Bundle entry point of ``cellqc-gui`` (the workstation; a windowed program on Windows)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import os

    for name in ("stdout", "stderr"):  # a windowed program on Windows has no console streams
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    if sys.argv[1:2] == ["--self-test"]:  # the GUI program can check the bundle too
        from qc_app.cli import main
    else:
        from qc_app.gui import main

    sys.exit(main())
