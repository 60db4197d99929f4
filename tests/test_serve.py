"""``cellqc serve``: a real OPC UA client (asyncua) against the station started on a free port.

Each test starts the server in its own event loop, on a free local port, over a log with
three users (admin, operator, engineer), and inspects small generated cells (2 slices,
25 µm voxels, a 5 mm can: a few seconds each) written as TIFF into an allowed folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua

from core.errors import InputError
from core.io import write_tiff
from core.phantom import Artifacts, CellSpec, default_defects, make_cell
from core.store import audit_rows, open_log, verify_audit
from core.store.users import add_user
from qc_app.serve import ServeOptions, StationServer

REPO = Path(__file__).resolve().parents[1]
PASSWORDS = {"boss": "boss-secret", "olga": "olga-1234", "erik": "erik-5678"}
#: Long enough for an inspection; asyncua's default (4 s) is for quick requests.
CALL_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_log(path: Path) -> Path:
    with open_log(path) as db:
        add_user(db, "boss", "admin", secret=PASSWORDS["boss"])
        add_user(db, "olga", "operator", secret=PASSWORDS["olga"], actor="boss",
                 actor_secret=PASSWORDS["boss"])
        add_user(db, "erik", "engineer", secret=PASSWORDS["erik"], actor="boss",
                 actor_secret=PASSWORDS["boss"])
    return path


def write_cell(path: Path, cell_id: str, seed: int) -> Path:
    """A small defective cell (random seed) written as an ImageJ TIFF with its voxel size."""
    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=2, can_outer_radius_um=5000.0, anatomy=False,
                    mandrel_radius_um=1500.0)
    cell = make_cell(spec, default_defects(spec, np.random.default_rng(seed)), Artifacts(), seed=seed,
                     cell_id=cell_id)
    write_tiff(cell.volume, path)
    return path


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng()
    scans = tmp_path / "scans"
    scans.mkdir()
    cell_id = f"18650-L3-{rng.integers(10**6):06d}"
    return {"tmp": tmp_path, "db": make_log(tmp_path / "log.db"), "scans": scans, "cell_id": cell_id,
            "cell": write_cell(scans / f"{cell_id}.tif", cell_id, int(rng.integers(1000)))}


@contextlib.asynccontextmanager
async def station(site: dict[str, Any], **overrides: Any) -> AsyncIterator[tuple[StationServer, str, list[str]]]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/cellqc"
    notes: list[str] = []
    options = dict(db_path=site["db"], out_dir=site["tmp"] / "out", endpoint=url, allowed=(site["scans"].resolve(),),
                   follow_interval_s=0.2)
    options.update(overrides)
    async with StationServer(ServeOptions(**options), note=notes.append) as server:
        yield server, url, notes


def client(url: str, user: str | None = None, **kwargs: Any) -> Client:
    c = Client(url, timeout=CALL_TIMEOUT_S, **kwargs)
    if user:
        c.set_user(user)
        c.set_password(PASSWORDS[user])
    return c


async def nodes(c: Client) -> dict[str, Any]:
    ns = await c.get_namespace_index("urn:cellqc")
    root = await c.nodes.objects.get_child(f"{ns}:CellQC")
    return {"ns": ns, "root": root, "station": await root.get_child(f"{ns}:Station"),
            "last": await root.get_child(f"{ns}:LastResult")}


async def read(n: dict[str, Any], where: str, name: str) -> Any:
    return await (await n[where].get_child(f"{n['ns']}:{name}")).read_value()


async def call(n: dict[str, Any], method: str, *args: str) -> Any:
    return await n["root"].call_method(f"{n['ns']}:{method}", *args)


async def refused(n: dict[str, Any], method: str, *args: str) -> str:
    """The status name of a refused call (fails the test if the call was accepted)."""
    with pytest.raises(ua.UaStatusCodeError) as info:
        await call(n, method, *args)
    return type(info.value).__name__


class Events:
    """Collects ResultReady events of one subscription."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def event_notification(self, event: Any) -> None:
        self.queue.put_nowait(event)

    async def next(self, timeout: float = 120.0) -> Any:
        return await asyncio.wait_for(self.queue.get(), timeout)


