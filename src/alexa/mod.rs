//! The Alexa Skills Kit wire protocol: request verification on raw bytes, the typed request
//! envelope, and the response builder with Alexa's limits.
//!
//! This module must not know about AWS, the store, or what voxgate does with an intent; it
//! only answers "is this request really from Alexa, and what does it say?" and "is this
//! response something Alexa accepts?".

pub mod cert_url;
pub mod chain;
pub mod envelope;
pub mod response;
pub mod ssml;
pub mod verify;

pub use envelope::RequestEnvelope;
pub use response::{ResponseBuilder, ResponseEnvelope};
pub use verify::{RequestVerifier, VerifyError};
