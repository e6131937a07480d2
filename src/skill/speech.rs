//! The speech catalog: every sentence a person hears, keyed by [`Line`], per [`Locale`].
//!
//! Handlers never write sentences inline; they pick a line here. A second locale is one
//! more `match` arm in [`Line::text`] and one more function like [`en_us`]; the compiler
//! then points at every line it still lacks.

/// A language voxgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    /// English (United States); also used for every other English locale and as the
    /// fallback for locales voxgate does not speak yet.
    #[default]
    EnUs,
}

impl Locale {
    /// The locale for a request's `locale` tag.
    pub fn from_tag(tag: Option<&str>) -> Self {
        match tag {
            Some(_) | None => Self::EnUs,
        }
    }
}

/// Something voxgate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Answer to "open cloud gate".
    Welcome,
    /// Reprompt after the welcome.
    WelcomeReprompt,
    /// What voxgate can do.
    Help,
    /// Reprompt after help.
    HelpReprompt,
    /// Answer to stop or cancel.
    Goodbye,
    /// Answer to something the model could not place.
    Fallback,
    /// Reprompt after the fallback.
    FallbackReprompt,
    /// Answer to "go home".
    Home,
    /// A code was spoken but nothing is waiting for one.
    NothingToVerify,
    /// A request type voxgate does not handle.
    UnsupportedRequest,
    /// The answer would have been longer than Alexa allows.
    AnswerTooLong,
    /// Something went wrong inside voxgate.
    InternalError,
    /// Title of voxgate's cards.
    CardTitle,
}

impl Line {
    /// The sentence in `locale`.
    pub fn text(&self, locale: Locale) -> String {
        match locale {
            Locale::EnUs => en_us(self),
        }
    }
}

/// English (United States).
pub fn en_us(line: &Line) -> String {
    let text = match line {
        Line::Welcome => "Cloud gate is listening. What would you like to do?",
        Line::WelcomeReprompt => "You can say help to hear what I can do.",
        Line::Help => {
            "I run operations on your AWS account by voice. Questions get an answer straight \
             away. Anything that changes your account waits for the code shown in your voxgate \
             app, and I run it only after you say that code. What would you like to do?"
        }
        Line::HelpReprompt => "What would you like to do?",
        Line::Goodbye => "Okay, nothing more to do. Goodbye.",
        Line::Fallback => "Sorry, I didn't catch that. You can say help to hear what I can do.",
        Line::FallbackReprompt => "What would you like to do?",
        Line::Home => "Okay. What would you like to do?",
        Line::NothingToVerify => {
            "There's nothing waiting for a code right now, so nothing was changed. Ask me to do \
             something first."
        }
        Line::UnsupportedRequest => "Sorry, cloud gate can't handle that kind of request.",
        Line::AnswerTooLong => {
            "That answer was too long for me to read out. Please ask for something narrower."
        }
        Line::InternalError => "Sorry, something went wrong on my side. Nothing was changed.",
        Line::CardTitle => "Cloud gate",
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_LINE: &[Line] = &[
        Line::Welcome,
        Line::WelcomeReprompt,
        Line::Help,
        Line::HelpReprompt,
        Line::Goodbye,
        Line::Fallback,
        Line::FallbackReprompt,
        Line::Home,
        Line::NothingToVerify,
        Line::UnsupportedRequest,
        Line::AnswerTooLong,
        Line::InternalError,
        Line::CardTitle,
    ];

    #[test]
    fn every_line_is_short_and_free_of_markup() {
        for line in EVERY_LINE {
            let text = line.text(Locale::EnUs);
            assert!(!text.is_empty(), "{line:?}");
            // Spoken answers stay short: well under a minute of speech.
            assert!(text.len() < 400, "{line:?} is {} bytes", text.len());
            assert!(!text.contains('<') && !text.contains('&'), "{line:?}");
        }
    }

    #[test]
    fn help_says_that_changes_need_the_code_from_the_app() {
        let help = Line::Help.text(Locale::EnUs);
        assert!(help.contains("code"), "{help}");
        assert!(help.contains("app"), "{help}");
    }
}
