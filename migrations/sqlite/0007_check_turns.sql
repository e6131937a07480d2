-- Checks of one challenge's codes take turns (also across replicas): whoever holds the turn
-- until checking_until (Unix seconds) checks; the others wait for it.
ALTER TABLE challenges ADD COLUMN checking_until BIGINT;
