-- Indexes for what a request looks up by its user or account (issue 12's scale run: with
-- 100,000 tenants these were full scans on every request).
-- recently_approved (a code spoken when nothing waits) and active_operations per user.
CREATE INDEX challenges_by_user ON challenges (user_id, closed_at);
-- active_operations per account (unlinking, the per-account limit).
CREATE INDEX challenges_by_account ON challenges (account_id, state);
-- A user's devices (the companion API, removing a user).
CREATE INDEX devices_by_user ON devices (user_id);
