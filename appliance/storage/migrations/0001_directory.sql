-- Domains, accounts and aliases: the directory every listener consults.
CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,          -- lower-case A-label (IDNA 2008)
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    domain_id      INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
    local_part     TEXT NOT NULL,              -- as the admin typed it
    local_key      TEXT NOT NULL,              -- case-folded, for lookups
    password_hash  TEXT NOT NULL,              -- argon2id PHC string
    enabled        INTEGER NOT NULL DEFAULT 1,
    quota_bytes    INTEGER NOT NULL DEFAULT 0, -- 0 = no limit
    maildir        TEXT NOT NULL UNIQUE,       -- relative to data_dir
    created_at     INTEGER NOT NULL,
    UNIQUE (domain_id, local_key)
);

CREATE TABLE aliases (
    id          INTEGER PRIMARY KEY,
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
    local_part  TEXT NOT NULL,                 -- '' is the catch-all for the domain
    local_key   TEXT NOT NULL,
    target      TEXT NOT NULL,                 -- a full address, local or remote
    created_at  INTEGER NOT NULL,
    UNIQUE (domain_id, local_key, target)
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
