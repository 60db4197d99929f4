"""Inspection recipes (TOML): the cell description, which detectors run, and the verdict rules.

A recipe is an engineer-editable TOML file (see ``resources/recipes/``). Loading validates
every key and value and fails with one clear line naming the file, the key and the problem.
The SHA-256 of the file's bytes goes with every result, so a verdict can always be traced
to the exact rules that produced it.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RecipeError
from resources import RESOURCES_DIR

RECIPES_DIR = RESOURCES_DIR / "recipes"
DEFAULT_RECIPE = "18650-nmc"

# The cell description's keys with their type and allowed range (None = unbounded). The
# ``[rules.<detector>]`` sections come from the detectors' declarations (:func:`recipe_schema`).
_CELL_SCHEMA: dict[str, tuple[type, float | None, float | None]] = {
    "can_outer_diameter_mm": (float, 5.0, 60.0),
    "can_wall_um": (float, 20.0, 2000.0),
    "cu_foil_um": (float, 1.0, 50.0),
    "al_foil_um": (float, 1.0, 50.0),
    "cathode_sheet_um": (float, 20.0, 500.0),
    "pitch_min_um": (float, 50.0, 2000.0),
    "pitch_max_um": (float, 50.0, 3000.0),
    "max_can_wall_um": (float, 50.0, 5000.0),
}


def recipe_schema() -> dict[str, dict[str, tuple[type, float | None, float | None]]]:
    """Every known key of a recipe, by section, with its type and allowed range (None: unbounded).

    ``cell`` is the cell description; each registered detector adds ``rules.<name>`` from its
    declaration (:class:`core.detectors.spec.DetectorSpec`), in the order of
    :func:`core.detectors.base.specs`.
    """
    from core.detectors import specs

    schema = {"cell": dict(_CELL_SCHEMA)}
    for spec in specs():
        schema[f"rules.{spec.name}"] = {key: (rule.type, rule.lo, rule.hi) for key, rule in spec.rules.items()}
    return schema


@dataclass
class Recipe:
    """A validated recipe.

    Attributes
    ----------
    name, description : str
    cell : dict
        Cell description (µm, mm).
    detectors : list of str
        Names of the detectors to run, in order.
    rules : dict
        Per-detector thresholds in force, e.g. ``rules["collector_deflection"]["fail_um"]``: the
        recipe's values, and the declared default of every rule the recipe does not give
        (:meth:`core.detectors.spec.DetectorSpec.rules_for`; a rule without a default is absent).
    source : str
        The file it came from.
    sha256 : str
        Hash of the file's bytes.
    """

    name: str
    description: str
    cell: dict[str, Any]
    detectors: list[str]
    rules: dict[str, dict[str, float]]
    source: str = ""
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def rule(self, detector: str, key: str, default: float | None = None) -> float | None:
        return self.rules.get(detector, {}).get(key, default)


def available_recipes() -> list[str]:
    """Names of the recipes shipped with cellqc."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def resolve_recipe_path(name_or_path: str | Path | None) -> Path:
    """A shipped recipe's name (``18650-nmc``) or a path to a TOML file."""
    if name_or_path is None:
        name_or_path = DEFAULT_RECIPE
    candidate = Path(name_or_path)
    if candidate.suffix.lower() == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise RecipeError(candidate, "recipe file not found")
        return candidate
    shipped = RECIPES_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = ", ".join(available_recipes())
        raise RecipeError(name_or_path, f"unknown recipe; shipped recipes are: {names}")
    return shipped


def load_recipe(name_or_path: str | Path | None = None) -> Recipe:
    """Load and validate a recipe.

    Raises
    ------
    RecipeError
        Missing file, TOML syntax error, unknown key, wrong type, value out of range,
        inconsistent thresholds (review above fail) or unknown detector.
    """
    path = resolve_recipe_path(name_or_path)
    try:
        data_bytes = path.read_bytes()
        text = data_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(path, f"cannot read recipe: {exc}") from None
    data = parse_recipe_toml(text, path)
    return recipe_from_dict(data, source=str(path), sha256=hashlib.sha256(data_bytes).hexdigest())


#: Deepest nesting of tables/arrays a recipe may have (the shipped ones use 3).
MAX_RECIPE_DEPTH = 8
#: Largest recipe text accepted (characters).
MAX_RECIPE_CHARS = 1_000_000


