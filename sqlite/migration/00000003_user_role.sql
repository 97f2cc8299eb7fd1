-- Each account's role: an admin may also manage accounts and end anyone's
-- session. Existing accounts become speakers, except the oldest, which
-- becomes the admin: on an install that began with `serve`, the account
-- created at first start.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'speaker' CHECK (role IN ('admin', 'speaker'));
UPDATE users SET role = 'admin' WHERE name = (SELECT name FROM users ORDER BY created_at, name LIMIT 1);
