"""Shared fixtures: bundles made by the project's own simulator, once per test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _log_dir(tmp_path_factory):
    """The log file of every compass the tests run (in this process or as a subprocess) goes
    to a temporary state directory, never the user's ~/.local/state."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield


@pytest.fixture(scope="session")
def sim_bundle_factory(tmp_path_factory):
    """make(fault, seed, **options) -> Path of a bundle directory (cached per arguments)."""
    from compass_tui.sim import SimOptions, generate, write_bundle

    cache: dict = {}
    root = tmp_path_factory.mktemp("sim")

    def make(fault: str, seed: int, tar: bool = False, **options):
        key = (fault, seed, tar, tuple(sorted(options.items())))
        if key not in cache:
            inc = generate(fault, seed, SimOptions(**options))
            name = f"{fault}-{seed}-{len(cache)}" + (".tar.gz" if tar else "")
            cache[key] = write_bundle(inc, root / name)
        return cache[key]

    return make