def parse_recipe_toml(text: str, source: object) -> dict[str, Any]:
    """Parse a recipe's TOML text, bounded in size and nesting depth.

    Raises
    ------
    RecipeError
        Naming ``source`` (the recipe file): too large, a TOML syntax error, or nested deeper
        than :data:`MAX_RECIPE_DEPTH` (100 000 nested arrays would otherwise exhaust
        Python's recursion limit inside the parser).
    """
    if len(text) > MAX_RECIPE_CHARS:
        raise RecipeError(source, f"recipe is {len(text)} characters; at most {MAX_RECIPE_CHARS} are read")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(source, f"TOML syntax error: {exc}") from None
    except RecursionError:
        raise RecipeError(source, f"nested deeper than {MAX_RECIPE_DEPTH} levels") from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_RECIPE_DEPTH:
            raise RecipeError(source, f"nested deeper than {MAX_RECIPE_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return data


def recipe_from_dict(data: dict[str, Any], source: str = "recipe", sha256: str = "") -> Recipe:
    """Validate a parsed recipe; see :func:`load_recipe`."""
    from core.detectors import DETECTORS, SPECS

    head = data.get("recipe", {})
    if not isinstance(head, dict) or not isinstance(head.get("name"), str) or not head["name"]:
        raise RecipeError(source, "[recipe] name is missing")
    known_top = {"recipe", "cell", "detectors", "rules"}
    unknown = set(data) - known_top
    if unknown:
        raise RecipeError(source, f"unknown section(s): {', '.join(sorted(unknown))}")

    def section(path: str) -> dict[str, Any]:
        node: Any = data
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            raise RecipeError(source, f"[{path}] must be a table")
        return node

    rules_table = data.get("rules", {})
    if not isinstance(rules_table, dict):
        raise RecipeError(source, "[rules] must be a table")
    schema = recipe_schema()
    known_rules = {sec.split(".", 1)[1] for sec in schema if sec.startswith("rules.")}
    unknown_rules = set(rules_table) - known_rules
    if unknown_rules:
        raise RecipeError(source, f"unknown key(s) in [rules]: {', '.join(sorted(unknown_rules))}; "
                                  f"known: {', '.join(sorted(known_rules))}")
    checked: dict[str, dict[str, float]] = {}
    for sec, keys in schema.items():
        values = section(sec)
        extra = set(values) - set(keys) - ({"kind"} if sec == "cell" else set())
        if extra:
            raise RecipeError(source, f"[{sec}] unknown key(s): {', '.join(sorted(extra))}")
        out: dict[str, float] = {}
        for key, (typ, lo, hi) in keys.items():
            if key not in values:
                continue
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RecipeError(source, f"[{sec}] {key} must be a number, got {value!r}")
            value = typ(value)
            if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"{lo if lo is not None else '-inf'}…{hi if hi is not None else 'inf'}"
                raise RecipeError(source, f"[{sec}] {key} = {value} is outside {bounds}")
            out[key] = value
        checked[sec] = out
    cell = dict(checked["cell"])
    cell["kind"] = str(section("cell").get("kind", ""))
    if cell.get("pitch_min_um", 0) >= cell.get("pitch_max_um", math.inf):
        raise RecipeError(source, "[cell] pitch_min_um must be below pitch_max_um")
    given = {sec.split(".", 1)[1]: vals for sec, vals in checked.items() if sec.startswith("rules.")}
    for det, vals in given.items():
        for review_key, fail_key in SPECS[det].ordered:
            if review_key in vals and fail_key in vals and vals[review_key] > vals[fail_key]:
                raise RecipeError(source, f"[rules.{det}] {review_key} is above {fail_key}")
    rules = {det: SPECS[det].rules_for(vals) for det, vals in given.items()}
    enabled = section("detectors").get("enabled", list(DETECTORS))
    if not isinstance(enabled, list) or not all(isinstance(n, str) for n in enabled):
        raise RecipeError(source, "[detectors] enabled must be a list of detector names")
    unknown_det = [n for n in enabled if n not in DETECTORS]
    if unknown_det:
        raise RecipeError(source, f"unknown detector(s) {', '.join(unknown_det)}; known: {', '.join(DETECTORS)}")
    return Recipe(
        name=head["name"],
        description=str(head.get("description", "")),
        cell=cell,
        detectors=list(enabled),
        rules=rules,
        source=source,
        sha256=sha256,
        raw=data,
    )


# ------------------------------------------------------------------------- recipe choice

AUTO = "auto"
# A can this far off a recipe's nominal diameter is another cell format, not a dimensional
# defect: 18650 and 21700 cans differ by 2.8 mm, while the shipped diameter limits are
# 0.15–0.5 mm. Between the fail limit and this, the can is judged (and fails); beyond it
# the recipe is the wrong one.
FORMAT_MISMATCH_MM = 1.0


@dataclass
class RecipeSelection:
    """Which recipe judged a cell, and why.

    Attributes
    ----------
    mode : {"auto", "explicit"}
        Chosen from the measured can ("auto") or given by the user ("explicit").
    recipe : str
        The recipe's name.
    measured_can_outer_diameter_mm : float or None
        The can's outer diameter measured before the inspection (None: no can found).
    expected_can_outer_diameter_mm : float or None
        The recipe's nominal ``[cell] can_outer_diameter_mm``.
    mismatch : bool
        The measured can is more than :data:`FORMAT_MISMATCH_MM` off the recipe's nominal:
        the cell is another format (its dimensions are then not judged; the verdict is at
        least REVIEW).
    reason : str
        One sentence for the operator.
    """

    mode: str
    recipe: str
    measured_can_outer_diameter_mm: float | None
    expected_can_outer_diameter_mm: float | None
    mismatch: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "recipe": self.recipe,
            "measured_can_outer_diameter_mm": self.measured_can_outer_diameter_mm,
            "expected_can_outer_diameter_mm": self.expected_can_outer_diameter_mm,
            "mismatch": self.mismatch,
            "reason": self.reason,
        }


