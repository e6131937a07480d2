//! What voxgate does with a verified request: the intent router, dialog handling, and every
//! sentence a person hears (the speech catalog in [`speech`]).
//!
//! This module knows nothing of HTTP: it takes a parsed [`RequestEnvelope`] and returns a
//! [`ResponseEnvelope`]; failures become sentences, never status codes.
//!
//! [`RequestEnvelope`]: crate::alexa::RequestEnvelope
//! [`ResponseEnvelope`]: crate::alexa::ResponseEnvelope

pub mod intents;
pub mod router;
pub mod speech;

pub use intents::IntentName;
pub use router::Skill;
pub use speech::{Line, Locale};
