"""Cost and effort per agent: queries, wall time, tokens, USD (zero for deterministic agents,
shown anyway), and the total against the budget."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from compass_tui.models import AgentCost
from compass_tui.tui.render import style


class CostPane(Vertical):
    """A table of agents and a total line."""

    def compose(self):
        yield Static("", id="cost-total")
        yield DataTable(id="cost-table", cursor_type="none", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("agent", "queries", "wall s", "tokens in", "tokens out", "USD", "model")
        self.update_costs({}, 0.0, None, 0, 0)

    def update_costs(
        self,
        by_agent: dict[str, AgentCost],
        total_usd: float,
        budget_usd: float | None,
        queries: int,
        query_errors: int,
    ) -> None:
        """Redraw the table from the running totals."""
        table = self.query_one(DataTable)
        table.clear()
        for name in sorted(by_agent):
            c = by_agent[name]
            table.add_row(
                name,
                str(c.queries),
                f"{c.wall_s:.2f}",
                str(c.prompt_tokens),
                str(c.completion_tokens),
                f"${c.usd:.4f}",
                c.model or "rules",
            )
        total = Text()
        total.append("total ", style="bold")
        total.append(f"${total_usd:.4f}")
        if budget_usd is not None:
            total.append(f" of ${budget_usd:.2f} budget")
            if budget_usd > 0 and total_usd >= budget_usd:
                total.append("  BUDGET REACHED", style=style("bold $error"))
        total.append(f"   queries run: {queries}")
        if query_errors:
            total.append(f" ({query_errors} failed)", style=style("bold $error"))
        self.query_one("#cost-total", Static).update(total)
