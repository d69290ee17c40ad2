"""The memory's tables, versioned. Each migration takes the store from version N-1 to N;
a file written by a newer COMPASS (a higher ``schema_version``) is never touched."""

from __future__ import annotations

SCHEMA_VERSION = 4
"""The version this COMPASS writes. Older files are migrated forward on open."""

# MIGRATIONS[n] takes a store from version n-1 to n. Append; never edit a released step.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """
        CREATE TABLE meta (
            key   VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE investigations (
            id                 VARCHAR PRIMARY KEY,
            recorded_at        DOUBLE NOT NULL,   -- unix seconds, when COMPASS finished it
            started_at         DOUBLE,            -- unix seconds, when the alert fired
            title              VARCHAR NOT NULL,
            alertname          VARCHAR,
            service            VARCHAR,
            shape              VARCHAR NOT NULL,
            moved              VARCHAR[] NOT NULL,
            signature          VARCHAR NOT NULL,  -- Signature.key(), for display and exact lookups
            first_hypothesis_s DOUBLE,
            total_s            DOUBLE,
            report_json        VARCHAR NOT NULL
        )
        """,
        "CREATE INDEX investigations_alert ON investigations (alertname, service)",
        """
        CREATE TABLE hypotheses (
            investigation_id VARCHAR NOT NULL,
            rank             INTEGER NOT NULL,
            fault            VARCHAR NOT NULL,
            service          VARCHAR NOT NULL,
            title            VARCHAR NOT NULL,
            confidence       DOUBLE NOT NULL,
            status           VARCHAR NOT NULL,
            PRIMARY KEY (investigation_id, rank)
        )
        """,
        "CREATE SEQUENCE feedback_seq START 1",
        """
        CREATE TABLE feedback (
            id               BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
            investigation_id VARCHAR NOT NULL,
            given_at         DOUBLE NOT NULL,     -- unix seconds
            verdict          VARCHAR NOT NULL,    -- confirm | reject | actual
            fault            VARCHAR NOT NULL,
            service          VARCHAR NOT NULL,
            reason           VARCHAR,
            note             VARCHAR
        )
        """,
        "CREATE INDEX feedback_investigation ON feedback (investigation_id)",
    ],
    2: [
        # Where each investigation came from: bundle:NAME, alert, live, demo, watch.
        "ALTER TABLE investigations ADD COLUMN source VARCHAR",
        # The request it ran on (window, labels), so the app can reopen it without re-running.
        "ALTER TABLE investigations ADD COLUMN request_json VARCHAR",
        # Alert groups `compass watch` was notified of, so a repeat starts nothing new.
        """
        CREATE TABLE alert_groups (
            group_key        VARCHAR PRIMARY KEY,  -- Alertmanager's groupKey
            status           VARCHAR NOT NULL,     -- firing | resolved
            alertname        VARCHAR,
            service          VARCHAR,
            first_seen       DOUBLE NOT NULL,      -- unix seconds, when this episode began firing
            last_seen        DOUBLE NOT NULL,
            resolved_at      DOUBLE,
            investigation_id VARCHAR,              -- the investigation of this episode
            notifications    INTEGER NOT NULL
        )
        """,
    ],
    3: [
        # the engineer's estimate, given once at confirmation, of how long finding the cause
        # would have taken without COMPASS (for the time-saved figure of `compass stats`)
        # IF NOT EXISTS: a file from the build that numbered this step 2 already has it
        "ALTER TABLE feedback ADD COLUMN IF NOT EXISTS minutes_estimate DOUBLE",
    ],
    4: [
        # IF NOT EXISTS: a file from the build that numbered this step 3 (before source and
        # alert groups) already has these columns
        # One incident (same alert, same window) is one investigation, however often it runs.
        "ALTER TABLE investigations ADD COLUMN IF NOT EXISTS incident_key VARCHAR",
        # Launch to the first hypothesis on screen: what the engineer waited, as the app saw it.
        "ALTER TABLE investigations ADD COLUMN IF NOT EXISTS waited_s DOUBLE",
        # The services the telemetry named, so a verdict naming none of them is refused.
        "ALTER TABLE investigations ADD COLUMN IF NOT EXISTS services VARCHAR[]",
        # An undone verdict is kept, marked, and no longer counts.
        "ALTER TABLE feedback ADD COLUMN IF NOT EXISTS withdrawn_at DOUBLE",
    ],
}
