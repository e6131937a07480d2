//! The intent router: the built-in intents are answered here (help, cancel, the spoken
//! code); every other intent goes to the operation family that declares it in the catalog
//! ([`crate::ops::catalog::find`]), and the family's [`Answer`] is put into words here. A
//! new operation needs no change in this file.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::intents::{CODE_SLOT, IntentName};
use super::speech::{Line, Locale};
use crate::alexa::envelope::{
    CanFulfillIntentRequest, ConfirmationStatus, Intent, IntentRequest, RequestKind,
    SessionEndedReason, SessionEndedRequest, SkillEvent,
};
use crate::alexa::response::{
    CanFulfillIntent, Card, Directive, EntityName, EntityType, EntityValue, OutputSpeech,
    ResponseBuilder,
};
use crate::alexa::{RequestEnvelope, ResponseEnvelope};
use crate::audit::{Actor, Outcome};
use crate::cloud::broker::{AwsSession, Broker, BrokerError};
use crate::gate::{Challenge, Closing, Execution, Gate, GateError, State, Verdict};
use crate::identity::{Identity, Speaker};
use crate::ops::ask::{Answer, Ask, Sessions, Settings, Spoken, Trouble};
use crate::ops::catalog::{Criticality, Declaration, Family, Guard, Settled};
use crate::ops::{ManagedTag, Operation, OpsError, SessionPolicy};
use crate::store::{LinkedAccount, Store, User};

mod execute;
mod turn;

use self::turn::Turn;

/// The session attribute that carries the held challenge's id between turns.
pub const CHALLENGE_ATTRIBUTE: &str = "challengeId";

/// The session attribute that carries the digest of the operation "should I replace …?"
/// was about: "yes" replaces with that operation only.
pub const REPLACE_ATTRIBUTE: &str = "replaceDigest";

/// The session attribute that carries what a family asked to remember while it asks a
/// question (`{"intent": …, "context": …}`); handed back only to the same intent.
pub const CONTEXT_ATTRIBUTE: &str = "askContext";

/// The skill: turns verified requests into responses.
#[derive(Debug)]
pub struct Skill {
    store: Arc<dyn Store>,
    identity: Identity,
    broker: Arc<Broker>,
    gate: Arc<Gate>,
    managed_tag: ManagedTag,
    settings: Settings,
}

/// How old an unused snapshot must be before the cleanup report lists it, by default.
pub const DEFAULT_SNAPSHOT_AGE_DAYS: i64 = 90;

/// The speaker and the AWS accounts of their tenant.
struct Speaking {
    user: User,
    accounts: Vec<LinkedAccount>,
}

/// Sessions for one speaker, from the broker.
struct SpeakerSessions<'a> {
    broker: &'a Broker,
    user: &'a User,
}

