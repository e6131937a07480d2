//! The intent router: one handler per request type and per intent of the model. The match
//! over [`IntentName`] is exhaustive, so an intent added to the list without a handler does
//! not compile.

use std::sync::Arc;

use serde_json::Map;
use tracing::{info, warn};

use super::intents::{INSTANCE_SLOT, IntentName, REGION_SLOT};
use super::names::{self, Match};
use super::speech::{InstanceCounts, Line, Locale, Scope};
use crate::alexa::envelope::{
    CanFulfillIntentRequest, Intent, IntentRequest, RequestKind, SessionEndedReason,
    SessionEndedRequest, SkillEvent,
};
use crate::alexa::response::{CanFulfillIntent, Card, Directive, OutputSpeech, ResponseBuilder};
use crate::alexa::{RequestEnvelope, ResponseEnvelope};
use crate::cloud::arn::Region;
use crate::cloud::broker::{Broker, BrokerError};
use crate::identity::{Identity, Speaker};
use crate::ops::OpsError;
use crate::ops::ec2::{self, InstanceInfo, InstanceState};
use crate::store::{LinkedAccount, Store, User};

/// The skill: turns verified requests into responses.
#[derive(Debug)]
pub struct Skill {
    store: Arc<dyn Store>,
    identity: Identity,
    broker: Arc<Broker>,
}

/// The speaker and the AWS accounts of their tenant.
struct Speaking {
    user: User,
    accounts: Vec<LinkedAccount>,
}

impl Skill {
    /// A skill reading users and accounts from `store` and reaching AWS through `broker`.
    pub fn new(store: Arc<dyn Store>, identity: Identity, broker: Arc<Broker>) -> Self {
        Self {
            store,
            identity,
            broker,
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
            IntentName::Stop | IntentName::Cancel => turn.say(Line::Goodbye).end_session(true),
            IntentName::Fallback => turn.fallback(),
            IntentName::NavigateHome => turn
                .say(Line::Home)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::VerifyCode => turn
                .say(Line::NothingToVerify)
                .reprompt(turn.speech(Line::HelpReprompt))
                .end_session(false),
            IntentName::ListInstances => self.list_instances(turn, envelope, &request.intent).await,
            IntentName::InstanceStatus => {
                self.instance_status(turn, envelope, &request.intent).await
            }
        }
    }

    /// Who is speaking and which accounts they may look at; or what to tell them instead.
    async fn speaking(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
    ) -> Result<Speaking, ResponseBuilder> {
        let user = match self.identity.who(envelope).await {
            Ok(Speaker::Known(user)) => user,
            Ok(Speaker::LinkRequired) => {
                return Err(turn
                    .say(Line::LinkAccount)
                    .card(Card::LinkAccount)
                    .end_session(true));
            }
            Ok(Speaker::Unknown) => return Err(turn.say(Line::NotEnrolled).end_session(true)),
            Err(error) => {
                warn!(%error, "store unavailable while identifying the speaker");
                return Err(turn.say(Line::InternalError).end_session(true));
            }
        };
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

    /// Every live instance in each linked account (in `region`, or each account's own).
    async fn instances(
        &self,
        turn: &Turn,
        speaking: &Speaking,
        region: Option<&Region>,
    ) -> Result<Vec<(LinkedAccount, String, Vec<InstanceInfo>)>, ResponseBuilder> {
        let policy = ec2::list_instances_policy();
        let mut found = Vec::new();
        for account in &speaking.accounts {
            let session = self
                .broker
                .session(account, &speaking.user, &policy)
                .await
                .map_err(|error| turn.broker_failure(account, &error))?;
            let region = region
                .map_or(account.region.as_str(), Region::as_str)
                .to_owned();
            let instances = ec2::list_instances(&session.ec2(Some(&region)))
                .await
                .map_err(|error| turn.ops_failure(account, &error))?;
            found.push((account.clone(), region, instances));
        }
        Ok(found)
    }

    async fn list_instances(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let region = match region_slot(intent) {
            Ok(region) => region,
            Err(spoken) => {
                return turn
                    .say(Line::UnknownRegion { spoken })
                    .reprompt(turn.speech(Line::HelpReprompt))
                    .end_session(false);
            }
        };
        let speaking = match self.speaking(turn, envelope).await {
            Ok(speaking) => speaking,
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

    async fn instance_status(
        &self,
        turn: &Turn,
        envelope: &RequestEnvelope,
        intent: &Intent,
    ) -> ResponseBuilder {
        let Some(spoken) = intent.slot_value(INSTANCE_SLOT).map(str::to_owned) else {
            return turn.ask_for_instance(Line::WhichInstance, intent);
        };
        let speaking = match self.speaking(turn, envelope).await {
            Ok(speaking) => speaking,
            Err(answer) => return answer,
        };
        let found = match self.instances(turn, &speaking, None).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let several = found.len() > 1;
        let everything: Vec<(String, String, InstanceInfo)> = found
            .into_iter()
            .flat_map(|(account, region, instances)| {
                let name = account.name.clone();
                instances
                    .into_iter()
                    .map(move |i| (name.clone(), region.clone(), i))
            })
            .collect();
        let label = |(account, _, i): &(String, String, InstanceInfo)| {
            if several {
                format!("{} in {account}", i.label())
            } else {
                i.label().to_owned()
            }
        };
        match names::find(&spoken, &everything, |(_, _, i)| i.label()) {
            Match::One((account, region, instance)) => turn
                .say(Line::InstanceState {
                    name: instance.label().to_owned(),
                    state: instance.state,
                })
                .simple_card(
                    Line::CardTitle.text(turn.locale),
                    format!(
                        "{} ({}): {}, {}, {region}, account {account}",
                        instance.label(),
                        instance.id,
                        instance.state.as_str(),
                        instance.instance_type
                    ),
                )
                .end_session(true),
            Match::Many(candidates) => turn.ask_for_instance(
                Line::InstanceAmbiguous {
                    spoken,
                    candidates: candidates.iter().map(label).collect(),
                },
                intent,
            ),
            Match::None => turn
                .say(Line::InstanceNotFound {
                    spoken,
                    known: everything.iter().map(label).collect(),
                })
                .end_session(true),
        }
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
            OpsError::Unreachable(_) => Line::AwsUnreachable,
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
    let answer = match IntentName::from_name(&question.intent.name) {
        Some(IntentName::ListInstances | IntentName::InstanceStatus) => "YES",
        Some(
            IntentName::Help
            | IntentName::Stop
            | IntentName::Cancel
            | IntentName::Fallback
            | IntentName::NavigateHome
            | IntentName::VerifyCode,
        )
        | None => "NO",
    };
    ResponseBuilder::new().can_fulfill(CanFulfillIntent {
        can_fulfill: answer.to_owned(),
        slots: Map::new(),
    })
}
