//! The request envelope Alexa sends to a custom skill ("Request and Response JSON
//! Reference"), as typed values.
//!
//! Unknown fields are ignored everywhere and unknown request types are kept as
//! [`RequestKind::Other`], so that Alexa adding something never turns into a 500.
//! Tokens (`accessToken`, `apiAccessToken`) are held as secrets: `Debug` redacts them.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The whole body of a request from Alexa.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEnvelope {
    /// Protocol version, "1.0".
    pub version: String,
    /// Present for requests that belong to a session (not for skill events).
    #[serde(default)]
    pub session: Option<Session>,
    /// The device and user context.
    #[serde(default)]
    pub context: Option<Context>,
    /// The request itself.
    pub request: Request,
}

impl RequestEnvelope {
    /// Parses a body that has already been verified.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Every application id the envelope names (context and session), for the skill-id
    /// check. Both places must name an accepted skill when both are present.
    pub fn application_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        if let Some(context) = &self.context {
            ids.push(context.system.application.application_id.as_str());
        }
        if let Some(session) = &self.session {
            ids.push(session.application.application_id.as_str());
        }
        ids
    }

    /// The Alexa user, from the context or else the session.
    pub fn user(&self) -> Option<&User> {
        self.context
            .as_ref()
            .map(|c| &c.system.user)
            .or_else(|| self.session.as_ref().map(|s| &s.user))
    }

    /// Session attributes (empty outside a session).
    pub fn session_attributes(&self) -> Map<String, Value> {
        self.session
            .as_ref()
            .map(|s| s.attributes.clone())
            .unwrap_or_default()
    }
}

/// A skill session.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// True for the first request of a session.
    #[serde(default)]
    pub new: bool,
    /// Session id.
    pub session_id: String,
    /// The skill the session belongs to.
    pub application: Application,
    /// Attributes the skill set in earlier responses of this session.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// The Alexa user.
    pub user: User,
}

/// The skill a request is for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `amzn1.ask.skill.…`
    pub application_id: String,
}

/// The Alexa user (one per Amazon account and skill enablement).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// `amzn1.ask.account.…`
    pub user_id: String,
    /// The OAuth access token from account linking, if the user linked.
    #[serde(default)]
    pub access_token: Option<SecretString>,
}

/// The `context` object.
#[derive(Debug, Clone, Deserialize)]
pub struct Context {
    /// `context.System`.
    #[serde(rename = "System")]
    pub system: System,
}

/// `context.System`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct System {
    /// The skill.
    pub application: Application,
    /// The user.
    pub user: User,
    /// The device, if any.
    #[serde(default)]
    pub device: Option<Device>,
    /// Base URL of the Alexa APIs for this request.
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// Token for the Alexa APIs.
    #[serde(default)]
    pub api_access_token: Option<SecretString>,
}

/// The device a request came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// `amzn1.ask.device.…`
    #[serde(default)]
    pub device_id: Option<String>,
}

/// The `request` object: fields every request type has, and the type-specific part.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique per request; the replay guard keys on it.
    pub request_id: String,
    /// When Alexa sent the request.
    pub timestamp: OffsetDateTime,
    /// e.g. "en-US".
    pub locale: Option<String>,
    /// What kind of request this is.
    pub kind: RequestKind,
}

impl Request {
    /// The `type` string of this request as Alexa sent it.
    pub fn type_name(&self) -> &str {
        match &self.kind {
            RequestKind::Launch => "LaunchRequest",
            RequestKind::Intent(_) => "IntentRequest",
            RequestKind::SessionEnded(_) => "SessionEndedRequest",
            RequestKind::CanFulfillIntent(_) => "CanFulfillIntentRequest",
            RequestKind::SkillEvent(event) => &event.event_type,
            RequestKind::Other { request_type } => request_type,
        }
    }
}

/// The type-specific part of a request.
#[derive(Debug, Clone)]
pub enum RequestKind {
    /// "Alexa, open cloud gate".
    Launch,
    /// An intent from the interaction model.
    Intent(IntentRequest),
    /// The session ended (user, error, or too many reprompts).
    SessionEnded(SessionEndedRequest),
    /// Alexa asks whether the skill could fulfil an intent (name-free interaction).
    CanFulfillIntent(CanFulfillIntentRequest),
    /// `AlexaSkillEvent.*`: enablement, account linking, permissions.
    SkillEvent(SkillEvent),
    /// A request type this version does not know.
    Other {
        /// The `type` as sent.
        request_type: String,
    },
}

/// `IntentRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentRequest {
    /// Where a multi-turn dialog stands.
    #[serde(default)]
    pub dialog_state: Option<DialogState>,
    /// The intent and its slots.
    pub intent: Intent,
}

/// `CanFulfillIntentRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanFulfillIntentRequest {
    /// The intent Alexa asks about.
    pub intent: Intent,
}

