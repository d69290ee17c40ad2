"""What the app investigates and with what: the application service, as the app imports it.

Opening sources and the store, the engine's dependencies and recording results live once, in
``compass_tui.service`` (shared with the CLI, the demo and ``compass watch``)."""

from compass_tui.service import (  # noqa: F401 - the app's names for the service
    DEMO_BUNDLE,
    THEMES,
    AppOptions,
    Investigate,
    Opened,
    Source,
    SourceError,
    StoreState,
    build_deps,
    close_backend,
    first_firing_alert,
    integration_health,
    load_config,
    open_live_backend,
    open_source,
    open_store,
    record,
    resolve_options,
)
