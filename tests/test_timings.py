"""Time per stage in every result, ``cellqc inspect --profile``, progress by the stages (issue 18).

No timing assertion: these check that every stage is there, that the numbers add up, that the
report's hash still matches the log, and that progress moves through the stages in order.
"""

from __future__ import annotations

import json
import random

import pytest

from core.filing import inspect_and_file
from core.recipe import load_recipe
from core.timings import (
    INSPECTION_STAGES,
    StageClock,
    format_profile,
    inspection_seconds,
    profile_rows,
    progress_spans,
    typical_seconds,
)
from qc_app.cli import main

SEED = random.randrange(2**32)


@pytest.fixture(scope="module")
def small_cell(tmp_path_factory):
    """A small generated 18650, its voxel size and slice count drawn at random."""
    from core.io import write_tiff
    from core.phantom import CellSpec, make_cell

    rng = random.Random(SEED)
    spec = CellSpec(kind="18650", voxel_size_um=rng.choice([28.0, 30.0, 32.0]), n_slices=rng.randint(3, 4))
    folder = tmp_path_factory.mktemp("timings")
    return write_tiff(make_cell(spec, seed=rng.randrange(1000), cell_id="TIME-1").volume, folder / "TIME-1.tif")


# ------------------------------------------------------------------------------ the pieces


@pytest.mark.parametrize("seed", range(5))
def test_progress_spans_share_the_interval_in_proportion(seed):
    rng = random.Random(SEED + seed)
    names = [f"s{i}" for i in range(rng.randint(1, 8))]
    weights = {n: rng.uniform(0.01, 50.0) for n in names}
    lo = rng.uniform(0.0, 0.5)
    hi = rng.uniform(lo + 0.01, 1.0)
    spans = progress_spans(names, lo, hi, weights=weights)
    assert list(spans) == names
    assert spans[names[0]][0] == pytest.approx(lo) and spans[names[-1]][1] == pytest.approx(hi)
    for a, b in zip(names, names[1:], strict=False):  # contiguous, in order
        assert spans[a][1] == pytest.approx(spans[b][0])
    total = sum(weights.values())
    for n in names:
        assert spans[n][1] - spans[n][0] == pytest.approx((hi - lo) * weights[n] / total)


def test_unknown_stages_weigh_something_and_inspection_is_the_sum():
    assert typical_seconds("no-such-stage") > 0
    detectors = load_recipe("18650-nmc").detectors
    assert inspection_seconds(detectors) == pytest.approx(
        sum(typical_seconds(s) for s in (*INSPECTION_STAGES, *detectors)))


def test_stage_clock_adds_repeats_and_moves_them_last():
    timings: dict[str, float] = {}
    clock = StageClock(timings)
    for name in ("a", "b", "a"):
        with clock.stage(name):
            pass
    assert list(timings) == ["b", "a"] and all(v >= 0 for v in timings.values())
    with pytest.raises(ZeroDivisionError), clock.stage("c"):  # a failing stage is still timed
        1 / 0  # noqa: B018
    assert "c" in timings
    clock.stamp_total()
    assert timings["total"] >= sum(v for k, v in timings.items() if k != "total")


@pytest.mark.parametrize("seed", range(3))
def test_profile_rows_and_table(seed):
    rng = random.Random(SEED + 100 + seed)
    stages = {f"stage_{i}": rng.uniform(0.0, 20.0) for i in range(rng.randint(1, 9))}
    slack = rng.choice([0.0, rng.uniform(0.01, 3.0)])
    timings = {**stages, "total": sum(stages.values()) + slack}
    rows = profile_rows(timings)
    assert [r[0] for r in rows[:len(stages)]] == list(stages)
    assert (rows[-1][0] == "other") == (slack > 0.0005)
    assert sum(share for _, _, share in rows) == pytest.approx(1.0)
    table = format_profile(timings).splitlines()
    assert table[0].split() == ["stage", "seconds", "share"] and table[-1].split()[0] == "total"
    assert float(table[-1].split()[1]) == pytest.approx(timings["total"], abs=2e-3)
    assert len(table) == len(rows) + 2


