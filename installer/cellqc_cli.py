"""Bundle entry point of ``cellqc`` (the command line; console program)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # dask / concurrent.futures workers in a frozen app
    from qc_app.cli import main

    sys.exit(main())
