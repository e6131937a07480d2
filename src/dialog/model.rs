//! Resolving typed utterances against an interaction model, as Alexa would: the invocation
//! phrase is taken off, every sample utterance becomes a pattern with its slots as gaps,
//! and the most specific sample that fits wins. Slot values are what was said; a value of
//! a slot type with ids (or one of its synonyms) also carries the id, as entity resolution
//! does; `AMAZON.NUMBER` takes digits or number words ("one two three", "five hundred").

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Why a model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The file is not an interaction model.
    #[error("{path} is not an ASK interaction model: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// One value of a custom slot type.
#[derive(Debug, Clone)]
struct TypeValue {
    id: Option<String>,
    names: Vec<String>,
}

/// A sample utterance as a sequence of words and slot gaps.
#[derive(Debug, Clone)]
struct Sample {
    intent: String,
    parts: Vec<Part>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Word(String),
    Slot(String),
}

/// An intent of the model: its slots (name → type) and, per slot, the samples a person may
/// answer with when asked for that slot.
#[derive(Debug, Clone, Default)]
struct IntentSpec {
    slots: BTreeMap<String, String>,
    slot_samples: BTreeMap<String, Vec<Sample>>,
}

/// A slot the resolver filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The words as heard (for `AMAZON.NUMBER`, the digits).
    pub value: String,
    /// The id entity resolution matched, if the slot type has one for these words.
    pub id: Option<String>,
    /// The canonical value that matched, if any.
    pub canonical: Option<String>,
}

/// What an utterance resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// "open cloud gate".
    Launch,
    /// An intent with its slots.
    Intent {
        /// The intent's name.
        name: String,
        /// Filled slots by name.
        slots: BTreeMap<String, Filled>,
    },
    /// Nothing fits; the closest intent and some of its samples.
    Nothing {
        /// The intent that came closest, if any shares a word.
        closest: Option<String>,
        /// Samples of it (or of the model) to try.
        examples: Vec<String>,
    },
}

/// An interaction model ready to resolve utterances.
#[derive(Debug, Clone)]
pub struct Model {
    invocation: String,
    intents: BTreeMap<String, IntentSpec>,
    types: BTreeMap<String, Vec<TypeValue>>,
    samples: Vec<Sample>,
}

/// Phrases Alexa's built-in intents answer to without samples in the model.
const BUILT_IN: &[(&str, &[&str])] = &[
    (
        "AMAZON.StopIntent",
        &["stop", "exit", "quit", "shut up", "off"],
    ),
    (
        "AMAZON.CancelIntent",
        &[
            "cancel",
            "never mind",
            "nevermind",
            "forget it",
            "cancel that",
        ],
    ),
    (
        "AMAZON.HelpIntent",
        &["help", "help me", "what can i say", "what can you do"],
    ),
    ("AMAZON.NavigateHomeIntent", &["go home", "home"]),
    (
        "AMAZON.YesIntent",
        &["yes", "yeah", "yep", "sure", "ok", "okay", "do it"],
    ),
    ("AMAZON.NoIntent", &["no", "nope", "no thanks", "don't"]),
    (
        "AMAZON.RepeatIntent",
        &["repeat", "say that again", "repeat that"],
    ),
];

/// Lower case, contractions spelled out, punctuation between words dropped (but kept
/// inside them: "web-1", "shop.example.com", "$500").
pub fn normalise(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['\u{2019}', '`'], "'");
    let mut words = Vec::new();
    for raw in lower.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '$' && c != '-');
        let word = word.trim_end_matches('-');
        if word.is_empty() {
            continue;
        }
        let spelled: &[&str] = match word {
            "what's" => &["what", "is"],
            "it's" => &["it", "is"],
            "that's" => &["that", "is"],
            "how's" => &["how", "is"],
            "where's" => &["where", "is"],
            "who's" => &["who", "is"],
            "isn't" => &["is", "not"],
            "aren't" => &["are", "not"],
            "don't" => &["do", "not"],
            "doesn't" => &["does", "not"],
            "i'm" => &["i", "am"],
            "i've" => &["i", "have"],
            "i'd" => &["i", "would"],
            "let's" => &["let", "us"],
            "can't" => &["can", "not"],
            "won't" => &["will", "not"],
            _ => &[],
        };
        if spelled.is_empty() {
            words.push(word.to_owned());
        } else {
            words.extend(spelled.iter().map(|w| (*w).to_owned()));
        }
    }
    words
}

