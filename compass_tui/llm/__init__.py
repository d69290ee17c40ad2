"""The user's own models through litellm: a model per role, redacted, budgeted, priced.

``client`` makes every call; ``hypotheses`` is the model-backed hypothesis agent; ``chat``
answers the engineer's questions with read-only tools; ``redact`` removes secrets first.
Nothing here imports litellm until a model is really called.
"""

from __future__ import annotations

from typing import Any


def narrate(cfg: Any, role: str, facts: str) -> str:
    """One model call for ``role`` (e.g. ``postmortem``) that writes prose from ``facts``
    only, redacted and budgeted like every call; raises ModelError when the model fails.
    Safe to call from inside a running event loop (it runs the call on its own thread)."""
    import asyncio
    import concurrent.futures

    from compass_tui.llm.client import Caps, ModelError, models_from_config

    models = models_from_config(cfg)
    if models is None or not models.model_for(role):
        raise ModelError(role, "-", "no model configured for this role", kind="config")
    b = cfg.budget.to_budget()
    session = models.session(Caps(max_calls=max(1, b.max_llm_calls), max_usd=b.usd_cap(None), max_tokens=b.max_tokens))
    messages = [
        {"role": "system", "content": "Write a short, blameless summary of this incident for a post-incident review, "
                                      "in the Learning Teams spirit. Use only the facts given; invent nothing."},
        {"role": "user", "content": facts},
    ]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply = pool.submit(asyncio.run, session.complete(role, messages)).result()
    return reply.content