def is_auto(recipe: Recipe | str | Path | None) -> bool:
    """True when ``recipe`` asks for the recipe to be chosen from the cell (None or "auto")."""
    return recipe is None or (isinstance(recipe, str) and recipe.strip().lower() == AUTO)


def shipped_recipes() -> list[Recipe]:
    """Every recipe shipped with cellqc, loaded and validated."""
    return [load_recipe(name) for name in available_recipes()]


def auto_recipe_hash() -> str:
    """SHA-256 over the shipped recipes (name and hash of each): what an automatic choice
    depends on, e.g. to tell whether a cell was already inspected under the same rules."""
    text = "\n".join(f"{r.name}:{r.sha256}" for r in shipped_recipes())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _nominal_mm(recipe: Recipe) -> float | None:
    value = recipe.cell.get("can_outer_diameter_mm")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def check_recipe_fits(recipe: Recipe, measured_mm: float | None, mode: str = "explicit") -> RecipeSelection:
    """Whether a recipe fits the can that was measured (see :class:`RecipeSelection`)."""
    nominal = _nominal_mm(recipe)
    if measured_mm is None or not math.isfinite(measured_mm) or nominal is None:
        why = "no can diameter measured" if nominal is not None else "the recipe names no can diameter"
        return RecipeSelection(mode, recipe.name, None if measured_mm is None or not math.isfinite(measured_mm)
                               else float(measured_mm), nominal, False, f"recipe {recipe.name} as given ({why})")
    off = abs(measured_mm - nominal)
    if off > FORMAT_MISMATCH_MM:
        return RecipeSelection(
            mode, recipe.name, float(measured_mm), nominal, True,
            f"recipe {recipe.name} expects a {nominal:.1f} mm can; the can measures {measured_mm:.1f} mm "
            f"(another cell format: its dimensions were not judged)")
    return RecipeSelection(mode, recipe.name, float(measured_mm), nominal, False,
                           f"recipe {recipe.name} as given; can Ø {measured_mm:.2f} mm (nominal {nominal:.1f} mm)")


def select_recipe(measured_mm: float | None, candidates: list[Recipe] | None = None) -> tuple[Recipe, RecipeSelection]:
    """Choose the recipe whose nominal can diameter is nearest to the measured one.

    Parameters
    ----------
    measured_mm : float or None
        The can's outer diameter (mm); None when no can was found.
    candidates : list of Recipe, optional
        Default: the shipped recipes.

    Returns
    -------
    (Recipe, RecipeSelection)
        Without a measured can, or when no candidate is within :data:`FORMAT_MISMATCH_MM`,
        the default recipe (resp. the nearest) with ``mismatch`` set when the can was measured.
    """
    candidates = candidates if candidates is not None else shipped_recipes()
    sized = [(r, _nominal_mm(r)) for r in candidates]
    sized = [(r, n) for r, n in sized if n is not None]
    if measured_mm is None or not math.isfinite(measured_mm) or not sized:
        recipe = next((r for r in candidates if r.name == DEFAULT_RECIPE), None) or load_recipe(DEFAULT_RECIPE)
        return recipe, RecipeSelection(AUTO, recipe.name, None, _nominal_mm(recipe), False,
                                       f"no can diameter measured: the default recipe {recipe.name}")
    recipe, nominal = min(sized, key=lambda rn: abs(rn[1] - measured_mm))
    if abs(nominal - measured_mm) > FORMAT_MISMATCH_MM:
        shipped = ", ".join(f"{r.name} ({n:.1f} mm)" for r, n in sized)
        return recipe, RecipeSelection(
            AUTO, recipe.name, float(measured_mm), nominal, True,
            f"no recipe for a {measured_mm:.1f} mm can (shipped: {shipped}); judged by the nearest, "
            f"{recipe.name}, without its dimensions")
    return recipe, RecipeSelection(
        AUTO, recipe.name, float(measured_mm), nominal, False,
        f"recipe {recipe.name} chosen from the can: Ø {measured_mm:.2f} mm measured, {nominal:.1f} mm nominal")