fn parse_sample(intent: &str, text: &str) -> Sample {
    let mut parts = Vec::new();
    for token in text.split_whitespace() {
        if let Some(slot) = token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            parts.push(Part::Slot(slot.to_owned()));
        } else {
            parts.extend(normalise(token).into_iter().map(Part::Word));
        }
    }
    Sample {
        intent: intent.to_owned(),
        parts,
        text: text.to_owned(),
    }
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

impl Model {
    /// Reads `skill-package/interactionModels/custom/<locale>.json`-style files.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| ModelError::Invalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::from_json(&json).map_err(|reason| ModelError::Invalid {
            path: shown,
            reason,
        })
    }

    /// Builds a model from its JSON.
    pub fn from_json(json: &Value) -> Result<Self, String> {
        let language = json
            .pointer("/interactionModel/languageModel")
            .ok_or("no interactionModel.languageModel")?;
        let invocation = str_at(language, "invocationName")
            .ok_or("no invocationName")?
            .to_lowercase();
        let mut types = BTreeMap::new();
        for t in language
            .get("types")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = str_at(t, "name").ok_or("a slot type without a name")?;
            let values = t
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| {
                    let mut names: Vec<String> = Vec::new();
                    if let Some(value) = v.pointer("/name/value").and_then(Value::as_str) {
                        names.push(normalise(value).join(" "));
                    }
                    for synonym in v
                        .pointer("/name/synonyms")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        names.push(normalise(synonym).join(" "));
                    }
                    TypeValue {
                        id: str_at(v, "id").map(str::to_owned),
                        names,
                    }
                })
                .collect();
            types.insert(name.to_owned(), values);
        }
        let mut intents = BTreeMap::new();
        let mut samples = Vec::new();
        for intent in language
            .get("intents")
            .and_then(Value::as_array)
            .ok_or("no intents")?
        {
            let name = str_at(intent, "name").ok_or("an intent without a name")?;
            let mut spec = IntentSpec::default();
            for slot in intent
                .get("slots")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let slot_name = str_at(slot, "name").ok_or("a slot without a name")?;
                let slot_type = str_at(slot, "type").ok_or("a slot without a type")?;
                if !slot_type.starts_with("AMAZON.") && !types.contains_key(slot_type) {
                    return Err(format!(
                        "{name}.{slot_name} has the type {slot_type}, which the model does not define"
                    ));
                }
                spec.slots
                    .insert(slot_name.to_owned(), slot_type.to_owned());
                let answers = slot
                    .get("samples")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|s| parse_sample(name, s))
                    .collect();
                spec.slot_samples.insert(slot_name.to_owned(), answers);
            }
            for text in intent
                .get("samples")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let sample = parse_sample(name, text);
                for part in &sample.parts {
                    if let Part::Slot(slot) = part
                        && !spec.slots.contains_key(slot)
                    {
                        return Err(format!("{name}: '{text}' uses the undeclared slot {slot}"));
                    }
                }
                samples.push(sample);
            }
            intents.insert(name.to_owned(), spec);
        }
        Ok(Self {
            invocation,
            intents,
            types,
            samples,
        })
    }

    /// Adds values a skill taught with `Dialog.UpdateDynamicEntities`: `(id, names)` of
    /// `slot_type`, heard for the rest of the session.
    pub fn teach(&mut self, slot_type: &str, values: Vec<(Option<String>, Vec<String>)>) {
        let known = self.types.entry(slot_type.to_owned()).or_default();
        for (id, names) in values {
            known.push(TypeValue {
                id,
                names: names.iter().map(|n| normalise(n).join(" ")).collect(),
            });
        }
    }

    /// The invocation name ("cloud gate").
    pub fn invocation(&self) -> &str {
        &self.invocation
    }

    /// Every sample utterance, by intent.
    pub fn samples(&self) -> Vec<(String, String)> {
        self.samples
            .iter()
            .map(|s| (s.intent.clone(), s.text.clone()))
            .collect()
    }

    /// The slots `intent` declares, by name.
    pub fn intent_slots(&self, intent: &str) -> Vec<String> {
        self.intents
            .get(intent)
            .map(|i| i.slots.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The slot type of `intent`'s `slot`.
    pub fn slot_type(&self, intent: &str, slot: &str) -> Option<&str> {
        self.intents
            .get(intent)?
            .slots
            .get(slot)
            .map(String::as_str)
    }

    /// Some values of a custom slot type, for filling samples in tests.
    pub fn type_values(&self, slot_type: &str) -> Vec<String> {
        self.types
            .get(slot_type)
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.names.first().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What `utterance` asks for, as a whole request ("ask cloud gate to stop the web
    /// server", or "stop the web server" inside a session).
    pub fn resolve(&self, utterance: &str) -> Heard {
        let mut words = normalise(utterance);
        if words.first().map(String::as_str) == Some("alexa") {
            words.remove(0);
        }
        let invocation = normalise(&self.invocation);
        let n = invocation.len();
        // "open cloud gate", "start cloud gate", "launch cloud gate".
        if words.len() == n + 1
            && ["open", "start", "launch", "talk"].contains(&words[0].as_str())
            && words[1..] == invocation[..]
        {
            return Heard::Launch;
        }
        // "ask cloud gate to …", "tell cloud gate …", "… using cloud gate".
        if words.len() > n
            && ["ask", "tell", "use"].contains(&words[0].as_str())
            && words[1..=n] == invocation[..]
        {
            words.drain(..=n);
            if matches!(
                words.first().map(String::as_str),
                Some("to" | "for" | "whether" | "if" | "about")
            ) {
                words.remove(0);
            }
        }
        if words == invocation {
            return Heard::Launch;
        }
        if let Some(heard) = self.built_in(&words) {
            return heard;
        }
        let best = self
            .samples
            .iter()
            .filter_map(|s| self.fit(s, &words).map(|slots| (s, slots)))
            .max_by_key(|(s, slots)| specificity(s, slots));
        match best {
            Some((sample, slots)) => Heard::Intent {
                name: sample.intent.clone(),
                slots,
            },
            None => self.closest(&words),
        }
    }

    /// `utterance` as an answer to "which `slot`?" for `intent`: a built-in ("cancel"), the
    /// slot's own answer samples ("it's {code}"), or the bare value.
    pub fn resolve_slot(&self, intent: &str, slot: &str, utterance: &str) -> Option<Filled> {
        let words = normalise(utterance);
        let spec = self.intents.get(intent)?;
        let slot_type = spec.slots.get(slot)?;
        let mut answers: Vec<Sample> = spec.slot_samples.get(slot).cloned().unwrap_or_default();
        answers.push(Sample {
            intent: intent.to_owned(),
            parts: vec![Part::Slot(slot.to_owned())],
            text: format!("{{{slot}}}"),
        });
        answers
            .iter()
            .filter_map(|s| self.fit(s, &words))
            .filter_map(|mut slots| slots.remove(slot))
            .next()
            .or_else(|| {
                // A value the slot type cannot take is still heard as said (Alexa sends "?"
                // for a number it could not hear).
                (slot_type == "AMAZON.NUMBER" && !words.is_empty()).then(|| Filled {
                    value: "?".to_owned(),
                    id: None,
                    canonical: None,
                })
            })
    }

    /// A built-in intent's phrase, as the whole utterance.
    pub fn built_in(&self, words: &[String]) -> Option<Heard> {
        let said = words.join(" ");
        BUILT_IN
            .iter()
            .find(|(_, phrases)| phrases.contains(&said.as_str()))
            .map(|(name, _)| Heard::Intent {
                name: (*name).to_owned(),
                slots: BTreeMap::new(),
            })
    }

    /// The slots `sample` fills from `words`, if it fits them.
    fn fit(&self, sample: &Sample, words: &[String]) -> Option<BTreeMap<String, Filled>> {
        let mut slots = BTreeMap::new();
        if self.fit_from(sample, &sample.parts, words, &mut slots) {
            Some(slots)
        } else {
            None
        }
    }

    fn fit_from(
        &self,
        sample: &Sample,
        parts: &[Part],
        words: &[String],
        slots: &mut BTreeMap<String, Filled>,
    ) -> bool {
        match parts.first() {
            None => words.is_empty(),
            Some(Part::Word(word)) => {
                words.first() == Some(word)
                    && self.fit_from(sample, &parts[1..], &words[1..], slots)
            }
            Some(Part::Slot(slot)) => {
                let slot_type = self
                    .intents
                    .get(&sample.intent)
                    .and_then(|i| i.slots.get(slot))
                    .map_or("", String::as_str);
                // Shortest value first: the words after the gap anchor it.
                for end in 1..=words.len() {
                    let Some(filled) = self.fill(slot_type, &words[..end]) else {
                        continue;
                    };
                    if self.fit_from(sample, &parts[1..], &words[end..], slots) {
                        slots.insert(slot.clone(), filled);
                        return true;
                    }
                }
                false
            }
        }
    }

    /// `words` as a value of `slot_type`, if they can be one.
    fn fill(&self, slot_type: &str, words: &[String]) -> Option<Filled> {
        let said = words.join(" ");
        if slot_type == "AMAZON.NUMBER" {
            return number(words).map(|n| Filled {
                value: n,
                id: None,
                canonical: None,
            });
        }
        let known = |said: &String| {
            self.types
                .get(slot_type)
                .and_then(|values| values.iter().find(|v| v.names.contains(said)).cloned())
        };
        // "the web server" is heard as the known value "web server", as Alexa does.
        let unfilled = words
            .iter()
            .skip_while(|w| ["the", "my", "a", "an", "our"].contains(&w.as_str()))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let (said, matched) = match known(&said) {
            Some(value) => (said, Some(value)),
            None => match known(&unfilled) {
                Some(value) => (unfilled, Some(value)),
                None => (said, None),
            },
        };
        Some(Filled {
            value: said,
            id: matched.as_ref().and_then(|v| v.id.clone()),
            canonical: matched.and_then(|v| v.names.first().cloned()),
        })
    }

    /// Nothing fit: the intent whose samples share the most words, and a few of them.
    fn closest(&self, words: &[String]) -> Heard {
        let said: std::collections::BTreeSet<&str> = words.iter().map(String::as_str).collect();
        let mut scores: BTreeMap<&str, usize> = BTreeMap::new();
        for sample in &self.samples {
            let shared = sample
                .parts
                .iter()
                .filter(|p| {
                    matches!(p, Part::Word(w) if said.contains(w.as_str()) && !COMMON.contains(&w.as_str()))
                })
                .count();
            let best = scores.entry(&sample.intent).or_default();
            *best = (*best).max(shared);
        }
        let closest = scores
            .iter()
            .filter(|(_, score)| **score > 0)
            .max_by_key(|(_, score)| **score)
            .map(|(name, _)| (*name).to_owned());
        let examples = self
            .samples
            .iter()
            .filter(|s| closest.as_deref().is_none_or(|c| s.intent == c))
            .take(3)
            .map(|s| s.text.clone())
            .collect();
        Heard::Nothing { closest, examples }
    }
}

/// How well a sample fits: slot values that are known values of their type count most
/// (as entity resolution matching them), then literal words.
fn specificity(sample: &Sample, slots: &BTreeMap<String, Filled>) -> (usize, usize) {
    let words = sample
        .parts
        .iter()
        .filter(|p| matches!(p, Part::Word(_)))
        .count();
    let resolved = slots.values().filter(|f| f.canonical.is_some()).count();
    (2 * resolved + words, words)
}

/// Words too common to say which intent was meant.
const COMMON: &[&str] = &[
    "the", "a", "an", "is", "are", "my", "to", "of", "in", "on", "for", "please", "what", "it",
    "me", "i", "you", "and", "do", "does", "now", "all", "any", "this", "that",
];

const DIGITS: &[(&str, u64)] = &[
    ("zero", 0),
    ("oh", 0),
    ("o", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
];
const TEENS: &[(&str, u64)] = &[
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

fn word_value(table: &[(&str, u64)], word: &str) -> Option<u64> {
    table.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// A number as Alexa's `AMAZON.NUMBER` hears it: digits ("123456", "$500", "-5"), a string
/// of digit words ("one two three four five six"), or a cardinal ("five hundred", "twenty
/// five", "one thousand two hundred"), optionally after "minus".
pub fn number(words: &[String]) -> Option<String> {
    let mut words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !["and", "dollars", "dollar", "percent", "bucks"].contains(w))
        .collect();
    if words.is_empty() {
        return None;
    }
    let negative = words[0] == "minus" || words[0] == "negative";
    if negative {
        words.remove(0);
    }
    let sign = if negative { "-" } else { "" };
    // Digits, possibly in groups ("135 967").
    let joined: String = words.concat();
    let digits = joined.trim_start_matches('$').replace(',', "");
    let (minus, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest.to_owned()),
        None => ("", digits),
    };
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{sign}{minus}{digits}"));
    }
    // Digit words one by one.
    if words.len() > 1 && words.iter().all(|w| word_value(DIGITS, w).is_some()) {
        let digits: String = words
            .iter()
            .filter_map(|w| word_value(DIGITS, w))
            .map(|d| d.to_string())
            .collect();
        return Some(format!("{sign}{digits}"));
    }
    // A cardinal.
    let mut total = 0u64;
    let mut current = 0u64;
    for word in &words {
        if let Some(n) = word_value(DIGITS, word).or_else(|| word_value(TEENS, word)) {
            current += n;
        } else if let Ok(n) = word.parse::<u64>() {
            current += n;
        } else if *word == "hundred" {
            current = current.max(1) * 100;
        } else if *word == "thousand" {
            total += current.max(1) * 1_000;
            current = 0;
        } else if *word == "million" {
            total += current.max(1) * 1_000_000;
            current = 0;
        } else if *word == "a" {
            current += 1;
        } else {
            return None;
        }
    }
    Some(format!("{sign}{}", total + current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::from_json(&serde_json::json!({"interactionModel": {"languageModel": {
            "invocationName": "cloud gate",
            "types": [{"name": "INSTANCE_NAME", "values": [{"name": {"value": "web server"}}]},
                      {"name": "AWS_REGION", "values": [
                {"id": "eu-west-1", "name": {"value": "ireland", "synonyms": ["dublin", "eu west one"]}}]}],
            "intents": [
                {"name": "StopInstanceIntent", "slots": [
                    {"name": "instance", "type": "INSTANCE_NAME"},
                    {"name": "region", "type": "AWS_REGION"}],
                 "samples": ["stop {instance}", "stop the {instance}", "stop {instance} in {region}"]},
                {"name": "ListInstancesIntent", "slots": [], "samples": ["what's running"]},
                {"name": "VerifyCodeIntent", "slots": [
                    {"name": "code", "type": "AMAZON.NUMBER", "samples": ["{code}", "it's {code}"]}],
                 "samples": ["the code is {code}"]}
            ]}}}))
        .expect("model")
    }

    fn words(text: &str) -> Vec<String> {
        normalise(text)
    }

    #[test]
    fn the_invocation_is_taken_off_and_the_most_specific_sample_wins() {
        let m = model();
        assert_eq!(m.resolve("open cloud gate"), Heard::Launch);
        let Heard::Intent { name, slots } =
            m.resolve("Alexa, ask cloud gate to stop the web server in Dublin")
        else {
            panic!("no intent");
        };
        assert_eq!(name, "StopInstanceIntent");
        assert_eq!(slots["instance"].value, "web server");
        assert_eq!(slots["region"].id.as_deref(), Some("eu-west-1"));
        assert_eq!(
            m.resolve("what is running"),
            Heard::Intent {
                name: "ListInstancesIntent".into(),
                slots: BTreeMap::new()
            }
        );
    }

    #[test]
    fn numbers_are_heard_from_digits_and_words() {
        assert_eq!(number(&words("123456")).as_deref(), Some("123456"));
        assert_eq!(number(&words("135 967")).as_deref(), Some("135967"));
        assert_eq!(
            number(&words("one two three four five six")).as_deref(),
            Some("123456")
        );
        assert_eq!(number(&words("five hundred")).as_deref(), Some("500"));
        assert_eq!(number(&words("twenty five")).as_deref(), Some("25"));
        assert_eq!(
            number(&words("one thousand two hundred and fifty")).as_deref(),
            Some("1250")
        );
        assert_eq!(number(&words("$500")).as_deref(), Some("500"));
        assert_eq!(number(&words("minus five")).as_deref(), Some("-5"));
        assert_eq!(number(&words("web server")), None);
    }

    #[test]
    fn an_answer_to_a_slot_question_fills_that_slot() {
        let m = model();
        let code = m.resolve_slot(
            "VerifyCodeIntent",
            "code",
            "it's one two three four five six",
        );
        assert_eq!(code.map(|f| f.value).as_deref(), Some("123456"));
        let heard = m.resolve_slot("VerifyCodeIntent", "code", "purple");
        assert_eq!(heard.map(|f| f.value).as_deref(), Some("?"));
    }

    #[test]
    fn nothing_fitting_names_the_closest_intent() {
        match model().resolve("please halt the server now") {
            Heard::Nothing { closest, examples } => {
                assert_eq!(closest, None);
                assert!(!examples.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match model().resolve("running things") {
            Heard::Nothing { closest, .. } => {
                assert_eq!(closest.as_deref(), Some("ListInstancesIntent"));
            }
            other => panic!("{other:?}"),
        }
    }
}
