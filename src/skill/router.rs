//! The intent router: one handler per request type and per intent of the model. The match
//! over [`IntentName`] is exhaustive, so an intent added to the list without a handler does
//! not compile.

use std::sync::Arc;

use serde_json::Map;
use tracing::{info, warn};

use super::intents::{CODE_SLOT, INSTANCE_SLOT, IntentName, REGION_SLOT};
use super::names::{self, Match};
use super::speech::{CleanupCounts, InstanceCounts, Line, Locale, Scope, VpnStates};
use crate::alexa::envelope::{
    CanFulfillIntentRequest, ConfirmationStatus, Intent, IntentRequest, RequestKind,
    SessionEndedReason, SessionEndedRequest, SkillEvent,
};
use crate::alexa::response::{CanFulfillIntent, Card, Directive, OutputSpeech, ResponseBuilder};
use crate::alexa::{RequestEnvelope, ResponseEnvelope};
use crate::audit::{Actor, Outcome};
use crate::cloud::arn::Region;
use crate::cloud::broker::{AwsSession, Broker, BrokerError};
use crate::gate::{Challenge, Closing, Execution, Gate, GateError, State, Verdict};
use crate::identity::{Identity, Speaker};
use crate::ops::catalog::{Criticality, Guard, Settled};
use crate::ops::instances::{self, Action, InstanceInfo, InstanceOperation, InstanceState};
use crate::ops::{ManagedTag, Operation, OpsError, cleanup, vpn};
use crate::store::{LinkedAccount, Store, User};

/// The session attribute that carries the held challenge's id between turns.
pub const CHALLENGE_ATTRIBUTE: &str = "challengeId";

/// The skill: turns verified requests into responses.
#[derive(Debug)]
pub struct Skill {
    store: Arc<dyn Store>,
    identity: Identity,
    broker: Arc<Broker>,
    gate: Arc<Gate>,
    managed_tag: ManagedTag,
    snapshot_age: time::Duration,
}

/// How old an unused snapshot must be before the cleanup report lists it, by default.
pub const DEFAULT_SNAPSHOT_AGE_DAYS: i64 = 90;

/// The speaker and the AWS accounts of their tenant.
struct Speaking {
    user: User,
    accounts: Vec<LinkedAccount>,
}

impl Skill {
    /// A skill reading users and accounts from `store`, reaching AWS through `broker`,
    /// holding critical operations at `gate`, and changing only instances tagged
    /// `managed_tag`.
    pub fn new(
        store: Arc<dyn Store>,
        identity: Identity,
        broker: Arc<Broker>,
        gate: Arc<Gate>,
        managed_tag: ManagedTag,
    ) -> Self {
        Self {
            store,
            identity,
            broker,
            gate,
            managed_tag,
            snapshot_age: time::Duration::days(DEFAULT_SNAPSHOT_AGE_DAYS),
        }
    }

    /// Lists unused snapshots in the cleanup report only once they are `days` old.
    pub fn with_snapshot_age_days(mut self, days: i64) -> Self {
        self.snapshot_age = time::Duration::days(days.max(0));
        self
    }

    /// Answers one verified request.
    pub async fn handle(&self, envelope: &RequestEnvelope) -> ResponseEnvelope {
        let locale = Locale::from_tag(envelope.request.locale.as_deref());
        let turn = Turn { locale };
        let builder = match &envelope.request.kind {
            RequestKind::Launch => turn.launch(),
            RequestKind::Intent(intent) => self.intent(&turn, envelope, intent).await,
            RequestKind::SessionEnded(ended) => return session_ended(ended),
            RequestKind::CanFulfillIntent(question) => can_fulfill(question),
            RequestKind::SkillEvent(event) => return skill_event(event),
            RequestKind::Other { request_type } => {
                info!(
                    request_type,
                    "answered a request type voxgate does not handle"
                );
                turn.say(Line::UnsupportedRequest).end_session(true)
            }
        };
        turn.finish(builder)
    }

