"""The SQLite store's schema: migrations in order, applied once each on open (``PRAGMA user_version``).

Never edit a released migration; append a new one. PostgreSQL or any other store keeps the same
tables and indexes in its own dialect.
"""

from __future__ import annotations

MONTHLY_GRANTS_FROM_LICENSES = """
    INSERT INTO monthly_grants
    SELECT device_id, COALESCE(account, ''), CAST(strftime('%s', issued_at, 'unixepoch', 'start of month') AS INTEGER),
           COUNT(*)
    FROM licenses WHERE kind = 'persistent' AND device_id IS NOT NULL GROUP BY 1, 2, 3
"""
"""Count the persistent licenses already stored into ``monthly_grants`` (migration 11, and the store-size
benchmark's bulk fill, which writes licenses without the grant path)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: foundation
    """
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY, system TEXT NOT NULL, system_id INTEGER NOT NULL,
        model TEXT NOT NULL, security_level TEXT NOT NULL, verification TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
    );
    CREATE TABLE licenses (
        license_id TEXT PRIMARY KEY, system TEXT NOT NULL, device_id TEXT,
        content_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
        version INTEGER NOT NULL, kids TEXT NOT NULL, tracks TEXT NOT NULL,
        policy TEXT NOT NULL, issued_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        released_at INTEGER, secrets TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX licenses_device ON licenses(device_id);
    CREATE INDEX licenses_content ON licenses(content_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, system TEXT NOT NULL,
        event TEXT NOT NULL, device_id TEXT, content_id TEXT, license_id TEXT,
        code TEXT, message TEXT
    );
    CREATE INDEX audit_license ON audit(license_id);
    CREATE TABLE seen_requests (request_key TEXT PRIMARY KEY, seen_at INTEGER NOT NULL);
    CREATE INDEX seen_requests_at ON seen_requests(seen_at);
    """,
    # 2: authorized media downloads (POST /downloads)
    """
    CREATE TABLE downloads (
        download_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, content_id TEXT NOT NULL,
        license_id TEXT NOT NULL, account TEXT NOT NULL, tier TEXT NOT NULL, quality TEXT NOT NULL,
        scheme TEXT NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
        authorized_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
    );
    CREATE INDEX downloads_device ON downloads(device_id);
    """,
    # 3: lifecycle (renewal restarts the license clock; first use seen by the server)
    """
    ALTER TABLE licenses ADD COLUMN license_start INTEGER;
    ALTER TABLE licenses ADD COLUMN first_used_at INTEGER;
    UPDATE licenses SET license_start = issued_at WHERE license_start IS NULL;
    """,
    # 4: entitlements (who a license was issued to) and single-use token ids
    """
    ALTER TABLE licenses ADD COLUMN account TEXT;
    ALTER TABLE licenses ADD COLUMN tier TEXT;
    ALTER TABLE licenses ADD COLUMN token_jti TEXT;
    CREATE INDEX licenses_account ON licenses(account);
    CREATE TABLE used_tokens (
        jti TEXT PRIMARY KEY, license_id TEXT, used_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
    );
    CREATE INDEX used_tokens_expiry ON used_tokens(expires_at);
    """,
    # 5: device reports (PlayReady-style Acknowledge / Secure Stop), deduplicated by unique keys
    """
    CREATE TABLE reports (
        license_id TEXT NOT NULL, report_key TEXT NOT NULL, event TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (license_id, report_key)
    );
    CREATE TABLE report_subjects (
        license_id TEXT NOT NULL, once_key TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (license_id, once_key)
    );
    """,
    # 6: audit retention: refusals are purged by age and count through these partial indexes
    """
    CREATE INDEX audit_refusal_at ON audit(at) WHERE event = 'refusal';
    CREATE INDEX audit_refusal_id ON audit(id) WHERE event = 'refusal';
    """,
    # 7: flat cost as the store grows: every per-request query and admin page is served by an index
    # (list pages sort by issued_at inside the filter; Clear Key releases find licenses by key id)
    """
    DROP INDEX licenses_device;
    DROP INDEX licenses_content;
    DROP INDEX licenses_account;
    CREATE INDEX licenses_device ON licenses(device_id, issued_at);
    CREATE INDEX licenses_content ON licenses(content_id, issued_at);
    CREATE INDEX licenses_account ON licenses(account, issued_at);
    CREATE INDEX licenses_system ON licenses(system, issued_at);
    CREATE INDEX licenses_issued ON licenses(issued_at);
    CREATE INDEX devices_first_seen ON devices(first_seen);
    CREATE INDEX downloads_device_at ON downloads(device_id, authorized_at);
    CREATE INDEX downloads_at ON downloads(authorized_at);
    CREATE TABLE license_kids (kid TEXT NOT NULL, license_id TEXT NOT NULL, PRIMARY KEY (kid, license_id))
        WITHOUT ROWID;
    INSERT OR IGNORE INTO license_kids SELECT j.value, l.license_id FROM licenses l, json_each(l.kids) j
    """,
    # 8: a namespace's state documents (test clock, fault plans, revocations, rights overlay), shared by
    # every worker; the generation row moves on every document write so processes re-read cheaply
    """
    CREATE TABLE state_documents (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE state_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO state_generation VALUES (1, 0)
    """,
    # 9: concurrent-stream sessions (one per playback, holding one of the account's max_streams slots while
    # its lease runs) and the licenses each was opened or renewed with (Secure Stop and renewals find it)
    """
    CREATE TABLE stream_sessions (
        session_id TEXT PRIMARY KEY, account TEXT NOT NULL, system TEXT NOT NULL, device_id TEXT,
        content_id TEXT NOT NULL, license_id TEXT NOT NULL, continuation TEXT, state TEXT NOT NULL,
        opened_at INTEGER NOT NULL, renewed_at INTEGER NOT NULL, lease_until INTEGER NOT NULL,
        lease INTEGER NOT NULL, grace INTEGER NOT NULL, max_streams INTEGER NOT NULL, mode TEXT NOT NULL,
        heartbeats INTEGER NOT NULL DEFAULT 0, ended_at INTEGER, end_reason TEXT
    );
    CREATE INDEX stream_sessions_account ON stream_sessions(account, state);
    CREATE INDEX stream_sessions_device ON stream_sessions(device_id, state);
    CREATE TABLE stream_licenses (license_id TEXT PRIMARY KEY, session_id TEXT NOT NULL);
    CREATE INDEX stream_licenses_session ON stream_licenses(session_id)
    """,
    # 10: when each persistent license stops holding a download slot (entitlements.slot_end), so the caps
    # count active holdings in two partial indexes instead of reading every holding back; rows from before
    # are filled in when the store opens (SqlStore.fill_slot_ends)
    """
    ALTER TABLE licenses ADD COLUMN slot_end INTEGER;
    CREATE INDEX licenses_slots_device ON licenses(device_id, slot_end)
        WHERE kind = 'persistent' AND state IN ('issued', 'in_use', 'renewed');
    CREATE INDEX licenses_slots_account ON licenses(account, device_id, slot_end)
        WHERE kind = 'persistent' AND state IN ('issued', 'in_use', 'renewed');
    CREATE INDEX licenses_slot_unknown ON licenses(license_id) WHERE kind = 'persistent' AND slot_end IS NULL;
    CREATE INDEX licenses_month ON licenses(device_id, account, issued_at) WHERE kind = 'persistent'
    """,
    # 11: the monthly allowance counts grants in a small table, one row per device, account ('' for none) and
    # calendar month (UTC), bumped in the grant's transaction, instead of an index over every persistent
    # license ever issued: on a large store that index put a cold page in every persistent grant
    f"""
    CREATE TABLE monthly_grants (
        device_id TEXT NOT NULL, account TEXT NOT NULL, month INTEGER NOT NULL, grants INTEGER NOT NULL,
        PRIMARY KEY (device_id, account, month)
    ) WITHOUT ROWID;
    {MONTHLY_GRANTS_FROM_LICENSES};
    DROP INDEX licenses_month
    """,
    # 12: the slot indexes carry kind and state, so the cap counts read index entries only. SQLite does not
    # take a partial index's condition as covered: the counts read every holding's table row back to check
    # kind and state, one page of the licenses table per holding, most of them cold on a large store
    """
    DROP INDEX licenses_slots_device;
    DROP INDEX licenses_slots_account;
    CREATE INDEX licenses_slots_device ON licenses(device_id, slot_end, kind, state)
        WHERE kind = 'persistent' AND state IN ('issued', 'in_use', 'renewed');
    CREATE INDEX licenses_slots_account ON licenses(account, device_id, slot_end, kind, state)
        WHERE kind = 'persistent' AND state IN ('issued', 'in_use', 'renewed')
    """,
)

RESET_TABLES: tuple[str, ...] = (
    "devices", "licenses", "license_kids", "audit", "seen_requests", "downloads", "used_tokens", "reports",
    "report_subjects", "state_documents", "stream_sessions", "stream_licenses", "monthly_grants",
)
"""Every table a namespace reset empties (new tables that hold namespace data must be listed here)."""
