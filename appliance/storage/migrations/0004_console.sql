-- The web console (webui/): its administrators, server-side sessions, audit log and the
-- first-boot setup wizard's progress.

CREATE TABLE console_admins (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,       -- lower case, [a-z0-9._-]
    password_hash  TEXT NOT NULL,              -- argon2id PHC string (auth/passwords.py)
    totp_secret    TEXT,                       -- base32 RFC 6238 secret; NULL: no TOTP
    totp_last_step INTEGER NOT NULL DEFAULT 0, -- last accepted time step (no replay)
    created_at     INTEGER NOT NULL
);

-- One row per browser session; the cookie holds the id, the table only its SHA-256.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    data        TEXT NOT NULL,                 -- JSON: user, CSRF token, flashes, wizard
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);

-- Every admin action (webui/audit.py); details never hold a secret.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,                 -- Unix time
    actor    TEXT NOT NULL,                    -- admin username, user address or "setup"
    client   TEXT NOT NULL,                    -- remote address
    action   TEXT NOT NULL,                    -- e.g. "account.create"
    target   TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'        -- JSON object of strings
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The first-boot wizard: which steps are done, and the choices that belong to no other
-- table (time zone, TLS mode). Key/value so that steps can be added without a migration.
CREATE TABLE console_setup (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