#[async_trait::async_trait]
impl Sessions for SpeakerSessions<'_> {
    async fn session(
        &self,
        account: &LinkedAccount,
        policy: &SessionPolicy,
    ) -> Result<AwsSession, BrokerError> {
        self.broker.session(account, self.user, policy).await
    }
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
            settings: Settings::default(),
        }
    }

    /// Lists unused snapshots in the cleanup report only once they are `days` old.
    pub fn with_snapshot_age_days(mut self, days: i64) -> Self {
        self.settings.snapshot_age = time::Duration::days(days.max(0));
        self
    }

    /// Reports active access keys in the security check once they are `days` old.
    pub fn with_key_age_days(mut self, days: i64) -> Self {
        self.settings.key_age = time::Duration::days(days.max(0));
        self
    }

    /// Whether answering `envelope` may change state: a spoken code (which may approve an
    /// operation and run it), a critical operation (held), cancel and stop (which end a held
    /// one), repeat and "what's waiting". Such a request is handled to the end even if Alexa
    /// hangs up: an approved operation runs, or fails, and is recorded, and a change the
    /// store committed is also announced to the companion app; nothing is dropped halfway.
    /// Only requests that read (Help, the fallback, opening the skill, the read operations,
    /// session ends, skill events, CanFulfill) may simply stop when their caller goes away.
    pub fn must_run_to_the_end(envelope: &RequestEnvelope) -> bool {
        let RequestKind::Intent(request) = &envelope.request.kind else {
            return false;
        };
        let name = request.intent.name.as_str();
        match IntentName::from_name(name) {
            Some(IntentName::Help | IntentName::Fallback | IntentName::NavigateHome) => false,
            Some(_) => true,
            None => crate::ops::catalog::find(name).is_some_and(|(_, declaration)| {
                declaration.criticality != crate::ops::catalog::Criticality::Read
            }),
        }
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
        // When the person opens the skill for a conversation ("open cloud gate"), Alexa
        // learns their own resource names for the turns to come. Only then: finding them
        // costs a lookup of the speaker and a read of their accounts, which a one-shot
        // request (or Help) would pay for nothing.
        let opened = matches!(envelope.request.kind, RequestKind::Launch)
            && envelope.session.as_ref().is_some_and(|s| s.new);
        let builder = if opened && builder.open_without_directives() {
            match self.dynamic_entities(envelope).await {
                Some(directive) => builder.directive(directive),
                None => builder,
            }
        } else {
            builder
        };
        turn.finish(builder)
    }

    /// The `Dialog.UpdateDynamicEntities` for the speaker, if any family has values.
    async fn dynamic_entities(&self, envelope: &RequestEnvelope) -> Option<Directive> {
        let Ok(Speaker::Known(user)) = self.identity.who(envelope).await else {
            return None;
        };
        let accounts = self.store.accounts(Some(&user.tenant_id)).await.ok()?;
        if accounts.is_empty() {
            return None;
        }
        let sessions = SpeakerSessions {
            broker: &self.broker,
            user: &user,
        };
        let ask = Ask {
            slots: BTreeMap::new(),
            accounts: &accounts,
            managed: &self.managed_tag,
            now: self.gate.now(),
            settings: &self.settings,
            context: None,
            sessions: &sessions,
        };
        let mut types = Vec::new();
        for family in crate::ops::catalog::families() {
            for (name, values) in family.dynamic_entities(&ask).await {
                types.push(EntityType {
                    name: name.to_owned(),
                    values: values
                        .into_iter()
                        .map(|(id, value)| {
                            let spoken = value.replace(['-', '_', '.'], " ");
                            EntityValue {
                                id,
                                name: EntityName {
                                    synonyms: if spoken == value {
                                        vec![]
                                    } else {
                                        vec![spoken]
                                    },
                                    value,
                                },
                            }
                        })
                        .collect(),
                });
            }
        }
        (!types.is_empty()).then(|| Directive::UpdateDynamicEntities {
            update_behavior: "REPLACE".to_owned(),
            types,
        })
    }

    async fn intent(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        request: &IntentRequest,
    ) -> ResponseBuilder {
        let name = request.intent.name.as_str();
        let Some(intent) = IntentName::from_name(name) else {
            if let Some((family, declaration)) = crate::ops::catalog::find(name) {
                return self
                    .operation(turn, envelope, &request.intent, family, declaration)
                    .await;
            }
            // The deployed model knows an intent this build does not: answer like the
            // fallback rather than fail.
            warn!(intent = %name, "intent not known to this build");
            return turn.fallback();
        };
        match intent {
            IntentName::Help => turn
                .say(Line::Help)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::Cancel => self.cancel(turn, envelope).await,
            IntentName::Stop => self.stop(turn, envelope).await,
            IntentName::Fallback => turn.fallback(),
            IntentName::NavigateHome => turn
                .say(Line::Home)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::VerifyCode => self.verify_code(turn, envelope, &request.intent).await,
            IntentName::Repeat | IntentName::WhatIsWaiting => self.waiting(turn, envelope).await,
        }
    }

    /// An intent of the catalog: the family answers, this puts its answer into words (and
    /// holds a critical operation at the gate).
    async fn operation(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
        family: &'static dyn Family,
        declaration: &'static Declaration,
    ) -> ResponseBuilder {
        let speaking = match self.speaking(turn, envelope).await {
            Ok(speaking) => speaking,
            Err(answer) => return answer,
        };
        let sessions = SpeakerSessions {
            broker: &self.broker,
            user: &speaking.user,
        };
        let attributes = envelope.session_attributes();
        let context = attributes
            .get(CONTEXT_ATTRIBUTE)
            .filter(|saved| saved.get("intent").and_then(Value::as_str) == Some(&intent.name))
            .and_then(|saved| saved.get("context"))
            .cloned();
        let slots: BTreeMap<String, Spoken> = intent
            .slots
            .iter()
            .map(|(name, slot)| {
                let spoken = Spoken {
                    value: slot.value.clone(),
                    id: slot.resolved().and_then(|v| v.id.clone()),
                };
                (name.clone(), spoken)
            })
            .collect();
        let ask = Ask {
            slots,
            accounts: &speaking.accounts,
            managed: &self.managed_tag,
            now: self.gate.now(),
            settings: &self.settings,
            context,
            sessions: &sessions,
        };
        match family.answer(declaration, &ask).await {
            Answer::Say { reply, card } => {
                let said = turn.say(Line::Reply(reply)).end_session(true);
                match card {
                    Some(card) => said.simple_card(Line::CardTitle.text(turn.locale), card),
                    None => said,
                }
            }
            Answer::Elicit {
                reply,
                slot,
                context,
            } => {
                let mut asked = turn
                    .say(Line::Reply(reply.clone()))
                    .reprompt(turn.speech(Line::Reply(reply)))
                    .directive(Directive::ElicitSlot {
                        slot_to_elicit: slot.to_owned(),
                        updated_intent: Some(intent.clone()),
                    });
                if let Some(context) = context {
                    asked = asked.attribute(
                        CONTEXT_ATTRIBUTE,
                        json!({"intent": intent.name, "context": context}),
                    );
                }
                asked.end_session(false)
            }
            Answer::Hold(operation) => {
                self.hold(turn, envelope, intent, &speaking, *operation)
                    .await
            }
            Answer::Refused {
                operation,
                reason,
                reply,
            } => {
                self.gate
                    .record_unheld(
                        &speaking.user,
                        &operation,
                        Outcome::RefusedByTagGuard,
                        &reason,
                        &actor(envelope),
                    )
                    .await;
                turn.say(Line::Reply(reply)).end_session(true)
            }
            Answer::Trouble(account, Trouble::Session(error)) => {
                turn.broker_failure(&account, &error)
            }
            Answer::Trouble(account, Trouble::Aws(error)) => turn.ops_failure(&account, &error),
        }
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
                // "yes" replaces only with the operation the question named: re-resolved now,
                // it must have the same digest, else the question is asked again.
                ConfirmationStatus::Confirmed
                    if envelope
                        .session_attributes()
                        .get(REPLACE_ATTRIBUTE)
                        .and_then(Value::as_str)
                        == Some(operation.digest().as_str()) =>
                {
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
                ConfirmationStatus::Confirmed
                | ConfirmationStatus::None
                | ConfirmationStatus::Unknown => {
                    // The session keeps what the question was about (and the family's
                    // context, so the intent resolves the same way after "yes").
                    let mut attributes = envelope.session_attributes();
                    attributes.insert(REPLACE_ATTRIBUTE.to_owned(), json!(operation.digest()));
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
                        .attributes(attributes)
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
        // Not a whole code (Alexa's "?", or a group of three digits heard after a pause):
        // asked again, and it costs no try.
        let heard = intent.slot_value(CODE_SLOT);
        if let Some(spoken) = heard
            && !is_whole_code(spoken)
        {
            return turn
                .say(Line::CodeNotHeard)
                .reprompt(turn.speech(Line::HeldReprompt))
                .directive(Directive::ElicitSlot {
                    slot_to_elicit: CODE_SLOT.to_owned(),
                    updated_intent: Some(intent.clone()),
                })
                .attributes(attributes.clone())
                .end_session(false);
        }
        let Some(spoken) = heard else {
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
                locked_for,
                next_lockout,
            } => turn.ask_for_code(
                Line::WrongCode {
                    tries_left,
                    wait_seconds: locked_for.map(|d| d.whole_seconds().max(1)),
                    next_lockout_seconds: next_lockout.map(|d| d.whole_seconds().max(1)),
                },
                &challenge,
            ),
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

    /// "repeat", "what's waiting for my approval": the held operation read again (and its
    /// code asked for), or that nothing is waiting.
    async fn waiting(&self, turn: &Turn, envelope: &RequestEnvelope) -> ResponseBuilder {
        let user = match self.speaker(turn, envelope).await {
            Ok(user) => user,
            Err(answer) => return answer,
        };
        match self.gate.pending(&user.id).await {
            Ok(Some(waiting)) => turn.ask_for_code(
                Line::Held {
                    summary: waiting.summary.clone(),
                },
                &waiting,
            ),
            Ok(None) => turn
                .say(Line::NothingWaiting)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            Err(error) => turn.gate_failure(&error),
        }
    }

    /// "stop": ends the conversation. A held operation stays held (only "cancel" or Deny
    /// ends it), and the person hears so.
    async fn stop(&self, turn: &Turn, envelope: &RequestEnvelope) -> ResponseBuilder {
        let Ok(Speaker::Known(user)) = self.identity.who(envelope).await else {
            return turn.say(Line::Goodbye).end_session(true);
        };
        match self.gate.pending(&user.id).await {
            Ok(Some(waiting)) => turn
                .say(Line::StillWaiting {
                    summary: waiting.summary,
                })
                .end_session(true),
            Ok(None) => turn.say(Line::Goodbye).end_session(true),
            Err(error) => turn.gate_failure(&error),
        }
    }

    /// "cancel": ends the person's held operation for good (the one of this
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
            Ok(Speaker::Unknown(id)) => {
                let answer = turn.say(Line::NotEnrolled);
                Err(match id {
                    // The card shows what the operator needs to enrol them.
                    Some((flag, value)) => answer.simple_card(
                        Line::CardTitle.text(turn.locale),
                        format!(
                            "Ask your voxgate operator to enrol you:\nvoxgate user add --tenant \
                             TENANT --name NAME {flag} {value}"
                        ),
                    ),
                    None => answer,
                }
                .end_session(true))
            }
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
}

/// Who is acting, for the audit log: the Alexa session (or, without one, the request).
fn actor(envelope: &RequestEnvelope) -> Actor {
    match &envelope.session {
        Some(session) => Actor::AlexaSession(session.session_id.clone()),
        None => Actor::AlexaSession(envelope.request.request_id.clone()),
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

/// Whether Alexa heard what could be a whole code: a number of 4 to 6 digits (AMAZON.NUMBER
/// drops leading zeros, so "081804" arrives as "81804").
fn is_whole_code(spoken: &str) -> bool {
    let spoken = spoken.trim();
    (4..=6).contains(&spoken.len()) && spoken.bytes().all(|b| b.is_ascii_digit())
}

/// Name-free interaction: voxgate claims the read-only questions it can answer without a
/// session; the built-ins and the code intent make no sense outside one.
fn can_fulfill(question: &CanFulfillIntentRequest) -> ResponseBuilder {
    // Changes need a session (the code dialog); never claimed name-free.
    let answer = match crate::ops::catalog::find(&question.intent.name) {
        Some((_, declaration)) if declaration.criticality == Criticality::Read => "YES",
        Some(_) | None => "NO",
    };
    ResponseBuilder::new().can_fulfill(CanFulfillIntent {
        can_fulfill: answer.to_owned(),
        slots: Map::new(),
    })
}
