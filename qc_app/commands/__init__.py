"""Sub-commands of ``cellqc``, registered lazily so that start-up stays fast.

:data:`COMMAND_TABLE` names each command's module and its one-line help; ``cellqc --help``
lists the table without importing any command module. ``cellqc NAME ...`` imports only
``NAME``'s module, whose ``register`` call (:func:`qc_app.commands.base.register`) supplies the
``add_arguments`` and ``run`` functions. A command module imports only the standard library
(argparse and the like) and light cellqc modules at its top; numpy, scipy, the readers, the
store, Qt and asyncua are imported inside ``run`` (``tests/test_cli_startup.py`` checks it).
"""

from __future__ import annotations

#: name → (module, one-line help). The help is the same as the module's ``register`` call
#: (a test checks they agree); the order is the order of ``cellqc --help``.
COMMAND_TABLE: dict[str, tuple[str, str]] = {
    "batch": ("qc_app.commands.batch_cmd", "inspect many cells in parallel (Dask); resumable; summary table"),
    "demo": ("qc_app.commands.demo_cmd", "inspect a synthetic defective demo cell: verdict, PDF report and log"),
    "doctor": ("qc_app.commands.doctor_cmd", "check the installation, the log's integrity and free disk"),
    "followup": ("qc_app.commands.followup_cmd",
                 "synchrotron follow-up: import, list, analyse, XANES spectra, phase retrieval"),
    "gui": ("qc_app.commands.gui_cmd", "the workstation: operator station, viewer and engineer drill-down (PySide6)"),
    "inspect": ("qc_app.commands.inspect_cmd", "inspect one cell volume and print its verdict"),
    "log": ("qc_app.commands.log_cmd", "list inspections in the log"),
    "report": ("qc_app.commands.log_cmd",
               "write an inspection's PDF report again from the log, or check one (--verify)"),
    "audit": ("qc_app.commands.log_cmd", "verify the log's hash-chained audit table"),
    "phantom": ("qc_app.commands.phantom_cmd",
                "write a synthetic cell with known defects (OUT.tif + OUT.truth.json)"),
    "recon": ("qc_app.commands.recon_cmd", "reconstruct a volume from projections (FBP / FDK, rings, centre)"),
    "roi": ("qc_app.commands.roi_cmd", "ROI local-tomography scans: plan, list, export, state, import"),
    "self-test": ("qc_app.commands.selftest_cmd",
                  "check this installation: resources, libraries, headless demo, GUI toolkit; exit 0 if whole"),
    "serve": ("qc_app.commands.serve_cmd",
              "OPC UA server for the line's PLC and the MES: station state, last result, Inspect"),
    "spc": ("qc_app.commands.spc_cmd", "control charts of a metric over the log (Western Electric rules)"),
    "users": ("qc_app.commands.users_cmd", "manage users and roles (operator, engineer, admin)"),
    "override": ("qc_app.commands.users_cmd", "override an inspection's verdict with a reason (engineer/admin)"),
    "recipes": ("qc_app.commands.users_cmd", "save an edited recipe, audited with its diff (engineer/admin)"),
    "watch": ("qc_app.commands.watch_cmd",
              "hot folder: inspect finished scans as they arrive, move them to done/ or failed/"),
}
