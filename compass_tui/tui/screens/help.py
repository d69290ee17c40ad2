"""The `?` screen: every key, in one place, filtered as you type."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

KEYS = [
    ("↑ ↓  j k", "move in whatever has focus (hypotheses, evidence items, chat, health)"),
    ("g G", "first / last"),
    ("Ctrl+D Ctrl+U", "half a page down / up"),
    ("Tab Shift+Tab", "next / previous pane: hypotheses, the open tab, the command line"),
    ("Enter", "open the evidence of the highlighted hypothesis"),
    ("Esc", "back out of any mode: filter, command, chat, a prompt, this help"),
    ("c", "confirm the highlighted hypothesis (one answer per investigation; saved at once)"),
    ("x", "reject it, with a reason"),
    ("a", "it was actually…: FAULT@SERVICE (Tab completes), what fixed it"),
    ("u", "undo the latest verdict on the highlighted hypothesis (or the latest at all)"),
    ("y", "copy: the investigation id (hypotheses), the query (evidence item)"),
    ("Y", "copy the link of the evidence item"),
    ("/", "filter the focused list (hypotheses or evidence items)"),
    (":", "command mode: :history :doctor :theme NAME :rerun :export :help :quit (Tab completes)"),
    ("i", "the chat (type help there; ↑ ↓ recall what you typed)"),
    ("1 2 3 4 5", "evidence, cost, health, chat, suspects tabs"),
    ("e", "export the report as JSON to the current directory"),
    ("r", "run the investigation again (the same investigation: verdicts stay)"),
    ("?", "this help"),
    ("q  Ctrl+C Ctrl+C", "quit"),
    ("chat", "why <n|fault@svc> · why not <fault@svc> · show <service>"),
    ("chat", "promql <query> · logql <query> · rerun · help"),
    ("mouse", "click a hypothesis, a tab, or a link"),
]


def keys_text(filter_text: str = "") -> Text:
    """The key table, only the rows that mention ``filter_text``."""
    want = filter_text.strip().lower()
    rows = [(k, d) for k, d in KEYS if not want or want in f"{k} {d}".lower()]
    text = Text()
    text.append("COMPASS keys", style="bold")
    text.append(f"  (filter: {filter_text})\n" if want else "\n")
    if not rows:
        text.append(f"\n  no key mentions {filter_text!r}\n", style="dim")
    for key, what in rows:
        text.append(f"\n  {key:<18}", style="bold")
        text.append(what)
    text.append("\n\nType to filter · Esc closes", style="dim")
    return text


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys and chat commands; typing filters them."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "close"),
        Binding("question_mark", "dismiss", "close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Input(placeholder="type to filter the keys (e.g. copy, undo, chat)", id="help-filter")
            yield Static(keys_text(), id="help-text")

    @on(Input.Changed, "#help-filter")
    def filtered(self, event: Input.Changed) -> None:
        self.query_one("#help-text", Static).update(keys_text(event.value))

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
