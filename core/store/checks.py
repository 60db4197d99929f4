"""Cross-checks of the log's rows against the audit chain that records them.

Above :mod:`core.store.log` and :mod:`core.store.users` (it reads both tables' audit rows),
so neither imports the other to run the whole check.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlite_utils import Database

from core.store.users import check_users


def check_records(db: Database) -> list[str]:
    """Cross-check the log's tables against their audit entries.

    The audit chain protects itself; this extends the protection to the rows it records:
    each complete inspection's verdict and result hash must match the ``inspection.complete``
    audit row written with it (and the stored result must still hash to that value); each
    override must match its ``verdict.override`` row; each user's role, password and
    disabled state must match their newest audit row (:func:`core.store.users.check_users`).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.

    Returns
    -------
    list of str
        One sentence per mismatch; empty when everything agrees.
    """
    audited: dict[str, dict[str, Any]] = {}
    for row in db.conn.execute(
        "SELECT entity_id, details FROM audit WHERE action = 'inspection.complete'"
    ):
        audited[str(row[0])] = json.loads(row[1])
    problems: list[str] = []
    for rid, verdict, result_json, result_sha in db.conn.execute(
        "SELECT id, verdict, result_json, result_sha256 FROM inspections"
        " WHERE status = 'complete' ORDER BY id"
    ):
        entry = audited.get(str(rid))
        if entry is None:
            problems.append(f"inspection {rid}: complete, but no audit entry records it")
            continue
        if entry.get("verdict") != verdict:
            problems.append(
                f"inspection {rid}: verdict {verdict} differs from the audited {entry.get('verdict')}"
            )
        actual = hashlib.sha256((result_json or "").encode("utf-8")).hexdigest()
        if actual != entry.get("result_sha256") or result_sha != entry.get("result_sha256"):
            problems.append(f"inspection {rid}: stored result differs from the audited one")
    problems += _check_overrides(db)
    problems += check_users(db)
    return problems


def _check_overrides(db: Database) -> list[str]:
    """Every override must be the one its ``verdict.override`` audit row records."""
    audited: dict[str, dict[str, Any]] = {}
    for entity_id, actor, details in db.conn.execute(
        "SELECT entity_id, actor, details FROM audit WHERE action = 'verdict.override'"
    ):
        audited[str(entity_id)] = {**json.loads(details), "actor": actor}
    problems = []
    for oid, iid, new_verdict, reason, user in db.conn.execute(
        "SELECT id, inspection_id, new_verdict, reason, user FROM overrides ORDER BY id"
    ):
        entry = audited.get(str(oid))
        if entry is None:
            problems.append(f"override {oid}: no audit entry records it")
        elif (entry.get("inspection_id"), entry.get("new_verdict"), entry.get("reason"),
              entry.get("actor")) != (iid, new_verdict, reason, user):
            problems.append(f"override {oid}: differs from its audit entry")
    return problems
