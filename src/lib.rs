//! voxgate: the backend of an Alexa custom skill for cloud operations.
//!
//! The crate is one library with a thin binary (`src/main.rs`). Module boundaries follow
//! `DESIGN.md`: [`alexa`] speaks the wire protocol and knows nothing of AWS or storage,
//! [`skill`] turns requests into spoken answers, [`app`] is the only place that knows HTTP
//! status codes, and [`config`] is the only reader of the environment.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod alexa;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod companion;
pub mod config;
pub mod demo;
pub mod devca;
pub mod dialog;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod identity;
pub mod input;
pub mod metrics;
pub mod ops;
pub mod skill;
pub mod store;
pub mod telemetry;
