"""``cellqc serve``: the station on the plant network, as an OPC UA server (asyncua).

Address space (namespace ``urn:cellqc``; node ids are strings such as
``ns=2;s=CellQC.Station.State``; the full list is in docs/plant_integration.md)::

    Objects/CellQC                          emits ResultReadyEventType for every filed result
      Station/  State (Idle|Busy|Error), MachineVisionState, ErrorText, CurrentCellId,
                ActiveRecipe, ActiveRecipeSha256, AvailableRecipes, SoftwareVersion, StartedAt,
                InspectedCount, PassCount, FailCount, ReviewCount, AllowedFolders, LastRefusal
      LastResult/  Sequence, InspectionId, CellId, Verdict, AutomatedVerdict, Reasons, Recipe,
                RecipeSha256, Measurement{Names,Values,Units,Uncertainties},
                Finding{Ids,Detectors,Severities,Values,Units,Uncertainties,Messages},
                ReportPath, ReportSha256, ResultSha256, FiledAt, Operator, Source, ResultJson
      Inspect(path: String, cell_id: String) -> verdict: String
      SelectRecipe(name: String) -> selected: String

Everything is read-only for clients; only the two methods change anything, and only for a
user of the log (username/password identity token, checked with scrypt against the log's
users, :func:`core.store.users.authenticate`) whose role allows it: ``inspect`` for Inspect,
``edit_recipe`` (engineer, admin) for SelectRecipe. Each accepted change is an audit row
(``plant.inspect``, ``plant.select_recipe``) besides the inspection's own rows.

Results reach the plant from one place, the log: the server's own inspections, and every
inspection any other cellqc process files into the same log (``cellqc watch``, the GUI,
``cellqc inspect --db``), which the server follows (a query a second). Inspections run in a
worker thread, so the server keeps answering while one runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.server.user_managers import UserManager

from core.errors import Cancelled, CellQCError, InputError, RecipeError
from core.plant import (
    PathMissing,
    PathRefused,
    ResultSnapshot,
    check_inspect_path,
    complete_since,
    latest_complete,
    snapshot_from_log,
)
from qc_app.endpoint import DEFAULT_ENDPOINT, parse_endpoint
from qc_app.endpoint import is_loopback as _is_loopback

NAMESPACE_URI = "urn:cellqc"
#: OPC 40100 (Machine Vision) names of the station's states.
MACHINE_VISION_STATE = {"Idle": "Ready", "Busy": "SingleExecution", "Error": "Error"}
#: Event severity (1–1000) by verdict.
SEVERITY = {"PASS": 100, "REVIEW": 500, "FAIL": 700}

#: The user of the request being processed (set by :class:`StationRuleset` for every request).
CALLER: contextvars.ContextVar[User | None] = contextvars.ContextVar("cellqc_opcua_caller", default=None)


# ---------------------------------------------------------------------- who is calling


@dataclass
class LogUser(User):
    """A client logged in as a user of the log; ``log_role`` is their cellqc role."""

    log_role: str = ""


class LogUserManager(UserManager):
    """Anonymous clients may read; a username/password must be a user of the log."""

    def __init__(self, db_path: Path, note: Callable[[str], None]) -> None:
        self.db_path = db_path
        self.note = note

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if not username:  # anonymous (X.509 user tokens are not offered; the channel's certificate is no user)
            return User(role=UserRole.Anonymous)
        from core.store import open_log
        from core.store.users import PermissionDenied, authenticate

        try:
            with open_log(self.db_path, recover=False) as db:
                row = authenticate(db, username, password or "", source="opcua")
        except PermissionDenied as exc:
            self.note(f"login refused: {exc}")
            return None
        except CellQCError as exc:
            self.note(f"login refused: the log cannot be read: {exc}")
            return None
        return LogUser(role=UserRole.User, name=username, log_role=str(row.get("role") or ""))


class StationRuleset(PermissionRuleset):
    """Every session may read, browse, subscribe and call; nobody may write or add nodes.

    Methods check their caller themselves (:data:`CALLER`, set here for each request), so a
    refusal is a per-method status, not a broken request.
    """

    def __init__(self) -> None:
        self._allowed = {ua.NodeId(t) for t in USER_TYPES} - {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)}

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        CALLER.set(user)
        return action_type_id in self._allowed


_CALL_REQUEST = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)


def _install_concurrent_calls() -> None:
    """Let a station's connections answer other requests while a method call runs.

    asyncua handles the requests of one connection one after the other, so a 30-second
    Inspect would hold up that client's reads, keep-alive probes and subscription publishing
    (asyncua's own client then declares the connection dead). OPC UA lets a server answer
    requests in any order (responses carry the request's handle), so on a cellqc station a
    Call request runs in its own task; every other request, and every other asyncua server
    in the process, is handled as before.
    """
    from asyncua.server import binary_server_asyncio
    from asyncua.server.uaprocessor import UaProcessor
    from asyncua.ua.ua_binary import nodeid_from_binary

    if getattr(binary_server_asyncio.UaProcessor, "_cellqc_concurrent_calls", False):
        return

    class ConcurrentCallProcessor(UaProcessor):
        _cellqc_concurrent_calls = True

        async def process_message(self, seqhdr: Any, body: Any) -> bool:
            if getattr(self.iserver, "cellqc_station", False) and nodeid_from_binary(body.copy()) == _CALL_REQUEST:
                task = asyncio.ensure_future(super().process_message(seqhdr, body))
                _CALL_TASKS.add(task)
                task.add_done_callback(_CALL_TASKS.discard)
                return True
            return await super().process_message(seqhdr, body)

    binary_server_asyncio.UaProcessor = ConcurrentCallProcessor


_CALL_TASKS: set[asyncio.Future[Any]] = set()


class Refusal(Exception):
    """A method call refused with an OPC UA status and one line of text."""

    def __init__(self, status: int, text: str, argument: int | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.argument = status, text, argument


# ----------------------------------------------------------------------------- options


@dataclass
class ServeOptions:
    """How ``cellqc serve`` runs (see ``cellqc serve --help``)."""

    db_path: Path
    out_dir: Path
    endpoint: str = DEFAULT_ENDPOINT
    allowed: tuple[Path, ...] = ()
    recipe: str | None = None
    voxel_size: Any = None
    report: bool = True
    certificate: Path | None = None
    private_key: Path | None = None
    require_encryption: bool = False
    follow_interval_s: float = 1.0
    application_uri: str = field(default_factory=lambda: f"urn:cellqc:station:{socket.gethostname()}")


# ------------------------------------------------------------------------------ server


class StationServer:
    """The OPC UA server of one cellqc station; use as ``async with StationServer(opts) as s``."""

    def __init__(self, options: ServeOptions, *, note: Callable[[str], None] | None = None) -> None:
        from core.recipe import load_recipe

        self.options = options
        self.note = note or (lambda text: print(f"cellqc serve: {text}", file=sys.stderr, flush=True))
        host, self.port, _ = parse_endpoint(options.endpoint)
        self.host = host
        if options.require_encryption and options.certificate is None:
            raise InputError("--require-encryption", "needs a certificate (cellqc serve --create-certificate)")
        if options.certificate is None and not _is_loopback(host):
            raise InputError(options.endpoint, "a server on the plant network needs a certificate, so that "
                             "passwords never travel in clear: run cellqc serve --create-certificate first "
                             "(or give --certificate and --private-key)")
        self.recipe = load_recipe(options.recipe)
        self.server: Server | None = None
        self.nodes: dict[str, ua.NodeId] = {}
        self.idx = 0
        self.counts = {"inspected": 0, "PASS": 0, "FAIL": 0, "REVIEW": 0}
        self.sequence = 0
        self.last: ResultSnapshot | None = None
        self._seen = 0
        self._published: set[int] = set()
        self._job: asyncio.Task[Any] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cellqc-inspect")
        self._cancel = threading.Event()
        self._follower: asyncio.Task[None] | None = None
        self._event_gen: Any = None

    # lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> StationServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def security(self) -> str:
        """The offered security, in words."""
        if self.options.certificate is None:
            return "None (no certificate: anonymous reading; passwords in clear on the loopback only)"
        if self.options.require_encryption:
            return "Basic256Sha256 SignAndEncrypt only"
        return "Basic256Sha256 SignAndEncrypt, and None for reading (passwords still encrypted)"

    async def start(self) -> None:
        """Build the address space, publish the newest filed result, and start listening."""
        from core import __version__
        from core.recipe import available_recipes
        from core.store import open_log

        # asyncua logs refused requests and a busy port with tracebacks; the station says it in one line.
        logging.getLogger("asyncua").setLevel(logging.CRITICAL)
        with open_log(self.options.db_path) as db:  # created and migrated before any client
            newest = latest_complete(db)
        server = Server(user_manager=LogUserManager(self.options.db_path, self.note))
        await server.init()
        _install_concurrent_calls()
        server.iserver.cellqc_station = True
        server.set_endpoint(self.options.endpoint)
        server.set_server_name("cellqc inspection station")
        await server.set_application_uri(self.options.application_uri)
        await server.set_build_info("urn:cellqc", "cellqc", "cellqc", __version__, "0", datetime.now(UTC))
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        if self.options.certificate is not None:
            await server.load_certificate(str(self.options.certificate))
            await server.load_private_key(str(self.options.private_key))
            if not self.options.require_encryption:
                policies.insert(0, ua.SecurityPolicyType.NoSecurity)
        else:
            policies = [ua.SecurityPolicyType.NoSecurity]
        server.set_security_policy(policies, permission_ruleset=StationRuleset())
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        self.server = server
        self.idx = idx = await server.register_namespace(NAMESPACE_URI)

        root = await server.nodes.objects.add_object(ua.NodeId("CellQC", idx), ua.QualifiedName("CellQC", idx))
        station = await root.add_object(ua.NodeId("CellQC.Station", idx), ua.QualifiedName("Station", idx))
        last = await root.add_object(ua.NodeId("CellQC.LastResult", idx), ua.QualifiedName("LastResult", idx))
        S, VT = ua.VariantType.String, ua.VariantType
        station_vars: list[tuple[str, Any, Any]] = [
            ("State", "Idle", S), ("MachineVisionState", MACHINE_VISION_STATE["Idle"], S), ("ErrorText", "", S),
            ("CurrentCellId", "", S), ("ActiveRecipe", self.recipe.name, S),
            ("ActiveRecipeSha256", self.recipe.sha256, S), ("AvailableRecipes", available_recipes(), S),
            ("SoftwareVersion", __version__, S), ("StartedAt", datetime.now(UTC).isoformat(timespec="seconds"), S),
            ("InspectedCount", 0, VT.UInt32), ("PassCount", 0, VT.UInt32), ("FailCount", 0, VT.UInt32),
            ("ReviewCount", 0, VT.UInt32), ("AllowedFolders", [str(p) for p in self.options.allowed], S),
            ("LastRefusal", "", S),
        ]
        for name, value, vtype in station_vars:
            await self._add_var(station, "CellQC.Station", name, value, vtype)
        for name, value, vtype in self._result_values(None):
            await self._add_var(last, "CellQC.LastResult", name, value, vtype)

        string_arg = self._argument
        await root.add_method(
            ua.NodeId("CellQC.Inspect", idx), ua.QualifiedName("Inspect", idx), self._inspect_method,
            [string_arg("path", "absolute path of the volume, inside a folder the station allows"),
             string_arg("cell_id", "the cell's ID (barcode); empty: from the file")],
            [string_arg("verdict", "PASS, FAIL or REVIEW")])
        await root.add_method(
            ua.NodeId("CellQC.SelectRecipe", idx), ua.QualifiedName("SelectRecipe", idx), self._select_recipe_method,
            [string_arg("name", "a recipe of Station/AvailableRecipes")],
            [string_arg("selected", "the recipe now active and its SHA-256")])

        etype = await server.create_custom_event_type(idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, [
            ("Sequence", VT.UInt32), ("InspectionId", VT.Int64), ("CellId", S), ("Verdict", S),
            ("ResultSha256", S), ("ReportPath", S), ("ReportSha256", S), ("ResultJson", S)])
        self._event_gen = await server.get_event_generator(etype, root)
        self.nodes["ResultReadyEventType"] = etype.nodeid

        if newest is not None:  # clients see the newest filed result at once (no event, not counted)
            self._seen = newest
            self._published.add(newest)
            await self._write_result(await asyncio.to_thread(self._snapshot, newest))
        try:
            await server.start()
        except BaseException:  # e.g. the port is taken: leave nothing running
            self.server = None
            self._pool.shutdown(wait=False)
            raise
        self._follower = asyncio.create_task(self._follow_log())

    async def stop(self) -> None:
        """Stop following the log, cancel a running inspection, stop the server."""
        self._cancel.set()
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        if self._job is not None:
            try:
                await self._job
            except Exception:  # noqa: BLE001 - the job reports its own outcome
                pass
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self._pool.shutdown(wait=True)

    # address space helpers ---------------------------------------------------------------
    def _argument(self, name: str, description: str) -> ua.Argument:
        arg = ua.Argument()
        arg.Name = name
        arg.DataType = ua.NodeId(ua.ObjectIds.String)
        arg.ValueRank = -1
        arg.Description = ua.LocalizedText(description)
        return arg

    async def _add_var(self, parent: Any, prefix: str, name: str, value: Any, vtype: Any) -> None:
        node = await parent.add_variable(ua.NodeId(f"{prefix}.{name}", self.idx), ua.QualifiedName(name, self.idx),
                                         ua.Variant(value, vtype))
        self.nodes[f"{prefix}.{name}"] = node.nodeid

    async def _write(self, values: list[tuple[str, Any, Any]], prefix: str) -> None:
        """Write several variables one after the other, without yielding to clients in between."""
        assert self.server is not None
        for name, value, vtype in values:
            await self.server.write_attribute_value(self.nodes[f"{prefix}.{name}"],
                                                    ua.DataValue(ua.Variant(value, vtype)))

    async def _set_state(self, state: str, error: str = "", cell: str = "") -> None:
        S = ua.VariantType.String
        await self._write([("State", state, S), ("MachineVisionState", MACHINE_VISION_STATE[state], S),
                           ("ErrorText", error, S), ("CurrentCellId", cell, S)], "CellQC.Station")

    @staticmethod
    def _result_values(snap: ResultSnapshot | None, sequence: int = 0) -> list[tuple[str, Any, Any]]:
        S, D, VT = ua.VariantType.String, ua.VariantType.Double, ua.VariantType

        def num(value: float | None) -> float:
            return math.nan if value is None else float(value)

        if snap is None:
            ms: tuple[Any, ...] = ()
            fs: tuple[Any, ...] = ()
        else:
            ms, fs = snap.measurements, snap.findings
        return [
            ("InspectionId", 0 if snap is None else snap.inspection_id, VT.Int64),
            ("CellId", "" if snap is None else snap.cell_id, S),
            ("Verdict", "" if snap is None else snap.verdict, S),
            ("AutomatedVerdict", "" if snap is None else snap.automated_verdict, S),
            ("Reasons", [] if snap is None else list(snap.reasons), S),
            ("Recipe", "" if snap is None else snap.recipe, S),
            ("RecipeSha256", "" if snap is None else snap.recipe_sha256, S),
            ("MeasurementNames", [m.name for m in ms], S),
            ("MeasurementValues", [num(m.value) for m in ms], D),
            ("MeasurementUnits", [m.unit for m in ms], S),
            ("MeasurementUncertainties", [num(m.uncertainty) for m in ms], D),
            ("FindingIds", [f.id for f in fs], S),
            ("FindingDetectors", [f.detector for f in fs], S),
            ("FindingSeverities", [f.severity for f in fs], S),
            ("FindingValues", [num(f.value) for f in fs], D),
            ("FindingUnits", [f.unit for f in fs], S),
            ("FindingUncertainties", [num(f.uncertainty) for f in fs], D),
            ("FindingMessages", [f.message for f in fs], S),
            ("ReportPath", "" if snap is None else snap.report_path, S),
            ("ReportSha256", "" if snap is None else snap.report_sha256, S),
            ("ResultSha256", "" if snap is None else snap.result_sha256, S),
            ("FiledAt", "" if snap is None else snap.filed_at, S),
            ("Operator", "" if snap is None else snap.operator, S),
            ("Source", "" if snap is None else snap.source, S),
            ("ResultJson", "" if snap is None else snap.to_json(), S),
            ("Sequence", sequence, VT.UInt32),  # last: a client that sees it changed sees the rest
        ]

    # results ---------------------------------------------------------------------------
    def _snapshot(self, inspection_id: int) -> ResultSnapshot:
        from core.store import open_log

        with open_log(self.options.db_path, recover=False) as db:
            return snapshot_from_log(db, inspection_id)

    async def _write_result(self, snap: ResultSnapshot) -> None:
        self.last = snap
        await self._write(self._result_values(snap, self.sequence), "CellQC.LastResult")

    async def publish(self, inspection_id: int) -> ResultSnapshot | None:
        """Publish a filed inspection once: LastResult, the counters and a ResultReady event.

        Called again for a published inspection that is still LastResult, it refreshes the
        report path and hash (a report filed after the verdict).
        """
        if inspection_id in self._published:
            if self.last is not None and self.last.inspection_id == inspection_id:
                snap = await asyncio.to_thread(self._snapshot, inspection_id)
                if (snap.report_path, snap.report_sha256) != (self.last.report_path, self.last.report_sha256):
                    await self._write_result(snap)
            return None
        self._published.add(inspection_id)
        self._seen = max(self._seen, inspection_id)
        snap = await asyncio.to_thread(self._snapshot, inspection_id)
        self.sequence += 1
        self.counts["inspected"] += 1
        if snap.verdict in self.counts:
            self.counts[snap.verdict] += 1
        await self._write_result(snap)
        U = ua.VariantType.UInt32
        await self._write([("InspectedCount", self.counts["inspected"], U), ("PassCount", self.counts["PASS"], U),
                           ("FailCount", self.counts["FAIL"], U), ("ReviewCount", self.counts["REVIEW"], U)],
                          "CellQC.Station")
        event = self._event_gen.event
        event.Sequence = ua.Variant(self.sequence, U)
        event.InspectionId = ua.Variant(snap.inspection_id, ua.VariantType.Int64)
        event.CellId, event.Verdict = snap.cell_id, snap.verdict
        event.ResultSha256, event.ReportPath, event.ReportSha256 = snap.result_sha256, snap.report_path, snap.report_sha256
        event.ResultJson = snap.to_json()
        event.Severity = SEVERITY.get(snap.verdict, 300)
        await self._event_gen.trigger(message=f"cell {snap.cell_id}: {snap.verdict} (inspection #{snap.inspection_id})")
        return snap

    async def _follow_log(self) -> None:
        """Publish what other processes file into the log (hot folder, GUI, cellqc inspect)."""
        while True:
            await asyncio.sleep(self.options.follow_interval_s)
            if self._job is not None:
                continue  # the running Inspect publishes its own result first
            try:
                ids = await asyncio.to_thread(self._complete_since, self._seen)
                for inspection_id in ids:
                    await self.publish(inspection_id)
                if self.last is not None and not self.last.report_path:
                    await self.publish(self.last.inspection_id)  # its report may have been filed since
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a locked or damaged log: say so, keep serving
                self.note(f"following the log: {type(exc).__name__}: {exc}")

    def _complete_since(self, after: int) -> list[int]:
        from core.store import open_log

        with open_log(self.options.db_path, recover=False) as db:
            return complete_since(db, after)

    # methods ---------------------------------------------------------------------------
    async def _refused(self, method: str, user: User | None, exc: Refusal, n_args: int) -> ua.CallMethodResult:
        who = getattr(user, "name", None) or "anonymous"
        text = f"{datetime.now(UTC).isoformat(timespec='seconds')} {method} by {who}: {exc.text}"
        self.note(f"refused: {text}")
        await self._write([("LastRefusal", text, ua.VariantType.String)], "CellQC.Station")
        res = ua.CallMethodResult()
        res.StatusCode = ua.StatusCode(exc.status)
        res.InputArgumentResults = [
            ua.StatusCode(exc.status if i == exc.argument else ua.StatusCodes.Good) for i in range(n_args)]
        return res

    async def _authorize(self, action: str) -> str:
        """The calling user's name if their role may do ``action`` now (checked in the log again)."""
        from core.store import open_log
        from core.store.users import ACTION_NAMES, PERMISSIONS, PermissionDenied, require_role

        user = CALLER.get()
        roles = " or ".join(PERMISSIONS[action])
        if not isinstance(user, LogUser) or not user.name:
            raise Refusal(ua.StatusCodes.BadUserAccessDenied,
                          f"anonymous clients may only read; {ACTION_NAMES[action]} needs a user of the log "
                          f"({roles}) with the password")

        def check() -> None:
            with open_log(self.options.db_path, recover=False) as db:
                require_role(db, user.name, action)

        try:
            await asyncio.to_thread(check)
        except PermissionDenied as exc:
            raise Refusal(ua.StatusCodes.BadUserAccessDenied, str(exc)) from None
        return user.name

    @staticmethod
    def _text_arg(value: Any, name: str, index: int) -> str:
        value = getattr(value, "Value", value)
        if not isinstance(value, str):
            raise Refusal(ua.StatusCodes.BadInvalidArgument, f"{name} must be a String", index)
        return value

    async def _inspect_method(self, parent: ua.NodeId, path_v: Any, cell_v: Any) -> Any:
        user = CALLER.get()
        try:
            name = await self._authorize("inspect")
            path_text = self._text_arg(path_v, "path", 0)
            cell_id = self._text_arg(cell_v, "cell_id", 1).strip()
            if len(cell_id) > 200 or any(ord(c) < 32 for c in cell_id):
                raise Refusal(ua.StatusCodes.BadInvalidArgument, "cell_id: at most 200 printable characters", 1)
            # From the busy check to taking the station: no await, so no other call can slip in.
            if self._job is not None:
                raise Refusal(ua.StatusCodes.BadInvalidState,
                              "the station is busy with another inspection; call again when State is Idle")
            try:
                path = check_inspect_path(path_text, self.options.allowed)
            except PathRefused as exc:
                raise Refusal(ua.StatusCodes.BadInvalidArgument, str(exc), 0) from None
            except PathMissing as exc:
                raise Refusal(ua.StatusCodes.BadNotFound, str(exc), 0) from None
            self._job = asyncio.ensure_future(self._run_job(path, cell_id, name))
            # Retrieved here too, so that a job whose caller left never logs "never retrieved".
            self._job.add_done_callback(lambda task: task.cancelled() or task.exception())
        except Refusal as exc:
            return await self._refused("Inspect", user, exc, 2)
        try:
            verdict = await asyncio.shield(self._job)  # a client that leaves does not stop the job
        except Refusal as exc:
            return await self._refused("Inspect", user, exc, 2)
        return [ua.Variant(verdict, ua.VariantType.String)]

    async def _run_job(self, path: Path, cell_id: str, user: str) -> str:
        await self._set_state("Busy", cell=cell_id)
        loop = asyncio.get_running_loop()
        try:
            try:
                inspection_id, verdict = await loop.run_in_executor(
                    self._pool, self._inspect_blocking, path, cell_id, user, self.recipe)
            except Cancelled:
                await self._set_state("Idle")
                raise Refusal(ua.StatusCodes.BadShutdown, "the server is stopping; the inspection was cancelled") from None
            except (InputError, RecipeError) as exc:
                await self._set_state("Idle")
                raise Refusal(ua.StatusCodes.BadInvalidArgument, str(exc), 0) from None
            except Exception as exc:  # noqa: BLE001 - a bug: the station says so and stays up
                text = f"internal error: {type(exc).__name__}: {exc}"
                await self._set_state("Error", error=text)
                raise Refusal(ua.StatusCodes.BadInternalError, text) from None
            await self.publish(inspection_id)
            await self._set_state("Idle")
            return verdict
        finally:
            self._job = None

    def _inspect_blocking(self, path: Path, cell_id: str, user: str, recipe: Any) -> tuple[int, str]:
        """In the worker thread: inspect, file JSON/log/PDF, add the audit row of the call."""
        import re

        from core.filing import inspect_and_file
        from core.store import append_audit, open_log

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", cell_id or path.stem).strip("._") or "cell"
        out = self.options.out_dir / f"{stem}-{stamp}"
        inspection, inspection_id = inspect_and_file(
            path, voxel_size=self.options.voxel_size, recipe=recipe, cell_id=cell_id or None,
            json_out=out.with_suffix(".json"), report_out=out.with_suffix(".pdf") if self.options.report else None,
            db_path=self.options.db_path, operator=user, cancel=self._cancel.is_set)
        with open_log(self.options.db_path, recover=False) as db:
            append_audit(db, "plant.inspect", entity="inspections", entity_id=inspection_id, actor=user,
                         details={"channel": "opcua", "endpoint": self.options.endpoint, "path": str(path),
                                  "cell_id": cell_id, "verdict": inspection.verdict, "recipe": recipe.name})
        return int(inspection_id), str(inspection.verdict)

    async def _select_recipe_method(self, parent: ua.NodeId, name_v: Any) -> Any:
        from core.recipe import available_recipes, load_recipe
        from core.store import append_audit, open_log

        user = CALLER.get()
        try:
            actor = await self._authorize("edit_recipe")
            name = self._text_arg(name_v, "name", 0).strip()
            shipped = available_recipes()
            if name not in shipped:
                raise Refusal(ua.StatusCodes.BadNotFound,
                              f"recipe {name[:80]!r}: unknown; this station has {', '.join(shipped)}", 0)
            if self._job is not None:
                raise Refusal(ua.StatusCodes.BadInvalidState,
                              "the station is busy with an inspection; select the recipe when State is Idle")
            try:
                recipe = await asyncio.to_thread(load_recipe, name)
            except RecipeError as exc:
                raise Refusal(ua.StatusCodes.BadConfigurationError, str(exc), 0) from None
            if self._job is not None:  # an Inspect started while the recipe was read
                raise Refusal(ua.StatusCodes.BadInvalidState,
                              "the station is busy with an inspection; select the recipe when State is Idle")
            old = self.recipe

            def audit() -> None:
                with open_log(self.options.db_path, recover=False) as db:
                    append_audit(db, "plant.select_recipe", entity="recipes", entity_id=recipe.name, actor=actor,
                                 details={"channel": "opcua", "old": old.name, "old_sha256": old.sha256,
                                          "new": recipe.name, "new_sha256": recipe.sha256})

            await asyncio.to_thread(audit)  # filed first: if it fails, nothing changed
        except Refusal as exc:
            return await self._refused("SelectRecipe", user, exc, 1)
        self.recipe = recipe
        S = ua.VariantType.String
        await self._write([("ActiveRecipe", recipe.name, S), ("ActiveRecipeSha256", recipe.sha256, S)],
                          "CellQC.Station")
        self.note(f"recipe {recipe.name} selected by {actor}")
        return [ua.Variant(f"{recipe.name} sha256:{recipe.sha256}", S)]


async def serve_until(options: ServeOptions, stop: asyncio.Event, *,
                      note: Callable[[str], None] | None = None) -> None:
    """Run the server until ``stop`` is set."""
    async with StationServer(options, note=note) as station:
        station.note(f"listening on {options.endpoint}; security: {station.security}; log {options.db_path}; "
                     f"allowed folders: {', '.join(map(str, options.allowed)) or 'none (Inspect refused)'}")
        await stop.wait()
