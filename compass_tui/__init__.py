"""COMPASS: incident investigation in the terminal."""

from pathlib import Path

DEMO_BUNDLE = Path(__file__).resolve().parent / "data" / "demo.tar.gz"
"""The built-in demo incident (a bundle shipped in the package)."""
