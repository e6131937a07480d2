//! The response a skill sends back ("Response body syntax"), built with [`ResponseBuilder`]
//! so that only responses Alexa accepts leave the service: at most 8,000 characters of
//! speech (each of output and reprompt), at most 8,000 characters of card text, at most
//! 120 KB in total, and dialog directives only in a session that stays open.

use serde::Serialize;
use serde_json::{Map, Value};

use super::envelope::Intent;

/// Alexa's limit on `outputSpeech` text or SSML, in characters.
pub const MAX_SPEECH_CHARS: usize = 8_000;
/// Alexa's limit on a card's title and content together, in characters.
pub const MAX_CARD_CHARS: usize = 8_000;
/// Alexa's limit on the serialised response, in bytes (kept conservative: 120,000).
pub const MAX_RESPONSE_BYTES: usize = 120_000;

/// What the skill says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum OutputSpeech {
    /// Plain text.
    PlainText {
        /// The text.
        text: String,
    },
    /// SSML, built with [`super::ssml::Ssml`].
    #[serde(rename = "SSML")]
    Ssml {
        /// The document, `<speak>…</speak>`.
        ssml: String,
    },
}

impl OutputSpeech {
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Self {
        Self::PlainText { text: text.into() }
    }

    fn len_chars(&self) -> usize {
        match self {
            Self::PlainText { text } => text.chars().count(),
            Self::Ssml { ssml } => ssml.chars().count(),
        }
    }
}

/// A card in the Alexa app.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Card {
    /// Title and text.
    Simple {
        /// Title.
        title: String,
        /// Text.
        content: String,
    },
    /// Title, text and optional images.
    Standard {
        /// Title.
        title: String,
        /// Text.
        text: String,
        /// Images (HTTPS URLs).
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<CardImage>,
    },
    /// Asks the user to link their account.
    LinkAccount,
}

/// Images of a standard card.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardImage {
    /// 720 × 480.
    pub small_image_url: String,
    /// 1200 × 800.
    pub large_image_url: String,
}

impl Card {
    fn len_chars(&self) -> usize {
        match self {
            Self::Simple { title, content } => title.chars().count() + content.chars().count(),
            Self::Standard { title, text, .. } => title.chars().count() + text.chars().count(),
            Self::LinkAccount => 0,
        }
    }
}

/// Directives the skill can send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Directive {
    /// Ask the user for one slot.
    #[serde(rename = "Dialog.ElicitSlot", rename_all = "camelCase")]
    ElicitSlot {
        /// The slot to ask for.
        slot_to_elicit: String,
        /// The intent, with what is known so far.
        #[serde(skip_serializing_if = "Option::is_none")]
        updated_intent: Option<Intent>,
    },
    /// Ask the user to confirm the whole intent.
    #[serde(rename = "Dialog.ConfirmIntent", rename_all = "camelCase")]
    ConfirmIntent {
        /// The intent to confirm.
        #[serde(skip_serializing_if = "Option::is_none")]
        updated_intent: Option<Intent>,
    },
    /// Let Alexa's dialog model take the next turn.
    #[serde(rename = "Dialog.Delegate", rename_all = "camelCase")]
    Delegate {
        /// The intent, with what is known so far.
        #[serde(skip_serializing_if = "Option::is_none")]
        updated_intent: Option<Intent>,
    },
    /// Teach Alexa this person's own slot values for the rest of the session ("payroll-blue"
    /// as well as the model's examples).
    #[serde(rename = "Dialog.UpdateDynamicEntities", rename_all = "camelCase")]
    UpdateDynamicEntities {
        /// `REPLACE`: these values stand for the session.
        update_behavior: String,
        /// Slot types and their values.
        types: Vec<EntityType>,
    },
}

/// A slot type's values for [`Directive::UpdateDynamicEntities`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityType {
    /// The slot type, as in the model.
    pub name: String,
    /// Its values.
    pub values: Vec<EntityValue>,
}

/// One value of an [`EntityType`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityValue {
    /// The id entity resolution hands back.
    pub id: String,
    /// How it is said.
    pub name: EntityName,
}

/// The words of an [`EntityValue`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityName {
    /// The value.
    pub value: String,
    /// Other ways to say it.
    pub synonyms: Vec<String>,
}

/// Answer to a `CanFulfillIntentRequest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanFulfillIntent {
    /// "YES", "NO" or "MAYBE".
    pub can_fulfill: String,
    /// Per slot: whether the skill understands and can fulfil it.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub slots: Map<String, Value>,
}

