"""One declaration per detector: the recipe schema, the result's limits, the chunk merge, the
finding ids and the names people read are built from it, and it agrees with the shipped recipes."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from core.chunked import merge_metrics, metric_merges
from core.detectors import DETECTORS, SPECS, DetectorOutput, Finding, register, specs
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule
from core.errors import RecipeError
from core.inspect import assign_ids, limits_table
from core.recipe import (
    DEFAULT_RECIPE,
    RECIPES_DIR,
    available_recipes,
    load_recipe,
    recipe_from_dict,
    recipe_schema,
)

TOY = "toy_bubbles"


def _toy_spec(rng: np.random.Generator) -> DetectorSpec:
    # Randomised defaults and ranges: nothing below can pass by knowing the numbers.
    review = float(rng.uniform(1.0, 50.0))
    fail = review + float(rng.uniform(1.0, 50.0))
    return DetectorSpec(
        name=TOY,
        label="Bubbles in the electrolyte",
        value_name="bubble diameter",
        prefix="B",
        order=50,
        merge_gap_um=float(rng.uniform(100.0, 900.0)),
        speaks_for=-1,  # speaks before every shipped detector at one place
        rules={
            "review_um": Rule(review, 0.0, 500.0, "µm", "A bubble this large is for review."),
            "fail_um": Rule(fail, 0.0, 500.0, "µm", "A bubble this large fails."),
            "spread": Rule(None, 0.0, 1.0, "", "Optional; not applied when absent."),
        },
        ordered=(("review_um", "fail_um"),),
        limits={"toy_bubble_max_um": Limit("Largest bubble", "Diameter of the largest bubble.", "µm",
                                           review="review_um", fail="fail_um")},
        # Names that follow no naming convention: only the declaration says how they merge.
        metrics={
            "toy_bubbles_seen": Metric("sum", "Bubbles (findings)"),
            "toy_quietest": Metric("min", "Quietest bubble", "µm"),
            "toy_loudest": Metric("max", "Loudest bubble", "µm"),
            "toy_level": Metric("mean", "Bubble level", "µm"),
        },
    )


@pytest.fixture
def toy(request):
    """A detector declared and registered in this test file only, removed afterwards."""
    seed = int(np.random.default_rng().integers(1 << 31))
    spec = _toy_spec(np.random.default_rng(seed))

    @register(spec)
    def detect(ctx):
        return DetectorOutput()

    yield spec
    DETECTORS.pop(TOY, None)
    SPECS.pop(TOY, None)


def _recipe_data(extra_rules: dict | None = None, enabled: list[str] | None = None) -> dict:
    data = tomllib.loads((RECIPES_DIR / f"{DEFAULT_RECIPE}.toml").read_text(encoding="utf-8"))
    if extra_rules is not None:
        data["rules"][TOY] = extra_rules
    if enabled is not None:
        data["detectors"]["enabled"] = enabled
    return data


def test_a_detector_declared_in_one_place_reaches_schema_limits_merge_ids_and_names(toy):
    from core import describe

    # Recipe schema: its section, its ranges.
    schema = recipe_schema()
    assert schema[f"rules.{TOY}"] == {"review_um": (float, 0.0, 500.0), "fail_um": (float, 0.0, 500.0),
                                      "spread": (float, 0.0, 1.0)}
    review = toy.rules["review_um"].default
    given_fail = review + 7.0
    recipe = recipe_from_dict(_recipe_data({"fail_um": given_fail}, [TOY, "delamination"]), source="toy.toml")
    assert recipe.detectors == [TOY, "delamination"]
    # The rule given is the recipe's; the one absent is the declared default; no default, no key.
    assert recipe.rules[TOY] == {"review_um": review, "fail_um": given_fail}
    with pytest.raises(RecipeError) as bad:
        recipe_from_dict(_recipe_data({"fail_um": 900.0}), source="toy.toml")
    assert str(bad.value).count("\n") == 0 and f"[rules.{TOY}] fail_um = 900.0 is outside 0.0…500.0" in str(bad.value)
    with pytest.raises(RecipeError, match=rf"\[rules.{TOY}\] review_um is above fail_um"):
        recipe_from_dict(_recipe_data({"review_um": 40.0, "fail_um": 30.0}), source="toy.toml")
    with pytest.raises(RecipeError, match=rf"\[rules.{TOY}\] unknown key\(s\): loudness"):
        recipe_from_dict(_recipe_data({"loudness": 1.0}), source="toy.toml")

    # The result's limits.
    limits = limits_table(recipe)
    assert limits["toy_bubble_max_um"] == {"review": review, "fail": given_fail, "unit": "µm"}
    assert "void_max_volume_mm3" in limits  # the shipped ones still there

    # The chunk merge, by declaration.
    merged = merge_metrics([({"toy_bubbles_seen": 4, "toy_quietest": 3.0, "toy_loudest": 9.0, "toy_level": 10.0}, 1.0, 0.5),
                            ({"toy_bubbles_seen": 2, "toy_quietest": 5.0, "toy_loudest": 7.0, "toy_level": 20.0}, 3.0, 1.0)])
    assert merged == {"toy_bubbles_seen": 4, "toy_quietest": 3.0, "toy_loudest": 9.0, "toy_level": 17.5}
    assert metric_merges()["toy_loudest"].merge == "max"

    # Finding ids by its prefix.
    def finding(det):
        return Finding(det, "review", (0.0, 0.0, 0.0), (0, 0, 0, 1, 1, 1), 1.0, "µm", "")

    found = [finding(TOY), finding("delamination"), finding(TOY), finding("winding_quality")]
    assign_ids(found)
    assert [f.id for f in found] == ["B1", "D1", "B2", "F1"]

    # Parts of one defect: merged within its declared gap, kept apart beyond it (20 µm voxels).
    from core.findings import merge_parts, speaks_for

    gap_vox = toy.merge_gap_um / 20.0
    near, far = int(gap_vox * 0.8), int(gap_vox * 1.2) + 2

    def part(x0):
        return Finding(TOY, "review", (5.0, 5.0, x0 + 2.0), (0, 0, x0, 10, 10, x0 + 4), 3.0, "µm", "")

    assert len(merge_parts([part(0), part(4 + near)], (20.0, 20.0, 20.0))) == 1
    assert len(merge_parts([part(0), part(4 + far)], (20.0, 20.0, 20.0))) == 2
    assert len(merge_parts([part(0), part(4 + near)], (20.0, 20.0, 20.0), {TOY: {"merge_gap_um": 0.0}})) == 2
    assert speaks_for(TOY) < min(speaks_for(s.name) for s in specs() if s.name != TOY)

    # The names the report and the GUI read.
    assert describe.DETECTOR_LABELS[TOY] == "Bubbles in the electrolyte"
    assert describe.finding_label({"detector": TOY}) == "Bubbles in the electrolyte"
    assert describe.CHECKS["toy_bubble_max_um"] == (TOY, "Largest bubble", "Diameter of the largest bubble.")
    assert describe.metric_label("toy_quietest") == ("Quietest bubble", "µm")


def test_a_declaration_naming_undeclared_rules_is_refused():
    spec = DetectorSpec(name="broken", label="x", value_name="x", rules={"fail_um": Rule(1.0)},
                        limits={"x_max": Limit("x", "x", "µm", review="review_um", fail="fail_um")})
    with pytest.raises(ValueError, match="undeclared rules"):
        register(spec)
    assert "broken" not in SPECS
    with pytest.raises(ValueError, match="unknown merge"):
        Metric("median")


def test_every_shipped_detector_is_declared_consistently():
    assert set(SPECS) == set(DETECTORS) and len(SPECS) == 7
    prefixes = [s.prefix for s in specs() if s.prefix != "F"]
    assert len(prefixes) == len(set(prefixes))
    metric_owner: dict[str, str] = {}
    for spec in specs():
        assert spec.label and spec.value_name
        for key, rule in spec.rules.items():
            assert rule.help, (spec.name, key)
            if rule.default is not None:  # a default the recipe validation would accept
                assert (rule.lo is None or rule.default >= rule.lo) and (rule.hi is None or rule.default <= rule.hi)
        for review_key, fail_key in spec.ordered:
            r, f = spec.rules[review_key].default, spec.rules[fail_key].default
            assert r is None or f is None or r <= f, (spec.name, review_key)
        for key, metric in spec.metrics.items():
            assert key not in metric_owner, (key, spec.name, metric_owner.get(key))
            metric_owner[key] = spec.name
            for other in metric.of:
                assert other in spec.metrics, (spec.name, key, other)
        assert spec.limits or spec.check, spec.name  # the checks table has a row for it


@pytest.mark.parametrize("name", available_recipes())
def test_shipped_recipes_agree_with_the_registry(name):
    raw = tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    recipe = load_recipe(name)
    # Every detector is enabled and has its section; every key set is declared.
    assert sorted(recipe.detectors) == sorted(SPECS)
    assert set(raw["rules"]) == set(SPECS)
    for det, values in raw["rules"].items():
        assert set(values) <= set(SPECS[det].rules), (det, set(values) - set(SPECS[det].rules))
        # In force: the recipe's value, else the declared default.
        for key, rule in SPECS[det].rules.items():
            expected = values.get(key, rule.default)
            if expected is None:
                assert key not in recipe.rules[det]
            else:
                assert recipe.rules[det][key] == pytest.approx(float(expected)), (det, key)


def test_the_default_recipe_states_the_declared_defaults():
    """The design's default rules (DESIGN.md) are the declarations' defaults and the default
    recipe's values: where both give one, they are the same number."""
    raw = tomllib.loads((RECIPES_DIR / f"{DEFAULT_RECIPE}.toml").read_text(encoding="utf-8"))
    compared = 0
    for spec in specs():
        for key, rule in spec.rules.items():
            if rule.default is not None and key in raw["rules"][spec.name]:
                assert math.isclose(float(raw["rules"][spec.name][key]), float(rule.default)), (spec.name, key)
                compared += 1
    assert compared >= 20


