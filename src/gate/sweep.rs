//! Moving a challenge between states with its audit record, and expiring the due ones.

use super::*;

impl Gate {
    /// Moves `challenge` from `from` to `to` with its audit record, in one transaction.
    /// False if it was not in `from` (nothing written).
    pub(super) async fn transition(
        &self,
        challenge: &Challenge,
        from: &[&str],
        to: State,
        entry: Entry,
    ) -> Result<bool, GateError> {
        let now = self.clock.now().unix_timestamp();
        let mut tx = self.store.begin().await?;
        if !tx
            .move_challenge(&challenge.id, from, to.as_str(), now)
            .await?
        {
            tx.rollback().await?;
            return Ok(false);
        }
        self.audit.commit_with(tx, &entry).await?;
        self.publish(
            challenge.user_id.as_str(),
            &challenge.id,
            &challenge.summary,
            entry.outcome,
        )
        .await;
        Ok(true)
    }

    pub(super) async fn expire(&self, challenge: &Challenge) -> Result<bool, GateError> {
        let entry = self.entry(challenge, Outcome::Expired, "", &Actor::Voxgate);
        self.transition(challenge, &["pending"], State::Expired, entry)
            .await
    }

    /// Expires every challenge whose time is up and closes approvals whose outcome was never
    /// recorded (run periodically); returns the expired ones. One row that cannot be read or
    /// written never stops the others.
    pub async fn expire_due(&self) -> Result<Vec<Challenge>, GateError> {
        let now = self.clock.now();
        // Approvals whose outcome was never recorded: voxgate stopped while running them.
        // Whether they ran cannot be known; they are said to be unknown, never retried.
        self.close_approvals_before((now - STALE_APPROVAL).unix_timestamp())
            .await?;
        let mut expired = Vec::new();
        for row in self.store.due_challenges(now.unix_timestamp()).await? {
            let Some(challenge) = Challenge::read(&row) else {
                self.close_unreadable(&row, true).await;
                continue;
            };
            match self.expire(&challenge).await {
                Ok(true) => expired.push(challenge),
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, challenge = %challenge.id, "could not expire a challenge");
                }
            }
        }
        Ok(expired)
    }

    /// At start, on a store only this process serves (SQLite): every approval still open
    /// was interrupted when voxgate stopped (nothing else can be running it), so it is
    /// closed as outcome-unknown now, before the first request, rather than after
    /// [`STALE_APPROVAL`]. Returns how many were closed.
    pub async fn close_interrupted(&self) -> Result<usize, GateError> {
        let mut closed = 0;
        // Batches until one closes nothing (bounded: a row that cannot be written would
        // come back in every batch).
        for _ in 0..100 {
            let batch = self.close_approvals_before(i64::MAX).await?;
            closed += batch;
            if batch == 0 {
                break;
            }
        }
        Ok(closed)
    }

    /// Closes approvals granted before `before` (unix seconds) that have no outcome as
    /// outcome-unknown; how many were closed (at most one batch).
    async fn close_approvals_before(&self, before: i64) -> Result<usize, GateError> {
        let mut closed = 0;
        for row in self.store.stale_approved(before).await? {
            let Some(challenge) = Challenge::read(&row) else {
                if self.close_unreadable(&row, true).await {
                    closed += 1;
                }
                continue;
            };
            let entry = self.entry(
                &challenge,
                Outcome::OutcomeUnknown,
                "voxgate stopped while running it, so whether it ran is unknown; check the \
                 resource",
                &Actor::Voxgate,
            );
            match self
                .transition(&challenge, &["approved"], State::OutcomeUnknown, entry)
                .await
            {
                Ok(true) => closed += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, challenge = %challenge.id, "could not close a stale approval");
                }
            }
        }
        Ok(closed)
    }
}
