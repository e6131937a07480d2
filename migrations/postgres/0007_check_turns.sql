-- Checks of one challenge's codes take turns (also across replicas): the holder (a random
-- owner id) checks until checking_until (Unix seconds); the others wait for it. Only the
-- holder can give the turn back.
ALTER TABLE challenges ADD COLUMN checking_until BIGINT;
ALTER TABLE challenges ADD COLUMN checking_owner TEXT;
