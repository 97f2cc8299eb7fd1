-- When each account's password was last set, Unix milliseconds. Tokens
-- issued before it are refused. Existing accounts count from creation.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET password_changed_at = created_at;