def test_a_rule_absent_from_a_recipe_takes_its_declared_default():
    rng = np.random.default_rng()
    data = _recipe_data()
    dropped = []
    for spec in specs():
        keys = [k for k, r in spec.rules.items() if r.default is not None and k in data["rules"][spec.name]]
        for key in rng.choice(keys, size=min(len(keys), 2), replace=False) if keys else []:
            del data["rules"][spec.name][str(key)]
            dropped.append((spec.name, str(key)))
    recipe = recipe_from_dict(data, source="partial.toml")
    for det, key in dropped:
        assert recipe.rules[det][key] == SPECS[det].rules[key].default


def test_limits_of_the_shipped_recipes_are_their_rules():
    for name in available_recipes():
        recipe = load_recipe(name)
        limits = limits_table(recipe)
        raw = tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text(encoding="utf-8"))["rules"]
        assert limits["collector_deflection_max_um"]["fail"] == raw["collector_deflection"]["fail_um"]
        assert limits["void_max_volume_mm3"]["review"] == raw["delamination"]["review_volume_mm3"]
        assert limits["cathode_thickness_max_deviation_pct"]["fail"] == pytest.approx(
            100 * raw["electrode_thickness"]["fail_deviation"])
        assert limits["foreign_particle_max_diameter_um"] == {
            "review": None, "fail": raw["foreign_particle"]["fail_diameter_um"], "unit": "µm"}
