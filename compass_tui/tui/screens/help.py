"""The `?` screen: every key, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = """\
[b]COMPASS keys[/b]

  ↑ ↓  j k     move between hypotheses
  Enter        open the evidence of the highlighted hypothesis
  Esc          back to the hypotheses
  c            confirm the highlighted hypothesis (saved to memory at once)
  x            reject it, with a reason
  a            it was actually…: FAULT@SERVICE (Tab completes), what fixed it
  / or Tab     the chat (type [b]help[/b] there for its commands)
  1 2 3 4      evidence, cost, health, chat tabs
  e            export the report as JSON to the current directory
  r            run the investigation again
  ?            this help
  q            quit

[b]Chat commands[/b]  why <n|fault@svc> · why not <fault@svc> · show <service>
               promql <query> · logql <query> · rerun · help

The mouse works too: click a hypothesis, a tab, or a link.

[dim]Press Esc, q or ? to close.[/dim]"""


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys and chat commands."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(KEYS, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
