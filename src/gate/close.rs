//! Ending a challenge: denied in the app, cancelled by voice, or the recorded outcome of
//! its run.

use super::*;

impl Gate {
    /// Ends the user's challenge for good: denied in the app.
    pub async fn deny(&self, user: &User, id: &str, actor: &Actor) -> Result<Closing, GateError> {
        self.close(user, id, State::Denied, Outcome::Denied, actor)
            .await
    }

    /// Ends the user's challenge for good: cancelled by voice.
    pub async fn cancel(&self, user: &User, id: &str, actor: &Actor) -> Result<Closing, GateError> {
        self.close(user, id, State::Cancelled, Outcome::Cancelled, actor)
            .await
    }

    pub(super) async fn close(
        &self,
        user: &User,
        id: &str,
        to: State,
        outcome: Outcome,
        actor: &Actor,
    ) -> Result<Closing, GateError> {
        let Some(challenge) = self.challenge_of(user, id).await? else {
            return Ok(Closing::NotFound);
        };
        let entry = self.entry(&challenge, outcome, "", actor);
        if self.transition(&challenge, &["pending"], to, entry).await? {
            let mut closed = challenge;
            closed.state = to;
            return Ok(Closing::Closed(closed));
        }
        // It left `pending` first (approved and running, expired, …): say which.
        match self.challenge_of(user, id).await? {
            Some(current) => Ok(Closing::TooLate(current)),
            None => Ok(Closing::NotFound),
        }
    }

    /// Records how an approved operation ended. Only the first outcome is ever written: a
    /// challenge that is no longer `approved` (e.g. the sweeper already said its outcome is
    /// unknown) gets no second, contradicting one.
    pub async fn finish(
        &self,
        challenge: &Challenge,
        execution: Execution,
        actor: &Actor,
    ) -> Result<Finish, GateError> {
        let (to, outcome, detail, request_id) = match execution {
            Execution::Executed(request_id) => (
                State::Executed,
                Outcome::Executed,
                String::new(),
                request_id,
            ),
            Execution::Failed(detail) => (State::Failed, Outcome::Failed, detail, None),
            Execution::Unknown(detail) => {
                (State::OutcomeUnknown, Outcome::OutcomeUnknown, detail, None)
            }
        };
        let mut entry = self.entry(challenge, outcome, &detail, actor);
        entry.aws_request_id = request_id;
        if self.transition(challenge, &["approved"], to, entry).await? {
            return Ok(Finish::Recorded);
        }
        let state = self
            .store
            .challenge(&challenge.id)
            .await?
            .and_then(|row| State::parse(&row.state))
            .unwrap_or(State::Unreadable);
        tracing::warn!(
            challenge = %challenge.id,
            state = state.as_str(),
            outcome = %outcome,
            "an outcome arrived for a challenge that already has one; not recorded"
        );
        Ok(Finish::AlreadyClosed(state))
    }
}
