"""``compass watch``: receive Alertmanager/Grafana webhooks and investigate each new firing
alert group against the configured live sources; results wait in the memory."""

from __future__ import annotations

import argparse
import asyncio
import sys


def _err(msg: str) -> int:
    print(f"compass watch: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Serve webhooks until SIGTERM/SIGINT; exit 0 after a clean stop, 2 when it cannot start."""
    from compass_tui.config import ConfigError, SecretMissing, expand_refs, load_config
    from compass_tui.service import configured_live
    from compass_tui.store import StoreUnavailable
    from compass_tui.watch import WatchError, Watcher, parse_listen, serve, setup_logging

    if getattr(args, "no_store", False):
        return _err("watch keeps its investigations in the memory; drop --no-store")
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as e:
        return _err(str(e))
    if not configured_live(config):
        where = config.source_path or "no config file"
        return _err(f"no live source configured ({where}); `compass init` writes a starting config")
    try:
        host, port = parse_listen(args.listen or config.watch.listen)
    except WatchError as e:
        return _err(str(e))
    notify = args.notify_url or config.watch.notify_url
    if notify:
        try:
            notify = expand_refs(notify, where="watch.notify_url")
        except SecretMissing as e:
            return _err(str(e))
    setup_logging()

    async def go() -> int:
        try:
            watcher = Watcher(
                config,
                store_path=getattr(args, "store", None) or config.store_path,
                concurrency=args.concurrency or config.watch.concurrency,
                queue_size=config.watch.queue,
                notify_url=notify,
            )
        except StoreUnavailable as e:
            return _err(f"memory unavailable: {e}")
        try:
            await serve(watcher, host, port)
        except WatchError as e:
            return _err(str(e))
        return 0

    return asyncio.run(go())
