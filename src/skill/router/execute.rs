//! Running an approved operation: the guard again, a session limited to exactly that
//! change, the call, and its outcome in the audit log, all inside Alexa's 8 s.

use super::*;

/// How long running an approved operation may take in all (the tag re-check, the session,
/// the change), inside Alexa's 8 s.
const EXECUTION_DEADLINE: std::time::Duration = std::time::Duration::from_millis(6500);

/// How running an approved operation went.
enum Run {
    /// It ran.
    Done(crate::ops::catalog::Done),
    /// The resource lost its managed tag.
    NotManaged,
    /// What was approved is no longer what would run.
    Changed(String),
    /// The account is no longer linked.
    NoAccount,
    /// No session.
    Broker(LinkedAccount, BrokerError),
    /// The AWS call failed (or got no answer: [`OpsError::NoAnswer`]).
    Ops(LinkedAccount, OpsError),
    /// The deadline passed before the change was sent.
    Unreachable(String),
    /// The deadline passed after the change was sent.
    Unknown(String),
}

impl Skill {
    /// Records how an approved operation ended (a failure to record is logged by the gate
    /// and the audit log; the person still hears what happened).
    pub(super) async fn finish(&self, challenge: &Challenge, execution: Execution, acting: &Actor) {
        if let Err(error) = self.gate.finish(challenge, execution, acting).await {
            warn!(%error, challenge = %challenge.id, "could not record the outcome");
        }
    }

    /// Runs an approved operation: the tag guard again, a session limited to exactly this
    /// action on exactly this instance, the call, and its outcome in the audit log. The
    /// whole run has a deadline inside Alexa's 8 s; a change that was sent but got no answer
    /// in time is reported (and recorded) as unknown, never retried.
    pub(super) async fn execute(
        &self,
        turn: &Turn,
        speaking: &Speaking,
        challenge: &Challenge,
        acting: &Actor,
    ) -> ResponseBuilder {
        let op = &challenge.operation;
        let sent = std::sync::atomic::AtomicBool::new(false);
        let deadline = tokio::time::Instant::now() + EXECUTION_DEADLINE;
        let run = tokio::time::timeout_at(deadline, self.run(speaking, op, &sent, deadline)).await;
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(_) if sent.load(std::sync::atomic::Ordering::SeqCst) => {
                Run::Unknown("no answer from AWS before the deadline".into())
            }
            Err(_) => Run::Unreachable("the deadline passed before the change was sent".into()),
        };
        match outcome {
            Run::Done(done) => {
                let detail = done.request_id.clone();
                let execution = match done.settled() {
                    Settled::Done => Execution::Executed(detail),
                    Settled::Refused => Execution::Failed(detail.unwrap_or_default()),
                    Settled::Unknown => Execution::Unknown(detail.unwrap_or_default()),
                };
                self.finish(challenge, execution, acting).await;
                let card = done.card(&challenge.summary);
                turn.say(Line::Done(done.report))
                    .simple_card(Line::CardTitle.text(turn.locale), card)
                    .end_session(true)
            }
            Run::NotManaged => {
                self.finish(
                    challenge,
                    Execution::Failed(format!(
                        "refused by the tag guard: lacks {}",
                        self.managed_tag
                    )),
                    acting,
                )
                .await;
                turn.say(Line::NoLongerManaged(op.clone()))
                    .end_session(true)
            }
            Run::Changed(reason) => {
                self.finish(
                    challenge,
                    Execution::Failed(format!("refused by the guard: {reason}")),
                    acting,
                )
                .await;
                turn.say(Line::ChangedSinceApproval).end_session(true)
            }
            Run::NoAccount => {
                self.finish(
                    challenge,
                    Execution::Failed("the account is no longer linked".into()),
                    acting,
                )
                .await;
                turn.say(Line::AwsFailed).end_session(true)
            }
            Run::Broker(account, error) => {
                self.finish(challenge, Execution::Failed(error.to_string()), acting)
                    .await;
                turn.broker_failure(&account, &error)
            }
            Run::Ops(account, OpsError::NoAnswer(detail)) => {
                warn!(account = %account.id, detail, "no answer to a change; its outcome is unknown");
                self.finish(challenge, Execution::Unknown(detail), acting)
                    .await;
                turn.say(Line::OutcomeUnknown(op.clone())).end_session(true)
            }
            Run::Ops(account, error) => {
                self.finish(challenge, Execution::Failed(error.to_string()), acting)
                    .await;
                turn.ops_failure(&account, &error)
            }
            Run::Unreachable(detail) => {
                warn!(detail, "no change sent before the deadline");
                self.finish(challenge, Execution::Failed(detail), acting)
                    .await;
                turn.say(Line::AwsUnreachable).end_session(true)
            }
            Run::Unknown(detail) => {
                warn!(
                    detail,
                    "a change got no answer before the deadline; its outcome is unknown"
                );
                self.finish(challenge, Execution::Unknown(detail), acting)
                    .await;
                turn.say(Line::OutcomeUnknown(op.clone())).end_session(true)
            }
        }
    }

    /// The steps of [`Skill::execute`]; `sent` turns true just before the change is sent.
    async fn run(
        &self,
        speaking: &Speaking,
        op: &Operation,
        sent: &std::sync::atomic::AtomicBool,
        deadline: tokio::time::Instant,
    ) -> Run {
        let Some(account) = speaking
            .accounts
            .iter()
            .find(|a| a.id.as_str() == op.account_id())
        else {
            return Run::NoAccount;
        };
        let read = match self
            .broker
            .session(account, &speaking.user, &op.guard_policy())
            .await
        {
            Ok(read) => read,
            Err(error) => return Run::Broker(account.clone(), error),
        };
        match op.guard(&read, &self.managed_tag, self.gate.now()).await {
            Ok(Guard::Clear) => {}
            Ok(Guard::NotManaged) => return Run::NotManaged,
            Ok(Guard::Changed(reason)) => return Run::Changed(reason),
            Err(error) => return Run::Ops(account.clone(), error),
        }
        let session = match self.broker.aws_account_of(account).await {
            Ok(aws_account) => {
                self.broker
                    .operation_session(
                        account,
                        &speaking.user,
                        &op.policy(&aws_account, &self.managed_tag),
                    )
                    .await
            }
            Err(error) => Err(error),
        };
        let session = match session {
            Ok(session) => session,
            Err(error) => return Run::Broker(account.clone(), error),
        };
        sent.store(true, std::sync::atomic::Ordering::SeqCst);
        match op.execute(&session, deadline).await {
            Ok(done) => Run::Done(done),
            Err(error) => Run::Ops(account.clone(), error),
        }
    }
}
