//! The intents voxgate understands: the built-ins answered by the skill itself, and every
//! intent of the operation catalog. Together they and `skill-package/interactionModels/custom/*.json` must agree
//! in both directions (a test checks it): an intent in the model without a handler would
//! leave a person talking to nothing, a handler without an intent is dead code.

pub use crate::ops::catalog::SlotSpec;

/// The intents the skill answers itself (the rest are the catalog's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentName {
    /// "help", "what can you do".
    Help,
    /// "stop".
    Stop,
    /// "cancel".
    Cancel,
    /// Anything the model cannot place.
    Fallback,
    /// "go home" on devices with a screen.
    NavigateHome,
    /// The person speaks the one-time code from the companion app.
    VerifyCode,
    /// "repeat": the held operation is read again.
    Repeat,
    /// "what's waiting for my approval".
    WhatIsWaiting,
}

/// The slot of [`IntentName::VerifyCode`] that carries the spoken code.
pub const CODE_SLOT: &str = "code";

impl IntentName {
    /// Every built-in intent, in model order.
    pub const ALL: &'static [IntentName] = &[
        Self::Help,
        Self::Stop,
        Self::Cancel,
        Self::Fallback,
        Self::NavigateHome,
        Self::VerifyCode,
        Self::Repeat,
        Self::WhatIsWaiting,
    ];

    /// The name as it appears in the interaction model and in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Help => "AMAZON.HelpIntent",
            Self::Stop => "AMAZON.StopIntent",
            Self::Cancel => "AMAZON.CancelIntent",
            Self::Fallback => "AMAZON.FallbackIntent",
            Self::NavigateHome => "AMAZON.NavigateHomeIntent",
            Self::VerifyCode => "VerifyCodeIntent",
            Self::Repeat => "AMAZON.RepeatIntent",
            Self::WhatIsWaiting => "WhatIsWaitingIntent",
        }
    }

    /// The built-in intent with this name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|i| i.as_str() == name)
    }

    /// The slots the handler reads; the model must declare exactly these.
    pub fn slots(self) -> &'static [SlotSpec] {
        match self {
            Self::VerifyCode => &[SlotSpec {
                name: CODE_SLOT,
                slot_type: "AMAZON.NUMBER",
            }],
            Self::Help
            | Self::Stop
            | Self::Cancel
            | Self::Fallback
            | Self::NavigateHome
            | Self::Repeat
            | Self::WhatIsWaiting => &[],
        }
    }
}

/// `name` as voxgate knows it (a built-in or a catalog intent), for metrics labels: any
/// other name is `None`, so strangers cannot add series.
pub fn known_name(name: &str) -> Option<&'static str> {
    IntentName::from_name(name)
        .map(IntentName::as_str)
        .or_else(|| crate::ops::catalog::find(name).map(|(_, d)| d.intent))
}

/// Every intent voxgate answers, with the slots it reads: the built-ins, then the
/// catalog's.
pub fn handled() -> Vec<(&'static str, &'static [SlotSpec])> {
    IntentName::ALL
        .iter()
        .map(|i| (i.as_str(), i.slots()))
        .chain(crate::ops::catalog::declarations().map(|d| (d.intent, d.slots)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for intent in IntentName::ALL {
            assert_eq!(IntentName::from_name(intent.as_str()), Some(*intent));
        }
        assert_eq!(IntentName::from_name("AMAZON.PauseIntent"), None);
    }

    /// No intent is both a built-in and an operation, and no two operations share one.
    #[test]
    fn every_intent_is_handled_once() {
        let mut seen = std::collections::HashSet::new();
        for (intent, _) in handled() {
            assert!(seen.insert(intent), "{intent} is handled twice");
        }
    }
}
