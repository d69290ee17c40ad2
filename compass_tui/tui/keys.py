"""The motion keys every list and pane answers alike (j/k, g/G, Ctrl+D/U), bound to each
widget's own actions."""

from __future__ import annotations

from textual.binding import Binding


def motion_bindings(down: str, up: str, top: str, bottom: str, half_down: str, half_up: str, *,
                    down_keys: str = "j", up_keys: str = "k") -> list[Binding]:
    """j/k, g/G and Ctrl+D/U as hidden bindings to the given actions."""
    return [
        Binding(down_keys, down, "down", show=False),
        Binding(up_keys, up, "up", show=False),
        Binding("g", top, "top", show=False),
        Binding("G", bottom, "bottom", show=False),
        Binding("ctrl+d", half_down, "half page down", show=False),
        Binding("ctrl+u", half_up, "half page up", show=False),
    ]