/// State of a multi-turn dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DialogState {
    /// First turn of the dialog.
    Started,
    /// A later turn.
    InProgress,
    /// Alexa's dialog model has collected everything.
    Completed,
    /// A value this version does not know.
    #[serde(other)]
    Unknown,
}

/// Whether the user confirmed an intent or slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfirmationStatus {
    /// Not asked, or no answer yet.
    #[default]
    None,
    /// The user said yes.
    Confirmed,
    /// The user said no.
    Denied,
    /// A value this version does not know.
    #[serde(other)]
    Unknown,
}

/// An intent with its slots; also sent back as `updatedIntent` in dialog directives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// e.g. "AMAZON.HelpIntent".
    pub name: String,
    /// Whether the user confirmed the whole intent.
    #[serde(default)]
    pub confirmation_status: ConfirmationStatus,
    /// Slots by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, Slot>,
}

impl Intent {
    /// An intent with no slots.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            confirmation_status: ConfirmationStatus::None,
            slots: BTreeMap::new(),
        }
    }

    /// The spoken value of a slot, if the user filled it.
    pub fn slot_value(&self, slot: &str) -> Option<&str> {
        self.slots
            .get(slot)
            .and_then(|s| s.value.as_deref())
            .filter(|v| !v.is_empty())
    }
}

/// A slot of an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// Slot name.
    pub name: String,
    /// What the user said, as Alexa heard it. Always a string, even for AMAZON.NUMBER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether the user confirmed this slot.
    #[serde(default)]
    pub confirmation_status: ConfirmationStatus,
    /// Entity resolution results, for slots of custom types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolutions: Option<Resolutions>,
}

/// `slot.resolutions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolutions {
    /// One entry per authority (the skill's own slot type, dynamic entities, …).
    #[serde(default)]
    pub resolutions_per_authority: Vec<Authority>,
}

/// Resolution by one authority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// The authority's name.
    pub authority: String,
    /// `ER_SUCCESS_MATCH`, `ER_SUCCESS_NO_MATCH`, `ER_ERROR_TIMEOUT`, …
    pub status: ResolutionStatus,
    /// Matched values, best first.
    #[serde(default)]
    pub values: Vec<ResolvedValueWrapper>,
}

/// `status` of an authority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionStatus {
    /// e.g. `ER_SUCCESS_MATCH`.
    pub code: String,
}

/// `{"value": {...}}` around a resolved value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedValueWrapper {
    /// The value.
    pub value: ResolvedValue,
}

/// A canonical slot value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedValue {
    /// Canonical name.
    pub name: String,
    /// Id given in the interaction model.
    #[serde(default)]
    pub id: Option<String>,
}

impl Slot {
    /// The canonical value from the first authority that matched, if any.
    pub fn resolved(&self) -> Option<&ResolvedValue> {
        self.resolutions
            .as_ref()?
            .resolutions_per_authority
            .iter()
            .find(|a| a.status.code == "ER_SUCCESS_MATCH")?
            .values
            .first()
            .map(|v| &v.value)
    }
}

/// `SessionEndedRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEndedRequest {
    /// Why the session ended.
    #[serde(default)]
    pub reason: Option<SessionEndedReason>,
    /// What went wrong, when the reason is `ERROR`.
    #[serde(default)]
    pub error: Option<SessionEndedError>,
}

/// `SessionEndedRequest.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionEndedReason {
    /// The user said "exit" or stopped answering.
    UserInitiated,
    /// Something went wrong; see `error`.
    Error,
    /// The user did not answer the reprompt.
    ExceededMaxReprompts,
    /// A value this version does not know.
    #[serde(other)]
    Unknown,
}

/// `SessionEndedRequest.error`.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionEndedError {
    /// e.g. `INVALID_RESPONSE`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Alexa's explanation.
    #[serde(default)]
    pub message: Option<String>,
}

/// An `AlexaSkillEvent.*` request. `Debug` leaves the body out: `SkillAccountLinked`
/// carries an access token there.
#[derive(Clone)]
pub struct SkillEvent {
    /// The full type, e.g. `AlexaSkillEvent.SkillEnabled`.
    pub event_type: String,
    /// The event's `body`, if any.
    pub body: Option<Value>,
}

