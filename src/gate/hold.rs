//! Holding an operation: a new challenge (or one replacing the waiting one), and what is
//! waiting and its current code.

use super::*;

impl Gate {
    /// Holds `operation` for `user`; `AlreadyPending` if they have a challenge waiting.
    pub async fn hold(
        &self,
        user: &User,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        self.hold_replacing(user, None, operation, actor).await
    }

    /// Replaces the user's pending challenge `old_id` (with their consent) by `operation`.
    pub async fn replace(
        &self,
        user: &User,
        old_id: &str,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        let old = self.challenge_of(user, old_id).await?;
        self.hold_replacing(user, old.as_ref(), operation, actor)
            .await
    }

    pub(super) async fn hold_replacing(
        &self,
        user: &User,
        old: Option<&Challenge>,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        if old.is_none()
            && let Some(existing) = self.pending(&user.id).await?
        {
            return Err(GateError::AlreadyPending(Box::new(existing)));
        }
        // Make the key now, so the app can show the code at once.
        self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let now = self.clock.now();
        let row = ChallengeRow {
            id: crate::store::new_id("c"),
            tenant_id: user.tenant_id.as_str().to_owned(),
            user_id: user.id.as_str().to_owned(),
            account_id: operation.account_id().to_owned(),
            operation: challenge::store_operation(operation),
            summary: operation.summary(),
            digest: operation.digest(),
            state: State::Pending.as_str().to_owned(),
            created_at: now.unix_timestamp(),
            expires_at: (now + self.ttl).unix_timestamp(),
            wrong_codes: 0,
            used_step: None,
            closed_at: None,
        };
        let challenge = Challenge::read(&row).ok_or(GateError::Unreadable(row.id.clone()))?;
        let mut tx = self.store.begin().await?;
        let mut entries = Vec::new();
        if let Some(old) = old
            && tx
                .move_challenge(
                    &old.id,
                    &["pending"],
                    State::Replaced.as_str(),
                    now.unix_timestamp(),
                )
                .await?
        {
            entries.push(self.entry(
                old,
                Outcome::Replaced,
                "replaced by a newer operation",
                actor,
            ));
        }
        match tx.insert_challenge(&row).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                tx.rollback().await?;
                // Lost a race with another hold for the same user.
                let existing = self
                    .pending(&user.id)
                    .await?
                    .ok_or(GateError::Unreadable(row.id.clone()))?;
                return Err(GateError::AlreadyPending(Box::new(existing)));
            }
            Err(other) => return Err(other.into()),
        }
        entries.push(self.entry(&challenge, Outcome::Held, "", actor));
        // An operation held without a record would be approvable off the books.
        self.audit.commit_all(tx, &entries).await?;
        if let Some(old) = old.filter(|_| entries.len() == 2) {
            self.publish(
                old.user_id.as_str(),
                &old.id,
                &old.summary,
                Outcome::Replaced,
            )
            .await;
        }
        self.publish(
            challenge.user_id.as_str(),
            &challenge.id,
            &challenge.summary,
            Outcome::Held,
        )
        .await;
        Ok(challenge)
    }

    /// The user's pending challenge (an expired one is expired on the way, an unreadable
    /// one closed).
    pub async fn pending(&self, user: &UserId) -> Result<Option<Challenge>, GateError> {
        for row in self.store.pending_challenges(user).await? {
            let challenge = match self.read(&row).await {
                Ok(challenge) => challenge,
                Err(GateError::Unreadable(_)) => continue,
                Err(other) => return Err(other),
            };
            if challenge.expires_at <= self.clock.now() {
                self.expire(&challenge).await?;
                continue;
            }
            return Ok(Some(challenge));
        }
        Ok(None)
    }

    /// The user's pending challenges (for the companion app).
    pub async fn pending_all(&self, user: &UserId) -> Result<Vec<Challenge>, GateError> {
        Ok(self.pending(user).await?.into_iter().collect())
    }

    /// A challenge of `user` by id (none if it is another user's).
    pub async fn challenge_of(
        &self,
        user: &User,
        id: &str,
    ) -> Result<Option<Challenge>, GateError> {
        match self.store.challenge(id).await? {
            Some(row) if row.user_id == user.id.as_str() => Ok(Some(self.read(&row).await?)),
            _ => Ok(None),
        }
    }

    /// The code the app shows for `challenge` now.
    pub async fn current_code(&self, challenge: &Challenge) -> Result<CurrentCode, GateError> {
        let key = self
            .user_key(&challenge.user_id, &challenge.tenant_id)
            .await?;
        let totp = code::totp_for(&key, &challenge.id, &challenge.digest)?;
        let now = unix(self.clock.now());
        Ok(CurrentCode {
            code: totp.generate(now).to_string(),
            seconds_left_in_step: STEP_SECONDS - now % STEP_SECONDS,
        })
    }
}
