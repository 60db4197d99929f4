"""The SQLite log (sqlite-utils): schema, migrations, inspections, reports, audit chain.

Typical use::

    from core.store import open_log, record_inspection, verify_audit

    with open_log() as db:               # $CELLQC_HOME/cellqc.db, migrated, WAL
        inspection_id = record_inspection(db, result)
        assert verify_audit(db) is None

Layers, each importing only those below it: :mod:`~core.store.keys` and
:mod:`~core.store.base` (paths, connection, write transaction) ← :mod:`~core.store.audit` ←
:mod:`~core.store.log` ← :mod:`~core.store.users` ← :mod:`~core.store.checks` ←
:mod:`~core.store.schema` (migrations, :func:`open_log`).

The audit chain is keyed with a key kept outside the log (:mod:`core.store.keys`); users and
their logins are in :mod:`core.store.users`.

Browse the file with Datasette (``datasette cellqc.db``): every table has plain names and
real foreign keys; the ``inspection_log`` view lists inspections with their final verdict.
"""

from core.store.audit import (
    GENESIS_HASH,
    AuditBreak,
    AuditHead,
    append_audit,
    audit_head,
    audit_rows,
    canonical_json,
    check_anchor,
    find_audit_break,
    parse_anchor,
    verify_audit,
)
from core.store.checks import check_records
from core.store.keys import AuditKeyError, audit_key_path
from core.store.log import (
    begin_inspection,
    complete_inspection,
    fail_inspection,
    findings_for,
    get_inspection,
    get_result,
    latest_report_path,
    list_inspections,
    mark_stale_interrupted,
    override_verdict,
    overrides_for,
    record_inspection,
    record_report,
)
from core.store.schema import (
    BUSY_TIMEOUT_S,
    MIGRATIONS,
    SCHEMA_VERSION,
    default_db_path,
    migrate,
    open_log,
    schema_version,
    write_transaction,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "GENESIS_HASH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditBreak",
    "AuditHead",
    "AuditKeyError",
    "append_audit",
    "audit_head",
    "audit_key_path",
    "audit_rows",
    "begin_inspection",
    "canonical_json",
    "check_anchor",
    "check_records",
    "complete_inspection",
    "default_db_path",
    "fail_inspection",
    "find_audit_break",
    "findings_for",
    "get_inspection",
    "get_result",
    "latest_report_path",
    "list_inspections",
    "mark_stale_interrupted",
    "migrate",
    "open_log",
    "override_verdict",
    "overrides_for",
    "parse_anchor",
    "record_inspection",
    "record_report",
    "schema_version",
    "verify_audit",
    "write_transaction",
]