impl std::fmt::Debug for SkillEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillEvent")
            .field("event_type", &self.event_type)
            .field("body", &self.body.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SkillEvent {
    /// Skill events are delivered asynchronously, so their timestamps may be older.
    pub const TYPE_PREFIX: &'static str = "AlexaSkillEvent.";
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

/// Reads the fields every request has as they come, and keeps the others for the
/// type-specific part (read once the `type` is known). Every request passes through this,
/// so it reads the object once (a flattened struct would buffer all of it first).
struct RequestVisitor;

/// An RFC 3339 timestamp.
#[derive(Deserialize)]
struct Timestamp(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

impl<'de> de::Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an Alexa request object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let mut request_type: Option<String> = None;
        let mut request_id: Option<String> = None;
        let mut timestamp: Option<OffsetDateTime> = None;
        let mut locale: Option<Option<String>> = None;
        let mut rest = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    once(&request_type, "type")?;
                    request_type = Some(map.next_value()?);
                }
                "requestId" => {
                    once(&request_id, "requestId")?;
                    request_id = Some(map.next_value()?);
                }
                "timestamp" => {
                    once(&timestamp, "timestamp")?;
                    timestamp = Some(map.next_value::<Timestamp>()?.0);
                }
                "locale" => {
                    // Seen-ness apart from the value: `null` is a value too.
                    once(&locale, "locale")?;
                    locale = Some(map.next_value::<Option<String>>()?);
                }
                _ => {
                    let value: Value = map.next_value()?;
                    if rest.insert(key, value).is_some() {
                        return Err(de::Error::custom("a field of the request appears twice"));
                    }
                }
            }
        }
        let request_type = request_type.ok_or_else(|| de::Error::missing_field("type"))?;
        let request_id = request_id.ok_or_else(|| de::Error::missing_field("requestId"))?;
        let timestamp = timestamp.ok_or_else(|| de::Error::missing_field("timestamp"))?;
        let rest = Value::Object(rest);
        let kind = match request_type.as_str() {
            "LaunchRequest" => RequestKind::Launch,
            "IntentRequest" => {
                RequestKind::Intent(serde_json::from_value(rest).map_err(de::Error::custom)?)
            }
            "SessionEndedRequest" => {
                RequestKind::SessionEnded(serde_json::from_value(rest).map_err(de::Error::custom)?)
            }
            "CanFulfillIntentRequest" => RequestKind::CanFulfillIntent(
                serde_json::from_value(rest).map_err(de::Error::custom)?,
            ),
            t if t.starts_with(SkillEvent::TYPE_PREFIX) => {
                let body = match rest {
                    Value::Object(mut fields) => fields.remove("body"),
                    _ => None,
                };
                RequestKind::SkillEvent(SkillEvent {
                    event_type: request_type.clone(),
                    body,
                })
            }
            _ => RequestKind::Other {
                request_type: request_type.clone(),
            },
        };
        Ok(Request {
            request_id,
            timestamp,
            locale: locale.flatten(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(request: Value) -> RequestEnvelope {
        let body = serde_json::json!({
            "version": "1.0",
            "session": {
                "new": true, "sessionId": "s1",
                "application": {"applicationId": "amzn1.ask.skill.a"},
                "user": {"userId": "amzn1.ask.account.u", "accessToken": "secret-token-value"}
            },
            "context": {"System": {
                "application": {"applicationId": "amzn1.ask.skill.a"},
                "user": {"userId": "amzn1.ask.account.u"},
                "apiAccessToken": "api-token-value",
                "someNewField": 1
            }},
            "request": request
        });
        serde_json::from_value(body).expect("parses")
    }

    #[test]
    fn a_field_of_the_request_given_twice_is_refused() {
        let body = |request: &str| {
            format!(
                r#"{{"version":"1.0","request":{{"type":"LaunchRequest","requestId":"r1",
                "timestamp":"2026-11-25T00:00:00Z",{request}}}}}"#
            )
        };
        for request in [
            r#""locale":null,"locale":"de-DE""#,
            r#""locale":"de-DE","locale":null"#,
            r#""requestId":"r2""#,
            r#""type":"IntentRequest""#,
            r#""timestamp":"2026-11-25T00:00:01Z""#,
            r#""dialogState":"STARTED","dialogState":"COMPLETED""#,
        ] {
            assert!(
                RequestEnvelope::from_slice(body(request).as_bytes()).is_err(),
                "{request}"
            );
        }
        let once =
            RequestEnvelope::from_slice(body(r#""locale":null"#).as_bytes()).expect("parses");
        assert_eq!(once.request.locale, None);
        assert_eq!(once.request.request_id, "r1");
    }

    #[test]
    fn unknown_request_types_are_kept_not_rejected() {
        let env = envelope(serde_json::json!({
            "type": "Connections.Response", "requestId": "r", "timestamp": "2026-01-01T00:00:00Z"
        }));
        assert!(
            matches!(&env.request.kind, RequestKind::Other { request_type } if request_type == "Connections.Response")
        );
    }

    #[test]
    fn debug_output_redacts_tokens() {
        let env = envelope(serde_json::json!({
            "type": "LaunchRequest", "requestId": "r", "timestamp": "2026-01-01T00:00:00Z"
        }));
        let debug = format!("{env:?}");
        assert!(!debug.contains("secret-token-value"), "{debug}");
        assert!(!debug.contains("api-token-value"), "{debug}");
        assert!(debug.contains("amzn1.ask.account.u"));
    }

    #[test]
    fn a_missing_timestamp_is_an_error_not_a_default() {
        let body = br#"{"version":"1.0","request":{"type":"LaunchRequest","requestId":"r"}}"#;
        assert!(RequestEnvelope::from_slice(body).is_err());
    }
}
