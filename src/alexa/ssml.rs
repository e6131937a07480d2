//! Building SSML safely: text is always escaped, markup only comes from the methods here.

use std::fmt::Write as _;

/// Escapes text for use inside SSML (XML character data and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An SSML document under construction; `finish` wraps it in `<speak>`.
#[derive(Debug, Default, Clone)]
pub struct Ssml {
    body: String,
}

impl Ssml {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plain text, escaped.
    pub fn text(mut self, text: &str) -> Self {
        self.body.push_str(&escape(text));
        self
    }

    /// Digits read one by one ("zero eight one"), e.g. for codes or ids.
    pub fn digits(mut self, digits: &str) -> Self {
        let _ = write!(
            self.body,
            "<say-as interpret-as=\"digits\">{}</say-as>",
            escape(digits)
        );
        self
    }

    /// A pause.
    pub fn pause_ms(mut self, millis: u32) -> Self {
        let _ = write!(self.body, "<break time=\"{millis}ms\"/>");
        self
    }

    /// The finished document.
    pub fn finish(self) -> String {
        format!("<speak>{}</speak>", self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_inject_markup() {
        let ssml = Ssml::new()
            .text("web & db <audio src=\"x\"/> 'quoted'")
            .finish();
        assert_eq!(
            ssml,
            "<speak>web &amp; db &lt;audio src=&quot;x&quot;/&gt; &apos;quoted&apos;</speak>"
        );
    }

    #[test]
    fn digits_and_pauses_are_markup() {
        let ssml = Ssml::new()
            .text("Code")
            .pause_ms(300)
            .digits("081804")
            .finish();
        assert_eq!(
            ssml,
            "<speak>Code<break time=\"300ms\"/><say-as interpret-as=\"digits\">081804</say-as></speak>"
        );
    }
}
