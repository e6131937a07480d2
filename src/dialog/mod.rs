//! `voxgate dialog`: a conversation with a skill endpoint typed instead of spoken. Each line
//! is resolved against the interaction model ([`model`]) into the request Alexa would send,
//! signed with a development CA when asked (so the endpoint runs its whole verification),
//! posted, and the answer printed: speech, reprompt, card and directives. The session and
//! its attributes carry over between turns, and dialog directives are followed (after
//! `Dialog.ElicitSlot` the next line fills that slot; after `Dialog.ConfirmIntent`, yes or
//! no confirms or denies).
//!
//! A client of the Alexa protocol only: it knows nothing of AWS or the store.

pub mod model;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use self::model::{Filled, Heard, Model};
use crate::devca::Signer;

/// Where and how to talk.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The skill's `/alexa` URL.
    pub endpoint: String,
    /// The applicationId requests carry.
    pub skill_id: String,
    /// The Alexa user id requests carry.
    pub user_id: String,
    /// The request locale.
    pub locale: String,
    /// Print each raw request and response.
    pub show_json: bool,
}

/// What the dialog is waiting for, after a dialog directive.
#[derive(Debug, Clone)]
enum Waiting {
    /// Nothing: the next line is a new request.
    Nothing,
    /// The next line fills `slot` of `intent` (the directive's updated intent).
    Slot { intent: Value, slot: String },
    /// The next line confirms or denies `intent`.
    Confirmation { intent: Value },
}

/// One answer, as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// What Alexa says (SSML tags removed).
    pub speech: String,
    /// The reprompt, if any.
    pub reprompt: Option<String>,
    /// The card's title and text, if any.
    pub card: Option<(String, String)>,
    /// The directives' types (and the slot, for `Dialog.ElicitSlot`).
    pub directives: Vec<String>,
    /// Whether the session ended.
    pub ended: bool,
}

impl Answer {
    /// The answer as the dialog prints it.
    pub fn render(&self) -> String {
        let mut out = format!("alexa> {}", self.speech);
        if let Some(reprompt) = &self.reprompt {
            out.push_str(&format!("\n       (if you say nothing: {reprompt})"));
        }
        if let Some((title, content)) = &self.card {
            out.push_str(&format!("\n       [card: {title}]"));
            for line in content.lines() {
                out.push_str(&format!("\n         {line}"));
            }
        }
        for directive in &self.directives {
            out.push_str(&format!("\n       [{directive}]"));
        }
        if self.ended {
            out.push_str("\n       [session ended]");
        }
        out
    }
}

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum DialogError {
    /// The endpoint could not be reached.
    #[error("could not reach {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The endpoint refused the request.
    #[error("the skill refused the request (HTTP {status}): {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its answer.
        body: String,
    },
    /// Signing failed.
    #[error("could not sign the request: {0}")]
    Sign(String),
}

/// What one typed line led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// The skill answered.
    Answered(Answer),
    /// Nothing in the model fits: nothing was sent.
    NotUnderstood {
        /// The closest intent, if any.
        closest: Option<String>,
        /// Samples to try.
        examples: Vec<String>,
    },
}

