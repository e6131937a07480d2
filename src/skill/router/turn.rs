//! What every handler of one request shares: the locale, and the answers every handler
//! gives the same way (failures, asking for the code).

use super::*;

/// What every handler of one request shares.
pub(super) struct Turn {
    pub(super) locale: Locale,
}

impl Turn {
    pub(super) fn speech(&self, line: Line) -> OutputSpeech {
        OutputSpeech::plain(line.text(self.locale))
    }

    pub(super) fn say(&self, line: Line) -> ResponseBuilder {
        ResponseBuilder::new().speak(self.speech(line))
    }

    pub(super) fn launch(&self) -> ResponseBuilder {
        self.say(Line::Welcome)
            .reprompt(self.speech(Line::WelcomeReprompt))
            .end_session(false)
    }

    pub(super) fn fallback(&self) -> ResponseBuilder {
        self.say(Line::Fallback)
            .reprompt(self.speech(Line::FallbackReprompt))
            .end_session(false)
    }

    /// Says `line` and asks for the code of `challenge` (VerifyCodeIntent's code slot),
    /// carrying the challenge id in the session. The code itself never appears here.
    pub(super) fn ask_for_code(&self, line: Line, challenge: &Challenge) -> ResponseBuilder {
        let mut verify = Intent::named(IntentName::VerifyCode.as_str());
        verify.slots.insert(
            CODE_SLOT.to_owned(),
            crate::alexa::envelope::Slot {
                name: CODE_SLOT.to_owned(),
                value: None,
                confirmation_status: ConfirmationStatus::None,
                resolutions: None,
            },
        );
        self.say(line)
            .reprompt(self.speech(Line::HeldReprompt))
            .directive(Directive::ElicitSlot {
                slot_to_elicit: CODE_SLOT.to_owned(),
                updated_intent: Some(verify),
            })
            .attribute(
                CHALLENGE_ATTRIBUTE,
                serde_json::Value::String(challenge.id.clone()),
            )
            .end_session(false)
    }

    pub(super) fn gate_failure(&self, error: &GateError) -> ResponseBuilder {
        warn!(%error, "gate failure");
        let line = match error {
            GateError::Unreadable(_) => Line::ChallengeUnreadable,
            GateError::Unrecorded => Line::NotRecorded,
            GateError::Seal(crate::cloud::seal::SealError::Kms(_)) => Line::KeyServiceUnavailable,
            _ => Line::InternalError,
        };
        self.say(line).end_session(true)
    }

    pub(super) fn broker_failure(
        &self,
        account: &LinkedAccount,
        error: &BrokerError,
    ) -> ResponseBuilder {
        warn!(account = %account.id, %error, "no AWS session");
        let line = match error {
            BrokerError::TrustRejected(_) => Line::AwsTrustRejected,
            BrokerError::Unreachable(_) => Line::AwsUnreachable,
            BrokerError::Unseal(_) => Line::AccountDetailsUnavailable,
            BrokerError::Sts(_) => Line::AwsFailed,
        };
        self.say(line).end_session(true)
    }

    pub(super) fn ops_failure(&self, account: &LinkedAccount, error: &OpsError) -> ResponseBuilder {
        warn!(account = %account.id, %error, "AWS call failed");
        let line = match error {
            OpsError::AccessDenied(_) => Line::AwsAccessDenied,
            OpsError::Unreachable(_) | OpsError::NoAnswer(_) => Line::AwsUnreachable,
            OpsError::Aws { .. } => Line::AwsFailed,
        };
        self.say(line).end_session(true)
    }

    /// Builds the response; one Alexa would refuse becomes a short spoken apology.
    pub(super) fn finish(&self, builder: ResponseBuilder) -> ResponseEnvelope {
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
