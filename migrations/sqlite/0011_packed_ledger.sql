-- The replay guard of a store one process serves (SQLite) writes the request ids it saw
-- behind, every 100 ms, as one row per write: the ids' 16-byte digests, each followed by
-- when it may be forgotten (8 bytes, big-endian Unix seconds). One row instead of one per
-- id: binding and indexing thousands of rows a second was most of the guard's cost.
-- forget_after is the latest of the row's ids. (PostgreSQL, shared by replicas, keeps
-- seen_requests: each id must be checked there as it arrives.)
CREATE TABLE seen_request_digests (
    forget_after  BIGINT NOT NULL,
    digests       BLOB NOT NULL
);
CREATE INDEX seen_request_digests_forget ON seen_request_digests (forget_after);
