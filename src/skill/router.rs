//! The intent router: one handler per request type and per intent of the model. The match
//! over [`IntentName`] is exhaustive, so an intent added to the list without a handler does
//! not compile.

use serde_json::Map;
use tracing::{info, warn};

use super::intents::IntentName;
use super::speech::{Line, Locale};
use crate::alexa::envelope::{
    CanFulfillIntentRequest, IntentRequest, RequestKind, SessionEndedReason, SessionEndedRequest,
    SkillEvent,
};
use crate::alexa::response::{CanFulfillIntent, OutputSpeech, ResponseBuilder};
use crate::alexa::{RequestEnvelope, ResponseEnvelope};

/// The skill: turns verified requests into responses.
#[derive(Debug, Default)]
pub struct Skill {}

impl Skill {
    /// A skill with no capabilities beyond the built-in intents.
    pub fn new() -> Self {
        Self {}
    }

    /// Answers one verified request.
    pub async fn handle(&self, envelope: &RequestEnvelope) -> ResponseEnvelope {
        let locale = Locale::from_tag(envelope.request.locale.as_deref());
        let turn = Turn { locale };
        let builder = match &envelope.request.kind {
            RequestKind::Launch => turn.launch(),
            RequestKind::Intent(intent) => self.intent(&turn, intent),
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

    fn intent(&self, turn: &Turn, request: &IntentRequest) -> ResponseBuilder {
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
        }
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

/// Name-free interaction: voxgate only claims intents it can act on without a session.
/// The built-ins and the code intent make no sense outside one, so the answer is NO.
fn can_fulfill(question: &CanFulfillIntentRequest) -> ResponseBuilder {
    let answer = match IntentName::from_name(&question.intent.name) {
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
