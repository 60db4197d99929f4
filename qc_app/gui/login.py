"""Log in to engineer mode: user name + password/PIN, checked against the log (scrypt).

:func:`ask_login` shows the dialog; :func:`check_login` is the check it runs (also used by
tests without a dialog). The secret is never kept: the field is cleared once checked.
"""

from __future__ import annotations

from PySide6 import QtWidgets


class LoginDialog(QtWidgets.QDialog):
    """User name and password/PIN; OK/Cancel."""

    def __init__(self, parent=None, user: str = ""):
        super().__init__(parent)
        self.setWindowTitle("cellqc — log in")
        form = QtWidgets.QFormLayout(self)
        self.user = QtWidgets.QLineEdit(user)
        self.user.setObjectName("loginUser")
        self.secret = QtWidgets.QLineEdit()
        self.secret.setObjectName("loginSecret")
        self.secret.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        form.addRow("User", self.user)
        form.addRow("Password or PIN", self.secret)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        (self.secret if user else self.user).setFocus()


def check_login(db, user: str, secret: str) -> str:
    """The role of ``user`` when ``secret`` is theirs and they are active.

    Raises
    ------
    core.store.users.PermissionDenied
        Unknown user, wrong secret, disabled, or no password set yet.
    """
    from core.store.users import authenticate

    return str(authenticate(db, user, secret, source="gui")["role"])


def ask_login(parent, db, user: str = "") -> tuple[str, str] | None:
    """Show the dialog and check the login; (user, role), or None when cancelled.

    Raises
    ------
    core.store.users.PermissionDenied
        The login was refused (the caller shows the one-line message).
    """
    dialog = LoginDialog(parent, user)
    try:
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return None
        name = dialog.user.text().strip()
        secret = dialog.secret.text()
        dialog.secret.clear()
        return name, check_login(db, name, secret)
    finally:
        dialog.deleteLater()
