"""Data files shipped with cellqc: default recipes, icons, style sheets, report assets."""

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