# ------------------------------------------------------------------------------ the user's path


@pytest.mark.slow
def test_every_stage_is_timed_and_the_report_still_matches_the_log(tmp_path, small_cell, capsys):
    js, pdf, maps, log = tmp_path / "r.json", tmp_path / "r.pdf", tmp_path / "maps", tmp_path / "log.db"
    code = main(["inspect", str(small_cell), "--json", str(js), "--report", str(pdf), "--maps", str(maps),
                 "--db", str(log), "--profile", "--quiet"])
    assert code in (0, 1, 3)
    err = capsys.readouterr().err
    exported = json.loads(js.read_text(encoding="utf-8"))
    detectors = load_recipe(exported["recipe"]).detectors
    file_timings = exported["timings_s"]
    expected = {"read", "recipe", "geometry", *detectors, "unroll", "merge_verdict", "maps", "report", "total"}
    assert expected <= set(file_timings), expected - set(file_timings)
    assert "json" not in file_timings  # the file cannot hold its own writing
    assert all(v >= 0 for v in file_timings.values())
    assert sum(v for k, v in file_timings.items() if k != "total") <= file_timings["total"] + 1e-6

    from core.store import open_log

    with open_log(log) as db:
        row = db.conn.execute("SELECT id, result_json FROM inspections").fetchone()
    filed = json.loads(row[1])
    # The log's copy stops where the report starts; otherwise the JSON is the filed result.
    assert "report" not in filed["timings_s"] and {"read", "geometry", "maps"} <= set(filed["timings_s"])
    strip = ("timings_s", "audit_head")
    assert {k: v for k, v in exported.items() if k not in strip} == {k: v for k, v in filed.items() if k not in strip}

    # The report's QR code hashes the result the log holds.
    assert main(["report", "--verify", str(pdf), "--db", str(log)]) == 0
    assert capsys.readouterr().out.startswith("MATCH")

    # --profile: every stage on stderr, the JSON's and the log's included, then the total.
    table = {line.split()[0]: line.split() for line in err.strip().splitlines() if line.split()}
    for stage in (*expected - {"total"}, "json", "log"):
        assert stage in table, stage
        assert float(table[stage][1]) >= 0 and table[stage][2].endswith("%")
    assert float(table["total"][1]) >= float(table["geometry"][1])


@pytest.mark.slow
def test_progress_follows_the_stages(small_cell, tmp_path):
    seen: list[tuple[float, str]] = []
    timings: dict[str, float] = {}
    inspection, _ = inspect_and_file(small_cell, json_out=tmp_path / "r.json", recipe="18650-nmc",
                                     progress=lambda f, m: seen.append((f, m)), stage_timings=timings)
    fractions = [f for f, _ in seen]
    assert seen[0][1].startswith("opened TIME-1.tif") and 0.0 <= fractions[0] < 0.05 and fractions[-1] == 1.0
    assert all(b >= a - 1e-12 for a, b in zip(fractions, fractions[1:], strict=False)), "the bar went back"
    assert set(timings) >= {"read", "geometry", "json", "total"}

    # Where each stage's messages fall: inside that stage's share of the bar.
    detectors = load_recipe("18650-nmc").detectors
    outer = progress_spans(["read", "inspection", "json"], weights={"inspection": inspection_seconds()})
    inner = progress_spans([INSPECTION_STAGES[0], INSPECTION_STAGES[1], *detectors, *INSPECTION_STAGES[2:]],
                           *outer["inspection"])
    checked = 0
    for fraction, message in seen:
        owner = "geometry" if message.startswith(("can:", "layers:")) else next(
            (d for d in detectors if message.startswith(d.replace("_", " ") + ":")), None)
        if owner is None:
            continue
        lo, hi = inner[owner]
        assert lo - 1e-9 <= fraction <= hi + 1e-9, (message, fraction, owner, (lo, hi))
        checked += 1
    assert checked >= 2 * inspection.volume.shape[0]  # the can, the layers and the detectors' slices