/// `reprompt`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reprompt {
    /// What to say if the user says nothing.
    pub output_speech: OutputSpeech,
}

/// `response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Speech.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_speech: Option<OutputSpeech>,
    /// Card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    /// Reprompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reprompt: Option<Reprompt>,
    /// Whether the session ends; absent means Alexa decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub should_end_session: Option<bool>,
    /// Directives.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub directives: Vec<Directive>,
    /// Answer to `CanFulfillIntentRequest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_fulfill_intent: Option<CanFulfillIntent>,
}

/// The whole response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseEnvelope {
    /// "1.0".
    pub version: &'static str,
    /// Attributes Alexa sends back with the next request of the session.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub session_attributes: Map<String, Value>,
    /// The response.
    pub response: Response,
}

impl ResponseEnvelope {
    /// The empty response, e.g. for `SessionEndedRequest` (which allows no speech).
    pub fn empty() -> Self {
        Self {
            version: "1.0",
            session_attributes: Map::new(),
            response: Response::default(),
        }
    }
}

/// A response Alexa would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Speech or reprompt over 8,000 characters.
    #[error("speech is {0} characters; Alexa allows 8,000")]
    SpeechTooLong(usize),
    /// Card over 8,000 characters.
    #[error("card is {0} characters; Alexa allows 8,000")]
    CardTooLong(usize),
    /// Whole response over 120 KB.
    #[error("response is {0} bytes; Alexa allows 120 KB")]
    TooLarge(usize),
    /// A dialog directive in a response that ends the session.
    #[error("a dialog directive needs the session to stay open")]
    DialogEndsSession,
    /// More than one dialog directive.
    #[error("at most one dialog directive per response")]
    TwoDialogDirectives,
}

/// Builds a [`ResponseEnvelope`] and checks Alexa's limits.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    envelope: ResponseEnvelope,
}

impl Default for ResponseBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseBuilder {
    /// An empty response.
    pub fn new() -> Self {
        Self {
            envelope: ResponseEnvelope::empty(),
        }
    }

    /// What to say.
    pub fn speak(mut self, speech: OutputSpeech) -> Self {
        self.envelope.response.output_speech = Some(speech);
        self
    }

    /// What to say if the user says nothing; keeps the session open.
    pub fn reprompt(mut self, speech: OutputSpeech) -> Self {
        self.envelope.response.reprompt = Some(Reprompt {
            output_speech: speech,
        });
        self
    }

    /// A card.
    pub fn card(mut self, card: Card) -> Self {
        self.envelope.response.card = Some(card);
        self
    }

    /// A simple card.
    pub fn simple_card(self, title: impl Into<String>, content: impl Into<String>) -> Self {
        self.card(Card::Simple {
            title: title.into(),
            content: content.into(),
        })
    }

    /// Ends the session (or keeps it open).
    pub fn end_session(mut self, end: bool) -> Self {
        self.envelope.response.should_end_session = Some(end);
        self
    }