    async fn intent(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        request: &IntentRequest,
    ) -> ResponseBuilder {
        let Some(intent) = IntentName::from_name(&request.intent.name) else {
            // The deployed model knows an intent this build does not: answer like the
            // fallback rather than fail.
            warn!(intent = %request.intent.name, "intent not known to this build");
            return turn.fallback();
        };
        match intent {
            IntentName::Help => turn
                .say(Line::Help)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::Stop | IntentName::Cancel => self.cancel(turn, envelope).await,
            IntentName::Fallback => turn.fallback(),
            IntentName::NavigateHome => turn
                .say(Line::Home)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::VerifyCode => self.verify_code(turn, envelope, &request.intent).await,
            IntentName::ListInstances => self.list_instances(turn, envelope, &request.intent).await,
            IntentName::InstanceStatus => {
                self.instance_status(turn, envelope, &request.intent).await
            }
            IntentName::StartInstance => {
                self.critical(turn, envelope, &request.intent, Action::Start)
                    .await
            }
            IntentName::StopInstance => {
                self.critical(turn, envelope, &request.intent, Action::Stop)
                    .await
            }
            IntentName::RebootInstance => {
                self.critical(turn, envelope, &request.intent, Action::Reboot)
                    .await
            }
            IntentName::CleanupReport => self.cleanup(turn, envelope, &request.intent, false).await,
            IntentName::Cleanup => self.cleanup(turn, envelope, &request.intent, true).await,
            IntentName::VpnStatus => self.vpn(turn, envelope, &request.intent).await,
        }
    }

    /// "stop the web server": find it, check the tag guard, hold it for the code.
    async fn critical(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
        action: Action,
    ) -> ResponseBuilder {
        let (speaking, account, region, instance) =
            match self.named_instance(turn, envelope, intent).await {
                Ok(found) => found,
                Err(answer) => return answer,
            };
        let instance_op = InstanceOperation {
            action,
            account_id: account.id.as_str().to_owned(),
            account_name: account.name.clone(),
            region,
            instance_id: instance.id.clone(),
            instance_name: instance.label().to_owned(),
        };
        // Nothing to do: not held, nothing to approve.
        if action.would_do_nothing(instance.state) {
            return turn
                .say(Line::AlreadyInState {
                    name: instance_op.instance_name.clone(),
                    state: instance.state,
                })
                .end_session(true);
        }
        let operation = Operation::Instance(instance_op);
        // The tag guard: refused before anything is held or changed.
        if !self.managed_tag.marks(&instance.tags) {
            self.gate
                .record_unheld(
                    &speaking.user,
                    &operation,
                    Outcome::RefusedByTagGuard,
                    &format!("lacks {}", self.managed_tag),
                    &actor(envelope),
                )
                .await;
            return turn
                .say(Line::NotManaged {
                    name: instance.label().to_owned(),
                    tag: self.managed_tag.to_string(),
                })
                .end_session(true);
        }
        self.hold(turn, envelope, intent, &speaking, operation)
            .await
    }

    /// Holds `operation` for the code (asking first before replacing another one waiting).
    async fn hold(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
        speaking: &Speaking,
        operation: Operation,
    ) -> ResponseBuilder {
        let acting = actor(envelope);
        let held = match self.gate.hold(&speaking.user, &operation, &acting).await {
            Ok(challenge) => challenge,
            Err(GateError::AlreadyPending(old)) if old.digest == operation.digest() => *old,
            Err(GateError::AlreadyPending(old)) => match intent.confirmation_status {
                ConfirmationStatus::Confirmed => {
                    match self
                        .gate
                        .replace(&speaking.user, &old.id, &operation, &acting)
                        .await
                    {
                        Ok(challenge) => challenge,
                        Err(error) => return turn.gate_failure(&error),
                    }
                }
                ConfirmationStatus::Denied => {
                    return turn.ask_for_code(
                        Line::KeptOld {
                            old: old.summary.clone(),
                        },
                        &old,
                    );
                }
                ConfirmationStatus::None | ConfirmationStatus::Unknown => {
                    return turn
                        .say(Line::ReplaceAsk {
                            old: old.summary.clone(),
                            new: operation.summary(),
                        })
                        .reprompt(turn.speech(Line::ReplaceAsk {
                            old: old.summary.clone(),
                            new: operation.summary(),
                        }))
                        .directive(Directive::ConfirmIntent {
                            updated_intent: Some(intent.clone()),
                        })
                        .end_session(false);
                }
            },
            Err(error) => return turn.gate_failure(&error),
        };
        turn.ask_for_code(
            Line::Held {
                summary: held.summary.clone(),
            },
            &held,
        )
        .card(Card::Simple {
            title: Line::ApprovalCardTitle.text(turn.locale),
            content: format!(
                "{}\n{}",
                held.summary,
                Line::ApprovalCardHint.text(turn.locale)
            ),
        })
    }

