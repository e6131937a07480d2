-- Alexa request ids seen recently, shared by every replica, so a replayed request is refused
-- whichever replica it reaches (and after a restart). Rows are forgotten after their
-- timestamp window; the timestamp check refuses replays after that.
CREATE TABLE seen_requests (
    request_id  TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX seen_requests_expiry ON seen_requests (expires_at);