impl Turn {
    /// The turn as the dialog prints it.
    pub fn render(&self) -> String {
        match self {
            Self::Answered(answer) => answer.render(),
            Self::NotUnderstood { closest, examples } => {
                let mut out = String::from("(no intent of the model fits that; nothing was sent)");
                if let Some(closest) = closest {
                    out.push_str(&format!("\nclosest: {closest}"));
                }
                if !examples.is_empty() {
                    out.push_str("\ntry: ");
                    out.push_str(
                        &examples
                            .iter()
                            .map(|e| format!("\"{e}\""))
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                }
                out
            }
        }
    }

    /// What was said, for `expect:` lines ("" when nothing was sent).
    pub fn speech(&self) -> &str {
        match self {
            Self::Answered(answer) => &answer.speech,
            Self::NotUnderstood { .. } => "",
        }
    }
}

/// A conversation with one skill endpoint.
pub struct Conversation {
    model: Model,
    settings: Settings,
    signer: Option<Signer>,
    http: reqwest::Client,
    session_id: Option<String>,
    attributes: Map<String, Value>,
    waiting: Waiting,
    /// The last request and response, for `--show-json`.
    pub last_exchange: Option<(Value, Value)>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("endpoint", &self.settings.endpoint)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

fn random_id(prefix: &str) -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn slot_json(name: &str, filled: Option<&Filled>) -> Value {
    let mut slot = json!({"name": name, "confirmationStatus": "NONE"});
    if let Some(filled) = filled {
        slot["value"] = json!(filled.value);
        if let Some(id) = &filled.id {
            slot["resolutions"] = json!({"resolutionsPerAuthority": [{
                "authority": "amzn1.er-authority.echo-sdk.voxgate.dialog",
                "status": {"code": "ER_SUCCESS_MATCH"},
                "values": [{"value": {"name": filled.canonical.clone().unwrap_or_else(|| filled.value.clone()), "id": id}}]
            }]});
        }
    }
    slot
}

/// Text of an `outputSpeech` (plain, or SSML without its tags).
fn speech_text(speech: &Value) -> String {
    if let Some(text) = speech.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
    let ssml = speech.get("ssml").and_then(Value::as_str).unwrap_or("");
    let mut out = String::new();
    let mut in_tag = false;
    for c in ssml.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

impl Conversation {
    /// A conversation resolving against `model`, posting to `settings.endpoint`, signing
    /// with `signer` if given.
    pub fn new(model: Model, settings: Settings, signer: Option<Signer>) -> Self {
        Self {
            model,
            settings,
            signer,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            session_id: None,
            attributes: Map::new(),
            waiting: Waiting::Nothing,
            last_exchange: None,
        }
    }

    /// The model it resolves against.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// One typed line: resolved, sent, answered.
    pub async fn say(&mut self, line: &str) -> Result<Turn, DialogError> {
        let request = match self.request_for(line) {
            Ok(request) => request,
            Err(turn) => return Ok(*turn),
        };
        let answer = self.send(request).await?;
        Ok(Turn::Answered(answer))
    }

    /// The request for `line`, or the turn saying nothing fits.
    fn request_for(&mut self, line: &str) -> Result<Value, Box<Turn>> {
        let words = model::normalise(line);
        let waiting = std::mem::replace(&mut self.waiting, Waiting::Nothing);
        match waiting {
            Waiting::Confirmation { mut intent } => {
                let status = match self.model.built_in(&words) {
                    Some(Heard::Intent { name, .. }) if name == "AMAZON.YesIntent" => {
                        Some("CONFIRMED")
                    }
                    Some(Heard::Intent { name, .. }) if name == "AMAZON.NoIntent" => Some("DENIED"),
                    _ => None,
                };
                if let Some(status) = status {
                    intent["confirmationStatus"] = json!(status);
                    return Ok(self.intent_request(intent));
                }
            }
            Waiting::Slot { mut intent, slot } => {
                // "cancel", "stop", "help" keep their meaning while a slot is asked for.
                let built_in = self.model.built_in(&words);
                let name = intent
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                // A whole new request ("ask cloud gate to …", or words that are no value
                // of the slot but fit another intent) goes to that intent, as with Alexa.
                let invocation = model::normalise(self.model.invocation());
                let addressed = words.len() > invocation.len()
                    && ["ask", "tell", "alexa"].contains(&words[0].as_str());
                let filled = self.model.resolve_slot(&name, &slot, line);
                let fits_slot = filled.as_ref().is_some_and(|f| f.value != "?");
                let other_intent = matches!(
                    self.model.resolve(line),
                    Heard::Intent { .. } | Heard::Launch
                );
                if built_in.is_none()
                    && !addressed
                    && (fits_slot || !other_intent)
                    && let Some(filled) = filled
                {
                    intent["slots"][&slot] = slot_json(&slot, Some(&filled));
                    return Ok(self.intent_request(intent));
                }
            }
            Waiting::Nothing => {}
        }
        match self.model.resolve(line) {
            Heard::Launch => Ok(self.request(json!({"type": "LaunchRequest"}))),
            Heard::Intent { name, slots } => {
                let mut slot_map = Map::new();
                for slot in self.model.intent_slots(&name) {
                    slot_map.insert(slot.clone(), slot_json(&slot, slots.get(&slot)));
                }
                let intent = json!({
                    "name": name,
                    "confirmationStatus": "NONE",
                    "slots": slot_map,
                });
                Ok(self.intent_request(intent))
            }
            Heard::Nothing { closest, examples } => {
                Err(Box::new(Turn::NotUnderstood { closest, examples }))
            }
        }
    }

    fn intent_request(&self, intent: Value) -> Value {
        self.request(json!({"type": "IntentRequest", "dialogState": "STARTED", "intent": intent}))
    }

    /// The envelope around `request`, in the current session (a new one if none).
    fn request(&self, mut request: Value) -> Value {
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        request["requestId"] = json!(random_id("amzn1.echo-api.request."));
        request["timestamp"] = json!(
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        request["locale"] = json!(self.settings.locale);
        let application = json!({"applicationId": self.settings.skill_id});
        let user = json!({"userId": self.settings.user_id});
        json!({
            "version": "1.0",
            "session": {
                "new": self.session_id.is_none(),
                "sessionId": self.session_id.clone().unwrap_or_else(|| random_id("amzn1.echo-api.session.")),
                "application": application,
                "attributes": self.attributes,
                "user": user,
            },
            "context": {"System": {
                "application": application,
                "user": user,
                "device": {"deviceId": "amzn1.ask.device.voxgate-dialog", "supportedInterfaces": {}},
                "apiEndpoint": "https://api.amazonalexa.com",
            }},
            "request": request,
        })
    }

    /// Posts `request` and takes in the answer: the session, its attributes and what the
    /// next line answers.
    async fn send(&mut self, request: Value) -> Result<Answer, DialogError> {
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let mut post = self
            .http
            .post(&self.settings.endpoint)
            .header("content-type", "application/json");
        if let Some(signer) = &self.signer {
            for (name, value) in signer
                .headers(&body)
                .map_err(|e| DialogError::Sign(e.to_string()))?
            {
                post = post.header(name, value);
            }
        }
        let response = post
            .body(body)
            .send()
            .await
            .map_err(|e| DialogError::Unreachable {
                endpoint: self.settings.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err(DialogError::Refused { status, body: text });
        }
        let answer: Value = serde_json::from_str(&text).map_err(|e| DialogError::Refused {
            status,
            body: format!("not JSON ({e}): {text}"),
        })?;
        self.session_id = Some(
            request
                .pointer("/session/sessionId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
        self.attributes = answer
            .get("sessionAttributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let response = answer.get("response").cloned().unwrap_or(Value::Null);
        let mut printed = Answer {
            speech: response
                .get("outputSpeech")
                .map(speech_text)
                .unwrap_or_default(),
            reprompt: response.pointer("/reprompt/outputSpeech").map(speech_text),
            card: response.get("card").map(|card| {
                (
                    card.get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    card.get("content")
                        .or_else(|| card.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                )
            }),
            directives: Vec::new(),
            // Alexa ends the session when the skill says so or says nothing about it.
            ended: response
                .get("shouldEndSession")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        };
        for directive in response
            .get("directives")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = directive
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let updated = directive
                .get("updatedIntent")
                .cloned()
                .or_else(|| request.pointer("/request/intent").cloned());
            match kind.as_str() {
                "Dialog.ElicitSlot" => {
                    let slot = directive
                        .get("slotToElicit")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    printed.directives.push(format!("{kind}: {slot}"));
                    if let Some(intent) = updated {
                        self.waiting = Waiting::Slot { intent, slot };
                    }
                }
                "Dialog.ConfirmIntent" => {
                    printed.directives.push(kind);
                    if let Some(intent) = updated {
                        self.waiting = Waiting::Confirmation { intent };
                    }
                }
                "Dialog.UpdateDynamicEntities" => {
                    let mut taught = 0;
                    for t in directive
                        .get("types")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                        let values: Vec<(Option<String>, Vec<String>)> = t
                            .get("values")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|v| {
                                let mut names: Vec<String> = v
                                    .pointer("/name/value")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                                    .into_iter()
                                    .collect();
                                names.extend(
                                    v.pointer("/name/synonyms")
                                        .and_then(Value::as_array)
                                        .into_iter()
                                        .flatten()
                                        .filter_map(Value::as_str)
                                        .map(str::to_owned),
                                );
                                (
                                    v.get("id").and_then(Value::as_str).map(str::to_owned),
                                    names,
                                )
                            })
                            .collect();
                        taught += values.len();
                        self.model.teach(name, values);
                    }
                    printed.directives.push(format!("{kind}: {taught} values"));
                }
                _ => printed.directives.push(kind),
            }
        }
        if printed.ended {
            self.session_id = None;
            self.attributes = Map::new();
            self.waiting = Waiting::Nothing;
        }
        self.last_exchange = Some((request, answer));
        Ok(printed)
    }
}

/// One line of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `say: …`
    Say(String),
    /// `expect: REGEX` (checked against the last answer's speech).
    Expect(String),
}

/// Reads a script: `say:` and `expect:` lines; blank lines and `#` comments are skipped.
pub fn parse_script(text: &str) -> Result<Vec<(usize, Step)>, String> {
    let mut steps = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("say:") {
            steps.push((number, Step::Say(rest.trim().to_owned())));
        } else if let Some(rest) = line.strip_prefix("expect:") {
            let pattern = rest.trim().to_owned();
            regex_lite::Regex::new(&pattern)
                .map_err(|e| format!("line {number}: '{pattern}' is not a regex: {e}"))?;
            steps.push((number, Step::Expect(pattern)));
        } else {
            return Err(format!(
                "line {number}: '{line}' is neither 'say: …' nor 'expect: REGEX'"
            ));
        }
    }
    Ok(steps)
}

/// Where the interaction model of `locale` lives, relative to the repository.
pub fn model_path(locale: &str) -> PathBuf {
    PathBuf::from("skill-package/interactionModels/custom").join(format!("{locale}.json"))
}

/// The model of `locale`: `path` if given, else `skill-package/interactionModels/custom/<locale>.json` if there
/// is one here, else the copy built into voxgate (so the dialog works from any directory).
pub fn load_model(path: Option<&std::path::Path>, locale: &str) -> anyhow::Result<Model> {
    if let Some(path) = path {
        return Ok(Model::load(path)?);
    }
    let local = model_path(locale);
    if local.exists() {
        return Ok(Model::load(&local)?);
    }
    let built_in = match locale {
        "en-US" => include_str!("../../skill-package/interactionModels/custom/en-US.json"),
        "en-GB" => include_str!("../../skill-package/interactionModels/custom/en-GB.json"),
        other => {
            anyhow::bail!("no interaction model for {other}: give one with --model, or use en-US")
        }
    };
    let json: Value = serde_json::from_str(built_in)?;
    Model::from_json(&json).map_err(|e| anyhow::anyhow!("the built-in model is invalid: {e}"))
}

/// Runs `steps`, printing each turn; `fill` replaces placeholders in `say:` lines (the demo
/// fills `{companion-code}`). Stops at the first `expect:` that does not match.
pub async fn run_script<F, Fut>(
    conversation: &mut Conversation,
    steps: &[(usize, Step)],
    fill: F,
    mut out: impl std::io::Write,
) -> Result<(), String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut last = String::new();
    for (number, step) in steps {
        match step {
            Step::Say(line) => {
                let line = fill(line.clone()).await?;
                let _ = writeln!(out, "you> {line}");
                let turn = conversation
                    .say(&line)
                    .await
                    .map_err(|e| format!("line {number}: {e}"))?;
                let _ = writeln!(out, "{}", turn.render());
                if let (true, Some((request, response))) =
                    (conversation.settings.show_json, &conversation.last_exchange)
                {
                    let _ = writeln!(out, "request: {request}\nresponse: {response}");
                }
                last = turn.speech().to_owned();
            }
            Step::Expect(pattern) => {
                let regex = regex_lite::Regex::new(pattern).map_err(|e| e.to_string())?;
                if !regex.is_match(&last) {
                    return Err(format!(
                        "line {number}: expected /{pattern}/, but the last answer was: {last}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Fills nothing: for scripts without placeholders.
pub async fn no_placeholders(line: String) -> Result<String, String> {
    Ok(line)
}

/// The slot values of a resolved intent, for printing what was heard.
pub fn describe(heard: &Heard) -> String {
    match heard {
        Heard::Launch => "LaunchRequest".to_owned(),
        Heard::Intent { name, slots } => {
            let slots: BTreeMap<&String, &String> =
                slots.iter().map(|(k, v)| (k, &v.value)).collect();
            if slots.is_empty() {
                name.clone()
            } else {
                format!("{name} {slots:?}")
            }
        }
        Heard::Nothing { .. } => "nothing".to_owned(),
    }
}

/// Reads lines from the terminal until end of input (Ctrl-D) or `quit`, one turn each.
pub async fn interactive(conversation: &mut Conversation) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let invocation = conversation.model().invocation().to_owned();
    println!(
        "Type what you would say, e.g. \"ask {invocation} what's running\". \
         Ctrl-D or \"quit\" ends the dialog."
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("you> ");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let Some(line) = lines.next_line().await? else {
            println!();
            return Ok(());
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" || line == "exit" {
            return Ok(());
        }
        match conversation.say(line).await {
            Ok(turn) => {
                println!("{}", turn.render());
                if let (true, Some((request, response))) =
                    (conversation.settings.show_json, &conversation.last_exchange)
                {
                    println!("request: {request}\nresponse: {response}");
                }
            }
            Err(error) => println!("(nothing was said: {error})"),
        }
    }
}
