"""Many cells: batch inspection with Dask distributed, and the hot folder.

* :mod:`qc_app.batch.inputs` — paths, globs and manifests; input fingerprints.
* :mod:`qc_app.batch.worker` — the work of one cell on a worker (no log access).
* :mod:`qc_app.batch.ledger` — the one writer of the log: open a cell, file its outcome.
* :mod:`qc_app.batch.runner` — ``run_batch``: plan, skip what is done, run on Dask, file.
* :mod:`qc_app.batch.display` — progress bar and summary table.
* :mod:`qc_app.batch.watch` — the hot folder, with its state in the log.

Dask is imported only when a batch runs on workers.
"""

from qc_app.batch.inputs import BatchItem, Fingerprint, expand_inputs, fingerprint
from qc_app.batch.runner import BatchOptions, BatchSummary, CellRow, exit_code, run_batch
from qc_app.batch.watch import HotFolder, WatchEvent, WatchOptions
from qc_app.batch.worker import CellOutcome, CellTask, run_cell

__all__ = [
    "BatchItem",
    "BatchOptions",
    "BatchSummary",
    "CellOutcome",
    "CellRow",
    "CellTask",
    "Fingerprint",
    "HotFolder",
    "WatchEvent",
    "WatchOptions",
    "exit_code",
    "expand_inputs",
    "fingerprint",
    "run_batch",
    "run_cell",
]
