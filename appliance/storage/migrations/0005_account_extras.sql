-- What a mail user sets for their own account in the console's self-service pages:
-- app passwords for mail clients (appliance/storage/app_passwords.py), a TOTP second factor
-- for the console login (account_totp.py), and the vacation reply and forwarding that the
-- engine applies at delivery (account_settings.py). Rows go with their account.

CREATE TABLE app_passwords (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    label          TEXT NOT NULL,              -- what the user calls it ("phone", "laptop")
    selector       TEXT NOT NULL,              -- 4 hex digits of SHA-256 of the password: which hash to try
    password_hash  TEXT NOT NULL,              -- argon2id PHC string of the generated password
    created_at     INTEGER NOT NULL,           -- POSIX seconds
    last_used_at   INTEGER                     -- POSIX seconds of the last login with it, or NULL
);
CREATE INDEX app_passwords_account ON app_passwords (account_id, selector);

CREATE TABLE account_totp (
    account_id     INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    secret         TEXT NOT NULL,              -- base32 (RFC 4648) shared secret, RFC 6238
    enabled        INTEGER NOT NULL DEFAULT 0, -- 0 while enrolling: a code must be verified first
    last_step      INTEGER NOT NULL DEFAULT 0, -- the last time step accepted (no replay)
    created_at     INTEGER NOT NULL
);

CREATE TABLE vacation (
    account_id     INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    enabled        INTEGER NOT NULL DEFAULT 0,
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    start_date     TEXT,                       -- YYYY-MM-DD, first day it answers, or NULL
    end_date       TEXT,                       -- YYYY-MM-DD, last day it answers, or NULL
    updated_at     INTEGER NOT NULL
);

-- RFC 3834 2: one reply per sender per period; the engine records each reply it sends.
CREATE TABLE vacation_replies (
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender         TEXT NOT NULL,              -- Address.key of whom we answered
    replied_at     INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender)
);

CREATE TABLE forwarding (
    account_id     INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    keep_copy      INTEGER NOT NULL DEFAULT 1, -- also deliver to the account's own mailbox
    updated_at     INTEGER NOT NULL
);

CREATE TABLE forwarding_targets (
    account_id     INTEGER NOT NULL REFERENCES forwarding(account_id) ON DELETE CASCADE,
    target         TEXT NOT NULL,              -- a full address, local or remote
    PRIMARY KEY (account_id, target)
);