async def subscribe(c: Client, n: dict[str, Any]) -> Events:
    handler = Events()
    etype = await c.nodes.base_event_type.get_child(f"{n['ns']}:ResultReadyEventType")
    sub = await c.create_subscription(50, handler)
    await sub.subscribe_events(n["root"], etype)
    return handler


def log_counts(db: Path) -> tuple[int, int]:
    with open_log(db) as d:
        return d["inspections"].count, d["audit"].count


# ------------------------------------------------------------------------------ tests


@pytest.mark.slow
def test_address_space_contract_and_anonymous_reading(site: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with station(site) as (server, url, notes), client(url) as anon:
            n = await nodes(anon)
            names = {(await c.read_browse_name()).Name for c in await n["root"].get_children()}
            assert {"Station", "LastResult", "Inspect", "SelectRecipe"} <= names
            station_names = {(await c.read_browse_name()).Name for c in await n["station"].get_children()}
            assert {"State", "MachineVisionState", "ErrorText", "ActiveRecipe", "SoftwareVersion", "InspectedCount",
                    "PassCount", "FailCount", "ReviewCount"} <= station_names
            last_names = {(await c.read_browse_name()).Name for c in await n["last"].get_children()}
            assert {"CellId", "Verdict", "Reasons", "MeasurementNames", "MeasurementValues", "MeasurementUnits",
                    "MeasurementUncertainties", "ReportPath", "ReportSha256", "InspectionId", "ResultJson",
                    "Sequence"} <= last_names
            inspect = await n["root"].get_child(f"{n['ns']}:Inspect")
            args = await (await inspect.get_child("0:InputArguments")).read_value()
            outs = await (await inspect.get_child("0:OutputArguments")).read_value()
            assert [a.Name for a in args] == ["path", "cell_id"] and [a.Name for a in outs] == ["verdict"]
            assert await read(n, "station", "State") == "Idle"
            assert await read(n, "station", "MachineVisionState") == "Ready"
            assert await read(n, "station", "ActiveRecipe") == "18650-nmc"
            # Stable string node ids: what a PLC configures.
            state = anon.get_node(f"ns={n['ns']};s=CellQC.Station.State")
            assert await state.read_value() == "Idle"
            # Read-only for everyone: a write is refused and changes nothing.
            with pytest.raises(ua.UaStatusCodeError):
                await state.write_value("Busy")
            assert await state.read_value() == "Idle"
            before = log_counts(site["db"])
            assert await refused(n, "Inspect", str(site["cell"]), site["cell_id"]) == "BadUserAccessDenied"
            assert await refused(n, "SelectRecipe", "21700-nmc") == "BadUserAccessDenied"
            assert "anonymous clients may only read" in await read(n, "station", "LastRefusal")
            assert log_counts(site["db"]) == before
            # A wrong password is no session at all.
            bad = Client(url, timeout=10)
            bad.set_user("olga")
            bad.set_password("not-her-password")
            with pytest.raises(Exception):  # noqa: B017 - asyncua raises BadUserAccessDenied or a connection error
                await bad.connect()
            assert any("unknown user or wrong password" in note for note in notes)

    asyncio.run(scenario())


@pytest.mark.slow
def test_inspect_gives_verdict_event_and_last_result(site: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with station(site) as (server, url, notes), client(url) as watcher, client(url, "olga") as olga, \
                client(url, "erik") as erik:
            nw, no, ne = await nodes(watcher), await nodes(olga), await nodes(erik)
            events = await subscribe(watcher, nw)
            call_task = asyncio.create_task(call(no, "Inspect", str(site["cell"]), site["cell_id"]))
            # The server keeps answering while the inspection runs; a second Inspect is refused.
            states = set()
            while not call_task.done() and "Busy" not in states:
                states.add(await read(nw, "station", "State"))
                await asyncio.sleep(0.02)
            assert "Busy" in states
            assert await read(nw, "station", "CurrentCellId") == site["cell_id"]
            assert await read(nw, "station", "MachineVisionState") == "SingleExecution"
            assert await refused(ne, "Inspect", str(site["cell"]), "ANOTHER") == "BadInvalidState"
            assert await refused(ne, "SelectRecipe", "21700-nmc") == "BadInvalidState"
            verdict = await call_task
            event = await events.next()
            assert await read(nw, "station", "State") == "Idle"
            with open_log(site["db"]) as db:
                rows = list(db.query("SELECT * FROM inspections"))
                assert len(rows) == 1  # the refused second Inspect filed nothing
                row = rows[0]
                report = list(db.query("SELECT * FROM reports WHERE inspection_id = ?", [row["id"]]))[0]
                assert verify_audit(db) is None
                plant = [r for r in audit_rows(db) if r["action"] == "plant.inspect"]
            assert verdict == row["verdict"] and row["operator"] == "olga" and row["cell_id"] == site["cell_id"]
            assert (event.CellId, event.Verdict, event.InspectionId) == (site["cell_id"], verdict, row["id"])
            assert event.ReportSha256 == report["sha256"] and event.ResultSha256 == row["result_sha256"]
            last = {name: await read(nw, "last", name) for name in (
                "CellId", "Verdict", "InspectionId", "ReportPath", "ReportSha256", "ResultSha256", "Sequence",
                "MeasurementNames", "MeasurementValues", "MeasurementUnits", "MeasurementUncertainties",
                "Reasons", "FindingIds", "ResultJson")}
            assert (last["CellId"], last["Verdict"], last["InspectionId"]) == (site["cell_id"], verdict, row["id"])
            assert last["Sequence"] == event.Sequence == 1
            import hashlib
            import json

            assert hashlib.sha256(Path(last["ReportPath"]).read_bytes()).hexdigest() == last["ReportSha256"]
            result = json.loads(row["result_json"])
            # Every numeric metric, also one not measured on this cell (NaN): the same names every time.
            metrics = {k: v for k, v in result["metrics"].items() if v is None or (isinstance(v, (int, float))
                       and not isinstance(v, bool))}
            nan_at = [i for i, name in enumerate(sorted(metrics)) if metrics[name] is None]
            assert last["MeasurementNames"] == sorted(metrics)
            assert len(last["MeasurementValues"]) == len(last["MeasurementUnits"]) == \
                len(last["MeasurementUncertainties"]) == len(metrics)
            assert all(np.isnan(last["MeasurementValues"][i]) for i in nan_at)
            i = last["MeasurementNames"].index("collector_deflection_max_um")
            assert last["MeasurementUnits"][i] == "µm"
            assert last["MeasurementValues"][i] == pytest.approx(metrics["collector_deflection_max_um"])
            assert last["Reasons"] == result["reasons"]
            assert last["FindingIds"] == [f["id"] for f in result["findings"]]
            assert json.loads(last["ResultJson"])["inspection_id"] == row["id"]
            counts = {k: await read(nw, "station", f"{k}Count") for k in ("Inspected", "Pass", "Fail", "Review")}
            assert counts["Inspected"] == 1 and counts[verdict.title()] == 1 and sum(counts.values()) == 2
            assert len(plant) == 1 and plant[0]["actor"] == "olga"
            assert json.loads(plant[0]["details"])["path"] == str(site["cell"].resolve())

    asyncio.run(scenario())


@pytest.mark.slow
def test_refusals_change_nothing_and_recipe_needs_an_engineer(site: dict[str, Any]) -> None:
    outside = site["tmp"] / "elsewhere"
    outside.mkdir()
    secret = write_cell(outside / "secret.tif", "SECRET", 3)
    (site["scans"] / "link.tif").symlink_to(secret)

    async def scenario() -> None:
        async with station(site) as (server, url, notes), client(url, "olga") as olga, \
                client(url, "erik") as erik:
            no, ne = await nodes(olga), await nodes(erik)
            before = log_counts(site["db"])
            for path in (str(secret), str(site["scans"] / "link.tif"), f"{site['scans']}/../elsewhere/secret.tif",
                         "scans/" + site["cell"].name, str(site["scans"])):
                assert await refused(no, "Inspect", path, "X") == "BadInvalidArgument", path
                assert "outside the folders" in await read(no, "station", "LastRefusal") or \
                    "absolute path" in await read(no, "station", "LastRefusal")
            assert await refused(no, "Inspect", str(site["scans"] / "missing.tif"), "X") == "BadNotFound"
            (site["scans"] / "broken.tif").write_bytes(b"II*\x00 not a whole TIFF")
            assert await refused(no, "Inspect", str(site["scans"] / "broken.tif"), "X") == "BadInvalidArgument"
            assert await read(no, "station", "State") == "Idle"
            assert await refused(no, "SelectRecipe", "21700-nmc") == "BadUserAccessDenied"
            assert await refused(ne, "SelectRecipe", "no-such-recipe") == "BadNotFound"
            assert await refused(ne, "SelectRecipe", "/etc/passwd") == "BadNotFound"
            assert log_counts(site["db"]) == before  # nothing filed, nothing audited
            assert await read(ne, "station", "ActiveRecipe") == "18650-nmc"
            selected = await call(ne, "SelectRecipe", "21700-nmc")
            assert selected.startswith("21700-nmc sha256:")
            assert await read(no, "station", "ActiveRecipe") == "21700-nmc"
            with open_log(site["db"]) as db:
                rows = [r for r in audit_rows(db) if r["action"] == "plant.select_recipe"]
                assert len(rows) == 1 and rows[0]["actor"] == "erik" and verify_audit(db) is None
        # No allowed folders: every path is refused.
        async with station(site, allowed=()) as (server, url, notes), client(url, "olga") as olga:
            assert await refused(await nodes(olga), "Inspect", str(site["cell"]), "X") == "BadInvalidArgument"
            assert "--allow" in await read(await nodes(olga), "station", "LastRefusal")

    asyncio.run(scenario())


CRASHING_CLIENT = """
import asyncio, os, sys
from asyncua import Client
async def main():
    c = Client(sys.argv[1], timeout=300)
    c.set_user("olga"); c.set_password(os.environ["OLGA_PASSWORD"])
    await c.connect()
    ns = await c.get_namespace_index("urn:cellqc")
    root = await c.nodes.objects.get_child(f"{ns}:CellQC")
    print("calling", flush=True)
    await root.call_method(f"{ns}:Inspect", sys.argv[2], sys.argv[3])
asyncio.run(main())
"""


@pytest.mark.slow
def test_client_that_disconnects_mid_call(site: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with station(site) as (server, url, notes), client(url) as watcher:
            n = await nodes(watcher)
            events = await subscribe(watcher, n)
            proc = subprocess.Popen([sys.executable, "-c", CRASHING_CLIENT, url, str(site["cell"]), site["cell_id"]],
                                    env={**os.environ, "OLGA_PASSWORD": PASSWORDS["olga"]}, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            try:
                assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "calling"
                for _ in range(3000):
                    if await read(n, "station", "State") == "Busy":
                        break
                    await asyncio.sleep(0.02)
                assert await read(n, "station", "State") == "Busy"
                proc.kill()  # the client dies mid-call: no CloseSession, the socket just goes
            finally:
                proc.kill()
                await asyncio.to_thread(proc.wait)
            event = await events.next()  # the inspection still finishes, is filed and published
            assert event.CellId == site["cell_id"]
            assert await read(n, "station", "State") == "Idle"
            with open_log(site["db"]) as db:
                assert [r["status"] for r in db.query("SELECT status FROM inspections")] == ["complete"]
            # And the station takes the next call.
            async with client(url, "erik") as erik:
                assert (await call(await nodes(erik), "SelectRecipe", "21700-nmc")).startswith("21700-nmc")

    asyncio.run(scenario())


@pytest.mark.slow
def test_hot_folder_results_are_published(site: dict[str, Any]) -> None:
    from qc_app.cli import main

    hot = site["tmp"] / "hot"
    hot.mkdir()
    write_cell(hot / "hot-cell.tif", "HOT-7", 5)
    (hot / "hot-cell.tif.done").write_text("")
    password_file = site["tmp"] / "olga.pw"
    password_file.write_text(PASSWORDS["olga"] + "\n")

    async def scenario() -> None:
        async with station(site) as (server, url, notes), client(url) as watcher:
            n = await nodes(watcher)
            events = await subscribe(watcher, n)
            code = await asyncio.to_thread(main, [
                "watch", str(hot), "--once", "--marker", ".done", "--db", str(site["db"]), "--no-report",
                "--user", "olga", "--password-file", str(password_file)])
            assert code in (0, 1, 3)
            event = await events.next()
            assert event.CellId == "HOT-7"
            assert await read(n, "last", "CellId") == "HOT-7"
            assert await read(n, "last", "Operator") == "olga"
            assert await read(n, "station", "InspectedCount") == 1

    asyncio.run(scenario())


@pytest.mark.slow
def test_docs_client_example_runs(site: dict[str, Any]) -> None:
    """The ten-line client of docs/plant_integration.md, run as written against a live station."""
    doc = (REPO / "docs" / "plant_integration.md").read_text(encoding="utf-8")
    example = re.search(r"<!-- client-example -->\s*```python\n(.*?)```", doc, re.S).group(1)
    assert len([line for line in example.splitlines() if line.strip()]) <= 11

    async def scenario() -> None:
        async with station(site) as (server, url, notes):
            code = example.replace("opc.tcp://127.0.0.1:4840/cellqc", url)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, str(site["cell"]), site["cell_id"],
                env={**os.environ, "CELLQC_USER": "olga", "CELLQC_PASSWORD": PASSWORDS["olga"]},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 300)
            assert proc.returncode == 0, err.decode()[-2000:]
            with open_log(site["db"]) as db:
                verdict = db.conn.execute("SELECT verdict FROM inspections").fetchone()[0]
            assert out.decode().split() == [site["cell_id"], verdict]

    asyncio.run(scenario())


@pytest.mark.slow
def test_encrypted_endpoint_with_created_certificate(site: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.plant import certificate_summary, create_certificate
    from qc_app.cli import main

    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    assert main(["serve", "--create-certificate", "--hostname", "cellqc-line3.example"]) == 0
    cert, key = tmp_path / "home" / "opcua" / "server_cert.der", tmp_path / "home" / "opcua" / "server_key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    info = certificate_summary(cert)
    assert any(name.startswith("urn:cellqc:station:") for name in info["alternative_names"])
    assert "cellqc-line3.example" in info["alternative_names"]
    assert main(["serve", "--create-certificate"]) == 2  # never overwritten silently
    client_cert, client_key = create_certificate(tmp_path / "client.der", tmp_path / "client.pem",
                                                 application_uri="urn:cellqc:test-client", hostnames=["localhost"])

    async def scenario() -> None:
        async with station(site, certificate=cert, private_key=key, require_encryption=True) as (server, url, _):
            secure = client(url, "erik")
            await secure.set_security_string(f"Basic256Sha256,SignAndEncrypt,{client_cert},{client_key}")
            secure.application_uri = "urn:cellqc:test-client"
            async with secure:
                n = await nodes(secure)
                assert await read(n, "station", "State") == "Idle"
                assert (await call(n, "SelectRecipe", "21700-nmc")).startswith("21700-nmc")
            endpoints = await Client(url).connect_and_get_server_endpoints()
            assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}
            assert {e.SecurityPolicyUri.rsplit("#", 1)[-1] for e in endpoints} == {"Basic256Sha256"}
            with pytest.raises(Exception):  # noqa: B017 - no unencrypted endpoint to talk to
                async with Client(url, timeout=10) as plain:
                    await plain.nodes.objects.get_children()

    asyncio.run(scenario())


def test_plant_network_needs_a_certificate(site: dict[str, Any]) -> None:
    options = ServeOptions(db_path=site["db"], out_dir=site["tmp"] / "out", endpoint="opc.tcp://10.1.2.3:4840/cellqc")
    with pytest.raises(InputError, match="needs a certificate"):
        StationServer(options)
    with pytest.raises(InputError, match="OPC UA endpoint"):
        StationServer(ServeOptions(db_path=site["db"], out_dir=site["tmp"], endpoint="http://x/cellqc"))


def test_cli_refuses_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qc_app.cli import main

    for args in (["--allow", str(tmp_path / "missing")], ["--endpoint", "http://example/cellqc"],
                 ["--endpoint", "opc.tcp://192.0.2.7:4840/cellqc"], ["--certificate", str(tmp_path / "c.der")],
                 ["--follow-interval", "0"]):
        assert main(["serve", "--db", str(tmp_path / "log.db"), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("cellqc: error:"), err
