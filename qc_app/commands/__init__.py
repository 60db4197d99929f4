"""Sub-commands of ``cellqc``; each module registers itself with :func:`qc_app.cli.register`."""

from qc_app.commands import (  # noqa: F401
    batch_cmd,
    demo_cmd,
    doctor_cmd,
    followup_cmd,
    gui_cmd,
    inspect_cmd,
    log_cmd,
    phantom_cmd,
    recon_cmd,
    roi_cmd,
    selftest_cmd,
    serve_cmd,
    spc_cmd,
    users_cmd,
    watch_cmd,
)
