"""The case on screen and who is at the station: a model without Qt that the window observes.

:class:`qc_app.gui.main_window.MainWindow` is the view: it asks this model what to show
(banner subtitle, window title, which controls are enabled, the status-bar texts) and
redraws when the model says something changed. Keeping the state here, apart from the
widgets (as napari keeps its models apart from ``_qt``), lets it be tested without a screen
(``tests/test_case_model.py``) and read in one place.

Events passed to observers:

``"cleared"``
    The case was forgotten (a new volume or cell; nothing inspected yet).
``"verdict"``
    The final verdict changed (an override).
``"report"``
    A report was written for the case.
``"role"``
    Someone logged in as engineer/admin, or back to operator.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Roles the window knows; anything else is shown as ``operator``.
ROLES = ("operator", "engineer", "admin")
#: Roles that may enter engineer mode (the drill-down panel, overrides, recipe edits).
ENGINEER_ROLES = ("engineer", "admin")

Observer = Callable[[str], None]


def safe_name(text: str) -> str:
    """A file-name-safe version of a cell id (letters, digits, ``._-``; ``cell`` when empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "cell"


@dataclass(frozen=True)
class Controls:
    """Which of the window's controls may be used now."""

    run: bool
    cancel_button: bool
    cancel_action: bool
    open: bool
    report: bool
    open_report: bool
    print_report: bool


class CaseModel:
    """The open volume, its inspection and verdict, its report, and the person at the station.

    Parameters
    ----------
    operator : str, optional
        The name filed with inspections while nobody is logged in.
    login_name : str
        The user name a login starts with.

    Attributes
    ----------
    volume_path : str or None
        The volume being shown or opened.
    volume : core.io.Volume or None
        The volume once read.
    inspection : core.inspect.Inspection or None
        The inspection run in this session (None for one opened from the log).
    result : dict or None
        The inspection result (``cellqc.inspection/1``).
    inspection_id : int or None
        Its row in the log.
    final_verdict : str or None
        The verdict after overrides.
    report_path : str or None
        The case's PDF report, when one exists.
    last_outcome : str or None
        How the last attempt ended: PASS, FAIL, REVIEW, ERROR or CANCELLED.
    role : str
        ``operator``, ``engineer`` or ``admin``.
    signer : str or None
        The logged-in engineer/admin who signs overrides and recipe changes.
    operator : str or None
        The name filed with inspections (the signer while one is logged in).
    station_operator : str or None
        The name filed while nobody is logged in.
    login_name : str
        The user name the next login starts with.
    """

    def __init__(self, *, operator: str | None = None, login_name: str = ""):
        self.volume_path: str | None = None
        self.volume: Any = None
        self.inspection: Any = None
        self.result: dict[str, Any] | None = None
        self.inspection_id: int | None = None
        self.final_verdict: str | None = None
        self.report_path: str | None = None
        self.last_outcome: str | None = None
        self.role = "operator"
        self.signer: str | None = None
        self.operator = operator
        self.station_operator = operator
        self.login_name = login_name
        self._observers: list[Observer] = []

    # ------------------------------------------------------------------ observers
    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(event)`` after each change; returns a function that stops it."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback)

    def _changed(self, event: str) -> None:
        for callback in list(self._observers):
            callback(event)

    # ------------------------------------------------------------------ the case
    def clear(self) -> None:
        """Forget the inspection, its verdict and report (the volume path stays)."""
        self.inspection = None
        self.result = None
        self.inspection_id = None
        self.final_verdict = None
        self.report_path = None
        self._changed("cleared")

    def start_inspection(self) -> None:
        """An inspection of the open volume starts: its previous result is no longer shown."""
        self.inspection = self.result = None
        self.inspection_id = self.final_verdict = self.report_path = None

    def inspected(self, inspection: Any, inspection_id: int | None) -> None:
        """An inspection of this session finished (``inspection.result`` holds its result)."""
        self.inspection = inspection
        self.result = inspection.result
        self.inspection_id = inspection_id
        self.final_verdict = inspection.result["verdict"]
        self.last_outcome = self.final_verdict

    def opened_from_log(self, result: dict[str, Any], inspection_id: int,
                        overrides: list[dict[str, Any]], report_path: str | None) -> None:
        """A filed inspection is shown: its final verdict is its newest override's, if any.

        ``report_path`` is kept only when the file is still there.
        """
        self.result = result
        self.inspection_id = int(inspection_id)
        self.final_verdict = overrides[-1]["new_verdict"] if overrides else result["verdict"]
        self.report_path = report_path if report_path and Path(report_path).exists() else None

    def overridden(self, verdict: str) -> None:
        """The verdict was overridden (filed in the log by the override panel)."""
        self.final_verdict = verdict
        self._changed("verdict")

    def report_written(self, path: str) -> None:
        """The case's report was written to ``path``."""
        self.report_path = path
        self._changed("report")

    # ------------------------------------------------------------------ what to show
    @property
    def shown_verdict(self) -> str | None:
        """The verdict the banner shows: the final one, else the automatic one."""
        if self.result is None:
            return None
        return self.final_verdict or self.result["verdict"]

    @property
    def is_overridden(self) -> bool:
        """Whether the shown verdict differs from the automatic one."""
        return self.result is not None and self.shown_verdict != self.result["verdict"]

    def subtitle(self) -> str:
        """``Cell ID · inspection #N · n findings`` for the banner."""
        result = self.result or {}
        n = len(result.get("findings", []))
        ident = f" · inspection #{self.inspection_id}" if self.inspection_id is not None else ""
        return f"Cell {result.get('cell_id', '?')}{ident} · {n} finding{'s' if n != 1 else ''}"

    def override_line(self, last_override: dict[str, Any] | None) -> str:
        """The banner's first reason when the verdict was overridden."""
        last = last_override or {}
        return (f"Automatic verdict {(self.result or {}).get('verdict')} overridden to "
                f"{self.shown_verdict} by {last.get('user', '?')}: {last.get('reason', '')}")

    def window_title(self) -> str:
        """The window's title: the cell and its verdict, when one is shown."""
        if self.result is None:
            return "cellqc — cell inspection"
        return f"cellqc — {self.result.get('cell_id', '')} — {self.shown_verdict}"

    def report_name(self, now: _dt.datetime | None = None) -> str:
        """``<cell>_<inspection id>.pdf`` (a time stamp when the case is not filed)."""
        cell = safe_name(str((self.result or {}).get("cell_id") or "cell"))
        tag = f"{self.inspection_id}" if self.inspection_id is not None else \
            (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        return f"{cell}_{tag}.pdf"

    def controls(self, *, inspecting: bool, cancelling: bool, reporting: bool) -> Controls:
        """Which controls may be used, given the window's running tasks."""
        has_volume = self.volume_path is not None
        can_report = self.result is not None and not inspecting
        has_report = bool(self.report_path) and not reporting
        return Controls(
            run=has_volume and not inspecting,
            cancel_button=inspecting and not cancelling,
            cancel_action=inspecting,
            open=not inspecting,
            report=can_report and not reporting,
            open_report=has_report,
            print_report=has_report,
        )

    def status_texts(self, db_path: str | Path | None, recipe: str | None) -> tuple[str, str, str]:
        """The status bar's log, recipe and role texts."""
        log = f"Log: {db_path}" if db_path else "Log: none (results are not filed)"
        used = (self.result or {}).get("recipe") if self.result else None
        if recipe:
            recipe_text = f"Recipe: {Path(recipe).stem}"
        else:
            recipe_text = "Recipe: auto (from the can)" + (f", this cell: {used}" if used else "")
        role = f"Role: {self.role}" + (f" ({self.signer})" if self.signer else "")
        return log, recipe_text, role

    # ------------------------------------------------------------------ people
    def login(self, user: str, role: str) -> str | None:
        """Engineer mode for a user whose login was checked against the log.

        Returns
        -------
        str or None
            Why it is refused (the role does not allow it), or None when granted.
        """
        if role not in ENGINEER_ROLES:
            return (f"user {user!r} is {role} in the log; engineer mode needs the engineer or "
                    "admin role.")
        self.signer = self.operator = user
        self.login_name = user
        self.role = role if role in ROLES else "operator"
        self._changed("role")
        return None

    def logout(self) -> None:
        """Back to operator: nobody signs; inspections are filed under the station's name."""
        self.signer = None
        self.operator = self.station_operator
        self.role = "operator"
        self._changed("role")