    /// A spoken code: confirm it, and run the operation if it is right.
    async fn verify_code(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let attributes = envelope.session_attributes();
        let challenge_id = attributes.get(CHALLENGE_ATTRIBUTE).and_then(|v| v.as_str());
        let Some(spoken) = intent.slot_value(CODE_SLOT) else {
            return turn
                .say(Line::AskCode)
                .reprompt(turn.speech(Line::HeldReprompt))
                .directive(Directive::ElicitSlot {
                    slot_to_elicit: CODE_SLOT.to_owned(),
                    updated_intent: Some(intent.clone()),
                })
                .attributes(attributes.clone())
                .end_session(false);
        };
        let user = match self.speaker(turn, envelope).await {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        let acting = actor(envelope);
        let verdict = match self
            .gate
            .confirm(&user, challenge_id, spoken, &acting)
            .await
        {
            Ok(verdict) => verdict,
            Err(error) => return turn.gate_failure(&error),
        };
        match verdict {
            Verdict::Approved(challenge) => match self.accounts_of(turn, user).await {
                Ok(speaking) => self.execute(turn, &speaking, &challenge, &acting).await,
                Err(answer) => {
                    self.finish(
                        &challenge,
                        Execution::Failed("the tenant has no linked account".into()),
                        &acting,
                    )
                    .await;
                    answer
                }
            },
            Verdict::WrongCode {
                tries_left,
                challenge,
            } => turn.ask_for_code(Line::WrongCode { tries_left }, &challenge),
            Verdict::TooManyWrongCodes(_) => turn.say(Line::TooManyWrongCodes).end_session(true),
            Verdict::LockedOut(wait) => turn
                .say(Line::LockedOut {
                    seconds: wait.whole_seconds().max(1),
                })
                .end_session(true),
            Verdict::AlreadyUsed(_) => turn.say(Line::CodeReused).end_session(true),
            Verdict::AlreadyApproved(_) => turn.say(Line::AlreadyApproved).end_session(true),
            Verdict::Denied(_) => turn.say(Line::ChallengeDenied).end_session(true),
            Verdict::Cancelled(_) => turn.say(Line::ChallengeCancelled).end_session(true),
            Verdict::Replaced(_) => turn.say(Line::ChallengeReplaced).end_session(true),
            Verdict::Expired(_) => turn.say(Line::ChallengeExpired).end_session(true),
            Verdict::EndedByWrongCodes(_) => {
                turn.say(Line::ChallengeEndedByWrongCodes).end_session(true)
            }
            Verdict::Unreadable => turn.say(Line::ChallengeUnreadable).end_session(true),
            Verdict::Busy => turn.say(Line::CheckBusy).end_session(false),
            Verdict::NothingPending => turn
                .say(Line::NothingToVerify)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
        }
    }

    /// Records how an approved operation ended (a failure to record is logged by the gate
    /// and the audit log; the person still hears what happened).
    async fn finish(&self, challenge: &Challenge, execution: Execution, acting: &Actor) {
        if let Err(error) = self.gate.finish(challenge, execution, acting).await {
            warn!(%error, challenge = %challenge.id, "could not record the outcome");
        }
    }

    /// Runs an approved operation: the tag guard again, a session limited to exactly this
    /// action on exactly this instance, the call, and its outcome in the audit log. The
    /// whole run has a deadline inside Alexa's 8 s; a change that was sent but got no answer
    /// in time is reported (and recorded) as unknown, never retried.
    async fn execute(
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
                turn.say(Line::Done(done.report)).end_session(true)
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

    /// "cancel" / "stop": ends the person's held operation for good (the one of this
    /// session, or else the one waiting for them).
    async fn cancel(&self, turn: &Turn, envelope: &RequestEnvelope) -> ResponseBuilder {
        let Ok(Speaker::Known(user)) = self.identity.who(envelope).await else {
            return turn.say(Line::Goodbye).end_session(true);
        };
        let attributes = envelope.session_attributes();
        let id = match attributes.get(CHALLENGE_ATTRIBUTE).and_then(|v| v.as_str()) {
            Some(id) => Some(id.to_owned()),
            None => match self.gate.pending(&user.id).await {
                Ok(pending) => pending.map(|c| c.id),
                Err(error) => return turn.gate_failure(&error),
            },
        };
        let Some(id) = id else {
            return turn.say(Line::Goodbye).end_session(true);
        };
        match self.gate.cancel(&user, &id, &actor(envelope)).await {
            Ok(Closing::Closed(challenge)) => turn
                .say(Line::Cancelled {
                    summary: challenge.summary,
                })
                .end_session(true),
            Ok(Closing::TooLate(challenge)) if challenge.state == State::Approved => turn
                .say(Line::TooLateToCancel {
                    summary: challenge.summary,
                })
                .end_session(true),
            Ok(Closing::TooLate(_) | Closing::NotFound) => {
                turn.say(Line::Goodbye).end_session(true)
            }
            Err(GateError::Unreadable(_)) => turn.say(Line::ChallengeUnreadable).end_session(true),
            Err(error) => turn.gate_failure(&error),
        }
    }

    /// Who is speaking; or what to tell them instead.
    async fn speaker(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
    ) -> Result<User, ResponseBuilder> {
        match self.identity.who(envelope).await {
            Ok(Speaker::Known(user)) => Ok(user),
            Ok(Speaker::LinkRequired) => Err(turn
                .say(Line::LinkAccount)
                .card(Card::LinkAccount)
                .end_session(true)),
            Ok(Speaker::Unknown) => Err(turn.say(Line::NotEnrolled).end_session(true)),
            Err(error) => {
                warn!(%error, "store unavailable while identifying the speaker");
                Err(turn.say(Line::InternalError).end_session(true))
            }
        }
    }

    /// The accounts `user` may act in; or what to tell them instead.
    async fn accounts_of(&self, turn: &Turn, user: User) -> Result<Speaking, ResponseBuilder> {
        let accounts = match self.store.accounts(Some(&user.tenant_id)).await {
            Ok(accounts) if accounts.is_empty() => {
                return Err(turn.say(Line::NoLinkedAccount).end_session(true));
            }
            Ok(accounts) => accounts,
            Err(error) => {
                warn!(%error, "store unavailable while listing accounts");
                return Err(turn.say(Line::InternalError).end_session(true));
            }
        };
        Ok(Speaking { user, accounts })
    }

    /// Who is speaking and which accounts they may look at; or what to tell them instead.
    async fn speaking(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
    ) -> Result<Speaking, ResponseBuilder> {
        let user = self.speaker(turn, envelope).await?;
        self.accounts_of(turn, user).await
    }

    /// Every live instance in each linked account (in `region`, or each account's own).
    async fn instances(
        &self,
        turn: &Turn,
        speaking: &Speaking,
        region: Option<&Region>,
    ) -> Result<Vec<(LinkedAccount, String, Vec<InstanceInfo>)>, ResponseBuilder> {
        let policy = instances::list_instances_policy();
        let mut found = Vec::new();
        for (account, region, session) in self.sessions(turn, speaking, &policy, region).await? {
            let instances = instances::list_instances(&session.ec2(Some(&region)))
                .await
                .map_err(|error| turn.ops_failure(&account, &error))?;
            found.push((account, region, instances));
        }
        Ok(found)
    }

    /// Who is speaking, their accounts, and the region they named (if any); or what to tell
    /// them instead (an unknown region is said back, never guessed).
    async fn speaking_in(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> Result<(Speaking, Option<Region>), ResponseBuilder> {
        let region = region_slot(intent).map_err(|spoken| {
            turn.say(Line::UnknownRegion { spoken })
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false)
        })?;
        Ok((self.speaking(turn, envelope).await?, region))
    }

    /// A session limited to `policy` in each of the speaker's accounts, with the region to
    /// look in there (`region`, or the account's own).
    async fn sessions(
        &self,
        turn: &Turn,
        speaking: &Speaking,
        policy: &crate::cloud::policy::SessionPolicy,
        region: Option<&Region>,
    ) -> Result<Vec<(LinkedAccount, String, AwsSession)>, ResponseBuilder> {
        let mut sessions = Vec::new();
        for account in &speaking.accounts {
            let session = self
                .broker
                .session(account, &speaking.user, policy)
                .await
                .map_err(|error| turn.broker_failure(account, &error))?;
            let region = region
                .map_or(account.region.as_str(), Region::as_str)
                .to_owned();
            sessions.push((account.clone(), region, session));
        }
        Ok(sessions)
    }

    /// "what can I clean up" (`delete` false) and "clean up unused resources" (`delete`
    /// true: holds the deletion of exactly the managed unused resources it found, in the
    /// first account that has any).
    async fn cleanup(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
        delete: bool,
    ) -> ResponseBuilder {
        let (speaking, region) = match self.speaking_in(turn, envelope, intent).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let several = speaking.accounts.len() > 1;
        let sessions = match self
            .sessions(turn, &speaking, &cleanup::report_policy(), region.as_ref())
            .await
        {
            Ok(sessions) => sessions,
            Err(answer) => return answer,
        };
        let now = self.gate.now();
        let mut reports = Vec::new();
        for (account, region, session) in sessions {
            let ec2 = session.ec2(Some(&region));
            match cleanup::report(&ec2, &region, &self.managed_tag, self.snapshot_age, now).await {
                Ok(report) => reports.push((account, region, report)),
                Err(error) => return turn.ops_failure(&account, &error),
            }
        }
        let mut card = Vec::new();
        for (account, region, report) in &reports {
            card.push(format!("{} ({region}):", account.name));
            if report.unused.is_empty() {
                card.push("  nothing unused".into());
            }
            for u in &report.unused {
                card.push(format!(
                    "  {} {}{}, {} a month{}",
                    u.id,
                    u.label.as_deref().unwrap_or(""),
                    if u.size_gib > 0 {
                        format!(" {} GiB", u.size_gib)
                    } else {
                        String::new()
                    },
                    cleanup::dollars(u.monthly_cents),
                    if u.managed { "" } else { ", not managed" }
                ));
            }
        }
        card.push("Costs are estimates from list prices.".into());
        if !delete {
            let scopes = reports
                .into_iter()
                .map(|(account, region, report)| CleanupCounts {
                    scope: Scope {
                        account: several.then(|| account.name.clone()),
                        region,
                    },
                    unused: report.unused,
                })
                .collect();
            return turn
                .say(Line::CleanupReport(scopes))
                .simple_card(Line::CardTitle.text(turn.locale), card.join("\n"))
                .end_session(true);
        }
        let unmanaged = reports
            .iter()
            .map(|(_, _, r)| r.unused.iter().filter(|u| !u.managed).count())
            .sum();
        let Some((account, region, report)) = reports
            .into_iter()
            .find(|(_, _, report)| !report.managed().is_empty())
        else {
            return turn
                .say(Line::NothingToClean { unmanaged })
                .end_session(true);
        };
        let operation = Operation::Cleanup(cleanup::CleanupOperation {
            account_id: account.id.as_str().to_owned(),
            account_name: account.name.clone(),
            resources: report.next_cleanup(&region, &self.managed_tag),
            region,
            snapshot_age_days: self.snapshot_age.whole_days(),
        });
        self.hold(turn, envelope, intent, &speaking, operation)
            .await
    }

    /// "is my VPN up": every site-to-site connection and its tunnels, per account.
    async fn vpn(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let (speaking, region) = match self.speaking_in(turn, envelope, intent).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let several = speaking.accounts.len() > 1;
        let sessions = match self
            .sessions(turn, &speaking, &vpn::policy(), region.as_ref())
            .await
        {
            Ok(sessions) => sessions,
            Err(answer) => return answer,
        };
        let mut scopes = Vec::new();
        let mut card = Vec::new();
        for (account, region, session) in sessions {
            let connections = match vpn::connections(&session.ec2(Some(&region))).await {
                Ok(connections) => connections,
                Err(error) => return turn.ops_failure(&account, &error),
            };
            card.push(format!("{} ({region}):", account.name));
            for c in &connections {
                card.push(format!(
                    "  {} ({}) {}, tunnels up {}/{}",
                    c.label(),
                    c.id,
                    c.state,
                    c.tunnels_up,
                    c.tunnels
                ));
            }
            scopes.push(VpnStates {
                scope: Scope {
                    account: several.then(|| account.name.clone()),
                    region,
                },
                connections,
            });
        }
        turn.say(Line::Vpn(scopes))
            .simple_card(Line::CardTitle.text(turn.locale), card.join("\n"))
            .end_session(true)
    }

    async fn list_instances(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let (speaking, region) = match self.speaking_in(turn, envelope, intent).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let found = match self.instances(turn, &speaking, region.as_ref()).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let several = found.len() > 1;
        let mut counts = Vec::new();
        let mut card = Vec::new();
        for (account, region, instances) in &found {
            let label = |state| {
                instances
                    .iter()
                    .filter(|i| i.state == state)
                    .map(|i| i.label().to_owned())
                    .collect::<Vec<_>>()
            };
            counts.push(InstanceCounts {
                scope: Scope {
                    account: several.then(|| account.name.clone()),
                    region: region.clone(),
                },
                running: label(InstanceState::Running),
                stopped: label(InstanceState::Stopped),
                changing: instances
                    .iter()
                    .filter(|i| !matches!(i.state, InstanceState::Running | InstanceState::Stopped))
                    .count(),
            });
            card.push(format!("{} ({region}):", account.name));
            if instances.is_empty() {
                card.push("  no instances".into());
            }
            for i in instances {
                card.push(format!(
                    "  {} ({}) {}, {}",
                    i.label(),
                    i.id,
                    i.state.as_str(),
                    i.instance_type
                ));
            }
        }
        turn.say(Line::Instances(counts))
            .simple_card(Line::CardTitle.text(turn.locale), card.join("\n"))
            .end_session(true)
    }

    /// The instance the person named, across the tenant's accounts (each in its default
    /// region); or what to say instead: which one, which of these, or that there is none.
    async fn named_instance(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> Result<(Speaking, LinkedAccount, String, InstanceInfo), ResponseBuilder> {
        let Some(spoken) = intent.slot_value(INSTANCE_SLOT).map(str::to_owned) else {
            return Err(turn.ask_for_instance(Line::WhichInstance, intent));
        };
        let (speaking, region) = self.speaking_in(turn, envelope, intent).await?;
        let found = self.instances(turn, &speaking, region.as_ref()).await?;
        let several = found.len() > 1;
        let everything: Vec<(LinkedAccount, String, InstanceInfo)> = found
            .into_iter()
            .flat_map(|(account, region, instances)| {
                instances
                    .into_iter()
                    .map(move |i| (account.clone(), region.clone(), i))
            })
            .collect();
        let label = |(account, _, i): &(LinkedAccount, String, InstanceInfo)| {
            if several {
                format!("{} in {}", i.label(), account.name)
            } else {
                i.label().to_owned()
            }
        };
        match names::find(&spoken, &everything, |(_, _, i)| i.label()) {
            Match::One((account, region, instance)) => Ok((speaking, account, region, instance)),
            Match::Many(candidates) => Err(turn.ask_for_instance(
                Line::InstanceAmbiguous {
                    spoken,
                    candidates: candidates.iter().map(label).collect(),
                },
                intent,
            )),
            Match::None => Err(turn
                .say(Line::InstanceNotFound {
                    spoken,
                    known: everything.iter().map(label).collect(),
                })
                .end_session(true)),
        }
    }

    async fn instance_status(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let (_, account, region, instance) = match self.named_instance(turn, envelope, intent).await
        {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        turn.say(Line::InstanceState {
            name: instance.label().to_owned(),
            state: instance.state,
        })
        .simple_card(
            Line::CardTitle.text(turn.locale),
            format!(
                "{} ({}): {}, {}, {region}, account {}",
                instance.label(),
                instance.id,
                instance.state.as_str(),
                instance.instance_type,
                account.name
            ),
        )
        .end_session(true)
    }
}

/// The region the person named, if any; `Err` with what they said if it is no region.
fn region_slot(intent: &Intent) -> Result<Option<Region>, String> {
    let Some(slot) = intent.slots.get(REGION_SLOT) else {
        return Ok(None);
    };
    if let Some(id) = slot.resolved().and_then(|v| v.id.as_deref()) {
        return Region::parse(id).map(Some).map_err(|_| id.to_owned());
    }
    let Some(spoken) = slot.value.as_deref().filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    // "eu west one" → "eu-west-1".
    let code = spoken
        .split_whitespace()
        .map(|w| {
            let n = names::normalise(w);
            if n.is_empty() { w.to_lowercase() } else { n }
        })
        .collect::<Vec<_>>()
        .join("-");
    Region::parse(&code)
        .map(Some)
        .map_err(|_| spoken.to_owned())
}

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

/// Who is acting, for the audit log: the Alexa session (or, without one, the request).
fn actor(envelope: &RequestEnvelope) -> Actor {
    match &envelope.session {
        Some(session) => Actor::AlexaSession(session.session_id.clone()),
        None => Actor::AlexaSession(envelope.request.request_id.clone()),
    }
}

/// What every handler of one request shares.
struct Turn {
    locale: Locale,
}

impl Turn {
    fn speech(&self, line: Line) -> OutputSpeech {
        OutputSpeech::plain(line.text(self.locale))
    }

    fn say(&self, line: Line) -> ResponseBuilder {
        ResponseBuilder::new().speak(self.speech(line))
    }

    fn launch(&self) -> ResponseBuilder {
        self.say(Line::Welcome)
            .reprompt(self.speech(Line::WelcomeReprompt))
            .end_session(false)
    }

    fn fallback(&self) -> ResponseBuilder {
        self.say(Line::Fallback)
            .reprompt(self.speech(Line::FallbackReprompt))
            .end_session(false)
    }

    /// Says `line` and asks for the code of `challenge` (VerifyCodeIntent's code slot),
    /// carrying the challenge id in the session. The code itself never appears here.
    fn ask_for_code(&self, line: Line, challenge: &Challenge) -> ResponseBuilder {
        let mut verify = Intent::named(IntentName::VerifyCode.as_str());
        verify.slots.insert(
            CODE_SLOT.to_owned(),
            crate::alexa::envelope::Slot {
                name: CODE_SLOT.to_owned(),
                value: None,
                confirmation_status: ConfirmationStatus::None,
                resolutions: None,
            },
        );
        self.say(line)
            .reprompt(self.speech(Line::HeldReprompt))
            .directive(Directive::ElicitSlot {
                slot_to_elicit: CODE_SLOT.to_owned(),
                updated_intent: Some(verify),
            })
            .attribute(
                CHALLENGE_ATTRIBUTE,
                serde_json::Value::String(challenge.id.clone()),
            )
            .end_session(false)
    }

    fn gate_failure(&self, error: &GateError) -> ResponseBuilder {
        warn!(%error, "gate failure");
        let line = match error {
            GateError::Unreadable(_) => Line::ChallengeUnreadable,
            GateError::Unrecorded => Line::NotRecorded,
            _ => Line::InternalError,
        };
        self.say(line).end_session(true)
    }

    /// Asks (again) for the instance slot of `intent`.
    fn ask_for_instance(&self, line: Line, intent: &Intent) -> ResponseBuilder {
        self.say(line)
            .reprompt(self.speech(Line::WhichInstance))
            .directive(Directive::ElicitSlot {
                slot_to_elicit: INSTANCE_SLOT.to_owned(),
                updated_intent: Some(intent.clone()),
            })
            .end_session(false)
    }

    fn broker_failure(&self, account: &LinkedAccount, error: &BrokerError) -> ResponseBuilder {
        warn!(account = %account.id, %error, "no AWS session");
        let line = match error {
            BrokerError::TrustRejected(_) => Line::AwsTrustRejected,
            BrokerError::Unreachable(_) => Line::AwsUnreachable,
            BrokerError::Unseal(_) => Line::AccountDetailsUnavailable,
            BrokerError::Sts(_) => Line::AwsFailed,
        };
        self.say(line).end_session(true)
    }

    fn ops_failure(&self, account: &LinkedAccount, error: &OpsError) -> ResponseBuilder {
        warn!(account = %account.id, %error, "AWS call failed");
        let line = match error {
            OpsError::AccessDenied(_) => Line::AwsAccessDenied,
            OpsError::Unreachable(_) | OpsError::NoAnswer(_) => Line::AwsUnreachable,
            OpsError::Aws { .. } => Line::AwsFailed,
        };
        self.say(line).end_session(true)
    }

    /// Builds the response; one Alexa would refuse becomes a short spoken apology.
    fn finish(&self, builder: ResponseBuilder) -> ResponseEnvelope {
        builder.build().unwrap_or_else(|error| {
            warn!(%error, "response over Alexa's limits; sent a short answer instead");
            ResponseBuilder::new()
                .speak(self.speech(Line::AnswerTooLong))
                .end_session(false)
                .build()
                .unwrap_or_else(|_| ResponseEnvelope::empty())
        })
    }
}

/// `SessionEndedRequest` allows no speech; an error is worth a line in the operator log.
fn session_ended(ended: &SessionEndedRequest) -> ResponseEnvelope {
    match (&ended.reason, &ended.error) {
        (Some(SessionEndedReason::Error), Some(error)) => warn!(
            error_type = %error.error_type,
            message = error.message.as_deref().unwrap_or(""),
            "Alexa ended the session with an error"
        ),
        (reason, _) => info!(?reason, "session ended"),
    }
    ResponseEnvelope::empty()
}

/// Skill events need only an acknowledgement.
fn skill_event(event: &SkillEvent) -> ResponseEnvelope {
    info!(event = %event.event_type, "skill event");
    ResponseEnvelope::empty()
}

/// Name-free interaction: voxgate claims the read-only questions it can answer without a
/// session; the built-ins and the code intent make no sense outside one.
fn can_fulfill(question: &CanFulfillIntentRequest) -> ResponseBuilder {
    // Changes need a session (the code dialog); never claimed name-free.
    let answer = match crate::ops::catalog::find(&question.intent.name) {
        Some(declaration) if declaration.criticality == Criticality::Read => "YES",
        Some(_) | None => "NO",
    };
    ResponseBuilder::new().can_fulfill(CanFulfillIntent {
        can_fulfill: answer.to_owned(),
        slots: Map::new(),
    })
}
