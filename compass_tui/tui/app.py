"""The COMPASS app: one screen over the engine's event stream, built by ``build_app`` for the
CLI and the tests alike."""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.theme import Theme

from compass_tui.tui.render import set_palette
from compass_tui.tui.screens.investigation import InvestigationScreen
from compass_tui.service import THEMES, AppOptions, Investigate, resolve_options

THEME_DIRS = (
    Path(sys.prefix) / "share" / "compass" / "themes",  # installed from a wheel
    Path(__file__).resolve().parent.parent.parent / "themes",  # a source checkout
)

# Used when no theme file can be found (a bare wheel): the same colours as themes/*.toml.
_BUILTIN = {
    "dark": dict(name="compass-dark", dark=True, primary="#4F9DDE", accent="#F0B35B", foreground="#E0E4EA",
                 background="#12161C", surface="#1A2029", panel="#232B36", success="#5FBF77",
                 warning="#E8C25A", error="#E5606A"),
    "light": dict(name="compass-light", dark=False, primary="#1F5FA8", accent="#B35F00", foreground="#1B1F24",
                  background="#F7F8FA", surface="#FFFFFF", panel="#E3E8EF", success="#1E7B34",
                  warning="#8A6100", error="#B3261E"),
    "high-contrast": dict(name="compass-high-contrast", dark=True, primary="#FFFFFF", accent="#FFFF00",
                          foreground="#FFFFFF", background="#000000", surface="#000000", panel="#000000",
                          boost="#333333", success="#00FF00", warning="#FFFF00", error="#FF4040"),
}
_THEME_FIELDS = {"name", "primary", "secondary", "warning", "error", "success", "accent", "foreground",
                 "background", "surface", "panel", "boost", "dark", "variables"}


def load_theme(name: str) -> Theme:
    """The Textual theme for ``dark``, ``light`` or ``high-contrast`` from ``themes/NAME.toml``."""
    for directory in THEME_DIRS:
        path = directory / f"{name}.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
                return Theme(**{k: v for k, v in data.items() if k in _THEME_FIELDS})
            except (tomllib.TOMLDecodeError, TypeError, ValueError):
                break  # a broken theme file must not stop the app: use the built-in colours
    return Theme(**_BUILTIN[name])


class CompassApp(App[int]):
    """The full-screen investigation app."""

    TITLE = "COMPASS"
    ENABLE_COMMAND_PALETTE = False
    # priority: Ctrl+C must reach the app even from a text field (which would copy)
    BINDINGS = [Binding("ctrl+c", "ctrl_c", "quit", show=False, priority=True)]
    QUIT_WINDOW_S = 2.0
    """A second Ctrl+C within this many seconds quits."""

    def __init__(self, options: AppOptions) -> None:
        super().__init__()
        self.options = options
        self._ctrl_c_at: float | None = None
        for name in THEMES:
            self.register_theme(load_theme(name))
        self.theme = f"compass-{options.theme}" if options.theme in THEMES else "compass-dark"
        set_palette(self.current_theme)

    def on_mount(self) -> None:
        if not self.options.named:
            # Nothing named on the command line: what `compass watch` found comes first.
            from compass_tui.service import waiting_investigations  # noqa: PLC0415

            items = waiting_investigations(self.options)
            if items:
                from compass_tui.tui.screens.inbox import InboxScreen  # noqa: PLC0415

                self.push_screen(InboxScreen(self.options, items))
                return
        self.push_screen(InvestigationScreen(self.options))

    def action_ctrl_c(self) -> None:
        """Ctrl+C twice quits; once only says so (a stray Ctrl+C must not lose the screen)."""
        now = time.monotonic()
        if self._ctrl_c_at is not None and now - self._ctrl_c_at <= self.QUIT_WINDOW_S:
            self.exit()
            return
        self._ctrl_c_at = now
        self.notify("Press Ctrl+C again to quit.", timeout=self.QUIT_WINDOW_S)

    @property
    def investigation(self) -> InvestigationScreen:
        """The investigation screen (under any modal on top of it)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, InvestigationScreen):
                return screen
        raise LookupError("no investigation screen")


def build_app(
    args: argparse.Namespace,
    *,
    demo: bool = False,
    investigate: Investigate | None = None,
    stdin_text: str | None = None,
) -> CompassApp:
    """The app for parsed command-line ``args``; ``investigate`` replaces the engine (tests);
    ``stdin_text`` is the alert payload already read from stdin for ``--alert -``."""
    return CompassApp(resolve_options(args, demo=demo, investigate=investigate, stdin_text=stdin_text))