    /// Sets a session attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: Value) -> Self {
        self.envelope.session_attributes.insert(key.into(), value);
        self
    }

    /// Carries all of these attributes over (e.g. the request's own).
    pub fn attributes(mut self, attributes: Map<String, Value>) -> Self {
        self.envelope.session_attributes.extend(attributes);
        self
    }

    /// Adds a directive.
    pub fn directive(mut self, directive: Directive) -> Self {
        self.envelope.response.directives.push(directive);
        self
    }

    /// The answer to a `CanFulfillIntentRequest`.
    pub fn can_fulfill(mut self, answer: CanFulfillIntent) -> Self {
        self.envelope.response.can_fulfill_intent = Some(answer);
        self
    }

    /// Whether the response keeps the session open and has no directive yet (the only kind
    /// a dynamic-entities update may join).
    pub fn open_without_directives(&self) -> bool {
        self.envelope.response.should_end_session == Some(false)
            && self.envelope.response.directives.is_empty()
    }

    /// The response, if Alexa would accept it.
    pub fn build(self) -> Result<ResponseEnvelope, ResponseError> {
        let response = &self.envelope.response;
        for speech in response
            .output_speech
            .iter()
            .chain(response.reprompt.iter().map(|r| &r.output_speech))
        {
            let len = speech.len_chars();
            if len > MAX_SPEECH_CHARS {
                return Err(ResponseError::SpeechTooLong(len));
            }
        }
        if let Some(card) = &response.card {
            let len = card.len_chars();
            if len > MAX_CARD_CHARS {
                return Err(ResponseError::CardTooLong(len));
            }
        }
        if !response.directives.is_empty() {
            if response.directives.len() > 1 {
                return Err(ResponseError::TwoDialogDirectives);
            }
            if response.should_end_session == Some(true) {
                return Err(ResponseError::DialogEndsSession);
            }
        }
        let size = serde_json::to_vec(&self.envelope)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_RESPONSE_BYTES {
            return Err(ResponseError::TooLarge(size));
        }
        Ok(self.envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_in_alexas_shape() {
        let envelope = ResponseBuilder::new()
            .speak(OutputSpeech::plain("Hello."))
            .reprompt(OutputSpeech::Ssml {
                ssml: "<speak>Still there?</speak>".into(),
            })
            .simple_card("voxgate", "Hello")
            .end_session(false)
            .attribute("challengeId", json!("c1"))
            .directive(Directive::ElicitSlot {
                slot_to_elicit: "code".into(),
                updated_intent: Some(Intent::named("VerifyCodeIntent")),
            })
            .build()
            .expect("valid");
        assert_eq!(
            serde_json::to_value(&envelope).expect("serialises"),
            json!({
                "version": "1.0",
                "sessionAttributes": {"challengeId": "c1"},
                "response": {
                    "outputSpeech": {"type": "PlainText", "text": "Hello."},
                    "card": {"type": "Simple", "title": "voxgate", "content": "Hello"},
                    "reprompt": {"outputSpeech": {"type": "SSML", "ssml": "<speak>Still there?</speak>"}},
                    "shouldEndSession": false,
                    "directives": [{
                        "type": "Dialog.ElicitSlot",
                        "slotToElicit": "code",
                        "updatedIntent": {"name": "VerifyCodeIntent", "confirmationStatus": "NONE"}
                    }]
                }
            })
        );
    }

    #[test]
    fn other_cards_and_directives_serialise_in_alexas_shape() {
        let card = serde_json::to_value(Card::LinkAccount).expect("serialises");
        assert_eq!(card, json!({"type": "LinkAccount"}));
        let standard = serde_json::to_value(Card::Standard {
            title: "t".into(),
            text: "x".into(),
            image: None,
        })
        .expect("serialises");
        assert_eq!(
            standard,
            json!({"type": "Standard", "title": "t", "text": "x"})
        );
        let confirm = serde_json::to_value(Directive::ConfirmIntent {
            updated_intent: None,
        })
        .expect("serialises");
        assert_eq!(confirm, json!({"type": "Dialog.ConfirmIntent"}));
        let delegate = serde_json::to_value(Directive::Delegate {
            updated_intent: None,
        })
        .expect("serialises");
        assert_eq!(delegate, json!({"type": "Dialog.Delegate"}));
    }

    #[test]
    fn speech_over_8000_characters_is_refused() {
        let at_limit = ResponseBuilder::new()
            .speak(OutputSpeech::plain("é".repeat(MAX_SPEECH_CHARS)))
            .build();
        assert!(at_limit.is_ok(), "8,000 characters (not bytes) are allowed");
        let over = ResponseBuilder::new()
            .speak(OutputSpeech::plain("a".repeat(MAX_SPEECH_CHARS + 1)))
            .build();
        assert_eq!(over, Err(ResponseError::SpeechTooLong(8_001)));
        let reprompt = ResponseBuilder::new()
            .reprompt(OutputSpeech::plain("a".repeat(MAX_SPEECH_CHARS + 1)))
            .build();
        assert_eq!(reprompt, Err(ResponseError::SpeechTooLong(8_001)));
    }

    #[test]
    fn long_cards_and_large_responses_are_refused() {
        let card = ResponseBuilder::new()
            .simple_card("title", "x".repeat(MAX_CARD_CHARS))
            .build();
        assert_eq!(card, Err(ResponseError::CardTooLong(8_005)));
        let large = ResponseBuilder::new()
            .attribute("blob", json!("x".repeat(MAX_RESPONSE_BYTES)))
            .build();
        assert!(matches!(large, Err(ResponseError::TooLarge(_))));
    }

    #[test]
    fn dialog_directives_need_an_open_session() {
        let ends = ResponseBuilder::new()
            .directive(Directive::Delegate {
                updated_intent: None,
            })
            .end_session(true)
            .build();
        assert_eq!(ends, Err(ResponseError::DialogEndsSession));
        let two = ResponseBuilder::new()
            .directive(Directive::Delegate {
                updated_intent: None,
            })
            .directive(Directive::ConfirmIntent {
                updated_intent: None,
            })
            .build();
        assert_eq!(two, Err(ResponseError::TwoDialogDirectives));
    }
}
