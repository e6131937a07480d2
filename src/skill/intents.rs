//! The intents voxgate understands. This list and `interaction-model/*.json` must agree in
//! both directions (a test checks it): an intent in the model without a handler would
//! leave a person talking to nothing, a handler without an intent is dead code.

/// Every intent of the interaction model, each with a handler in [`super::router`].
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
    /// "what's running", "list my servers in Ireland".
    ListInstances,
    /// "is the web server up".
    InstanceStatus,
    /// "start the web server" (critical).
    StartInstance,
    /// "stop the web server" (critical).
    StopInstance,
    /// "restart build two" (critical).
    RebootInstance,
    /// "what can I clean up".
    CleanupReport,
    /// "clean up unused resources" (critical).
    Cleanup,
    /// "is my VPN up".
    VpnStatus,
}

/// A slot an intent expects in the interaction model: name and slot type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotSpec {
    /// Slot name as in the model.
    pub name: &'static str,
    /// Slot type, e.g. `AMAZON.NUMBER`.
    pub slot_type: &'static str,
}

/// The slot of [`IntentName::VerifyCode`] that carries the spoken code.
pub const CODE_SLOT: &str = "code";
/// The slot naming a region.
pub const REGION_SLOT: &str = "region";
/// The slot naming an instance.
pub const INSTANCE_SLOT: &str = "instance";

impl IntentName {
    /// Every intent, in model order.
    pub const ALL: &'static [IntentName] = &[
        Self::Help,
        Self::Stop,
        Self::Cancel,
        Self::Fallback,
        Self::NavigateHome,
        Self::VerifyCode,
        Self::ListInstances,
        Self::InstanceStatus,
        Self::StartInstance,
        Self::StopInstance,
        Self::RebootInstance,
        Self::CleanupReport,
        Self::Cleanup,
        Self::VpnStatus,
    ];

    /// Whether it is answered by the skill itself rather than an operation of the catalog.
    pub fn is_built_in(self) -> bool {
        matches!(
            self,
            Self::Help
                | Self::Stop
                | Self::Cancel
                | Self::Fallback
                | Self::NavigateHome
                | Self::VerifyCode
        )
    }

    /// The name as it appears in the interaction model and in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Help => "AMAZON.HelpIntent",
            Self::Stop => "AMAZON.StopIntent",
            Self::Cancel => "AMAZON.CancelIntent",
            Self::Fallback => "AMAZON.FallbackIntent",
            Self::NavigateHome => "AMAZON.NavigateHomeIntent",
            Self::VerifyCode => "VerifyCodeIntent",
            Self::ListInstances => "ListInstancesIntent",
            Self::InstanceStatus => "InstanceStatusIntent",
            Self::StartInstance => "StartInstanceIntent",
            Self::StopInstance => "StopInstanceIntent",
            Self::RebootInstance => "RebootInstanceIntent",
            Self::CleanupReport => "CleanupReportIntent",
            Self::Cleanup => "CleanupIntent",
            Self::VpnStatus => "VpnStatusIntent",
        }
    }

    /// The intent with this name, if voxgate knows it.
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
            Self::ListInstances | Self::CleanupReport | Self::Cleanup | Self::VpnStatus => {
                &[SlotSpec {
                    name: REGION_SLOT,
                    slot_type: "AWS_REGION",
                }]
            }
            Self::InstanceStatus
            | Self::StartInstance
            | Self::StopInstance
            | Self::RebootInstance => &[
                SlotSpec {
                    name: INSTANCE_SLOT,
                    slot_type: "INSTANCE_NAME",
                },
                SlotSpec {
                    name: REGION_SLOT,
                    slot_type: "AWS_REGION",
                },
            ],
            Self::Help | Self::Stop | Self::Cancel | Self::Fallback | Self::NavigateHome => &[],
        }
    }
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

    /// Both directions: every intent is a built-in or has an operation in the catalog (with
    /// the same slots), and every operation of the catalog is asked for by an intent.
    #[test]
    fn every_intent_is_a_built_in_or_an_operation_of_the_catalog() {
        use crate::ops::catalog;
        for intent in IntentName::ALL {
            match catalog::find(intent.as_str()) {
                Some(declaration) => {
                    assert!(!intent.is_built_in(), "{intent:?}");
                    let mut slots: Vec<&str> = intent.slots().iter().map(|s| s.name).collect();
                    let mut declared = declaration.slots.to_vec();
                    slots.sort_unstable();
                    declared.sort_unstable();
                    assert_eq!(slots, declared, "{}", declaration.name);
                }
                None => assert!(intent.is_built_in(), "{intent:?} has no operation"),
            }
        }
        for declaration in catalog::declarations() {
            assert!(
                IntentName::from_name(declaration.intent).is_some(),
                "{} is asked for by no intent",
                declaration.name
            );
        }
    }
}
