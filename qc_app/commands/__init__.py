"""Sub-commands of ``cellqc``; each module registers itself with :func:`qc_app.cli.register`."""

from qc_app.commands import demo_cmd, inspect_cmd, log_cmd, phantom_cmd  # noqa: F401
