-- The console's DNS page (webui/dns_check.py, webui/dns_store.py).
-- The latest result of each check: one row per (domain, record key).
CREATE TABLE dns_checks (
    domain      TEXT NOT NULL,                 -- '' for the server's own checks
    record_key  TEXT NOT NULL,                 -- e.g. 'mx', 'dkim:ms202611r', 'port25'
    purpose     TEXT NOT NULL,
    name        TEXT NOT NULL,
    rtype       TEXT NOT NULL,
    expected    TEXT NOT NULL,
    found       TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('ok', 'missing', 'wrong', 'error')),
    note        TEXT NOT NULL,
    checked_at  INTEGER NOT NULL,              -- Unix seconds
    PRIMARY KEY (domain, record_key)
);

-- A check whose state changed since the previous check, for the admin.
-- `mailstead dns check --daily` mails them (webui/dns_notify.py) and sets mailed_at.
CREATE TABLE dns_alerts (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    domain      TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    name        TEXT NOT NULL,
    rtype       TEXT NOT NULL,
    old_state   TEXT NOT NULL,
    new_state   TEXT NOT NULL,
    note        TEXT NOT NULL,
    mailed_at   INTEGER
);

CREATE INDEX dns_alerts_created ON dns_alerts (created_at);
