//! The speech catalog: every sentence a person hears, keyed by [`Line`], per [`Locale`].
//!
//! Handlers never write sentences inline; they pick a line here. A second locale is one
//! more `match` arm in [`Line::text`] and one more function like [`en_us`]; the compiler
//! then points at every line it still lacks.

use crate::ops::Operation;
use crate::ops::ask::{Failure, Scope, Scoped};
use crate::ops::catalog::Report;
use crate::ops::cleanup::{self, CleanupResult, Unused};
use crate::ops::instances::{Action, InstanceCounts, InstanceState};
use crate::ops::reply::Reply;
use crate::ops::vpn::VpnConnection;
use crate::ops::words::{count, monthly};

/// A language voxgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    /// English (United States); also used for every other English locale and as the
    /// fallback for locales voxgate does not speak yet.
    #[default]
    EnUs,
    /// English (United Kingdom).
    EnGb,
}

impl Locale {
    /// The locale for a request's `locale` tag.
    pub fn from_tag(tag: Option<&str>) -> Self {
        match tag {
            Some("en-GB") => Self::EnGb,
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
    /// The speaker is not enrolled.
    NotEnrolled,
    /// Account linking is required and the token is missing or invalid.
    LinkAccount,
    /// The speaker's tenant has no AWS account linked.
    NoLinkedAccount,
    /// What an operation family answered.
    Reply(Reply),
    /// STS refused the role: trust policy or ExternalId.
    AwsTrustRejected,
    /// AWS could not be reached.
    AwsUnreachable,
    /// The key service (KMS) that seals and opens the speaker's voxgate key failed (at a
    /// hold or at a code).
    KeyServiceUnavailable,
    /// The role lacks a permission.
    AwsAccessDenied,
    /// Any other AWS failure.
    AwsFailed,
    /// The stored account details could not be opened.
    AccountDetailsUnavailable,
    /// A critical operation is held for its code.
    Held {
        /// Its summary.
        summary: String,
    },
    /// Reprompt while a code is awaited.
    HeldReprompt,
    /// Asks for the code.
    AskCode,
    /// What was heard is not a whole code: asked again, costing no try.
    CodeNotHeard,
    /// "what's waiting": nothing.
    NothingWaiting,
    /// "stop" with an operation held: it keeps waiting.
    StillWaiting {
        /// Its summary.
        summary: String,
    },
    /// The operation ran (or is under way), as its report says.
    Done(Report),
    /// The guard found the resources changed since the approval.
    ChangedSinceApproval,
    /// A wrong code.
    WrongCode {
        /// Tries left.
        tries_left: i64,
        /// Seconds to wait before the next code is checked, if this one started a lockout.
        wait_seconds: Option<i64>,
        /// Seconds the next wrong code would lock the person out for, if it would.
        next_lockout_seconds: Option<i64>,
    },
    /// The last wrong code: the request is cancelled.
    TooManyWrongCodes,
    /// Too many wrong codes across requests: wait.
    LockedOut {
        /// Seconds to wait.
        seconds: i64,
    },
    /// A code spoken again.
    CodeReused,
    /// Another code for the same request is being checked.
    CheckBusy,
    /// The held operation expired.
    ChallengeExpired,
    /// The held operation was denied in the app.
    ChallengeDenied,
    /// The held operation was cancelled by voice.
    ChallengeCancelled,
    /// The held operation was replaced by a newer one.
    ChallengeReplaced,
    /// The held operation was cancelled after too many wrong codes.
    ChallengeEndedByWrongCodes,
    /// The held operation could not be read; it was closed.
    ChallengeUnreadable,
    /// The operation was already approved; this code changes nothing.
    AlreadyApproved,
    /// A change was sent but AWS did not answer in time: whether it happened is unknown.
    OutcomeUnknown(Operation),
    /// "cancel" came after the operation was approved: it is running.
    TooLateToCancel {
        /// Its summary.
        summary: String,
    },
    /// The decision could not be recorded, so it was not taken.
    NotRecorded,
    /// The held operation was cancelled by voice.
    Cancelled {
        /// Its summary.
        summary: String,
    },
    /// The target lost the managed tag between holding and running.
    NoLongerManaged(Operation),
    /// Asks whether to replace the waiting operation.
    ReplaceAsk {
        /// The waiting one.
        old: String,
        /// The new one.
        new: String,
    },
    /// The waiting operation was kept.
    KeptOld {
        /// The waiting one.
        old: String,
    },
    /// Card title for a held operation.
    ApprovalCardTitle,
    /// Card text under the summary of a held operation (never the code).
    ApprovalCardHint,
}

impl Line {
    /// The sentence in `locale`.
    pub fn text(&self, locale: Locale) -> String {
        match locale {
            Locale::EnUs => en_us(self),
            Locale::EnGb => en_gb(self),
        }
    }
}

/// At most this many names are read out; the card has the rest.
const NAMES_READ_OUT: usize = 5;

/// "a", "a and b", "a, b and c", "a, b, c, d, e and 3 more".
fn list(names: &[String]) -> String {
    list_with(names, "and")
}

/// As [`list`], joining the last item with `conjunction` ("and", "or").
fn list_with(names: &[String], conjunction: &str) -> String {
    let (said, more) = if names.len() > NAMES_READ_OUT {
        (&names[..NAMES_READ_OUT], names.len() - NAMES_READ_OUT)
    } else {
        (names, 0)
    };
    let mut parts: Vec<String> = said.to_vec();
    if more > 0 {
        parts.push(format!("{more} more"));
    }
    match parts.len() {
        0 => String::new(),
        1 => parts.remove(0),
        n => format!(
            "{} {conjunction} {}",
            parts[..n - 1].join(", "),
            parts[n - 1]
        ),
    }
}

/// A wait as it is said: "30 seconds", "1 minute", "4 minutes" (rounded up).
fn wait_words(seconds: i64) -> String {
    match seconds {
        ..=1 => "1 second".to_owned(),
        2..=59 => format!("{seconds} seconds"),
        _ => {
            let minutes = (seconds + 59) / 60;
            count(
                usize::try_from(minutes).unwrap_or(usize::MAX),
                "minute",
                "minutes",
            )
        }
    }
}

/// "Stop web-1 in prod" → "stop web-1 in prod" (a summary inside a sentence).
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn state_word(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Pending => "starting",
        InstanceState::Running => "running",
        InstanceState::Stopping => "stopping",
        InstanceState::Stopped => "stopped",
        InstanceState::ShuttingDown => "shutting down",
        InstanceState::Terminated => "terminated",
        InstanceState::Unknown => "in a state I don't know",
    }
}

fn instances_text(place: &str, counts: &InstanceCounts) -> String {
    let total = counts.running.len() + counts.stopped.len() + counts.changing;
    if total == 0 {
        return format!("{place}, you have no instances.");
    }
    let mut sentences = Vec::new();
    if counts.running.is_empty() {
        sentences.push(format!("{place}, nothing is running."));
    } else {
        let verb = if counts.running.len() == 1 {
            "is"
        } else {
            "are"
        };
        sentences.push(format!(
            "{place}, {} {verb} running: {}.",
            count(counts.running.len(), "instance", "instances"),
            list(&counts.running)
        ));
    }
    if !counts.stopped.is_empty() {
        let verb = if counts.stopped.len() == 1 {
            "is"
        } else {
            "are"
        };
        sentences.push(format!(
            "{} {verb} stopped: {}.",
            counts.stopped.len(),
            list(&counts.stopped)
        ));
    }
    if counts.changing > 0 {
        let verb = if counts.changing == 1 { "is" } else { "are" };
        sentences.push(format!("{} {verb} starting or stopping.", counts.changing));
    }
    sentences.join(" ")
}

/// English (United Kingdom): the same sentences, with "OK" as British writers spell it.
/// Money stays in the account's currency (AWS bills in US dollars).
pub fn en_gb(line: &Line) -> String {
    en_us(line).replace("Okay", "OK")
}

/// English (United States).
pub fn en_us(line: &Line) -> String {
    let text = match line {
        Line::Welcome => "Cloud gate is listening. What would you like to do?",
        Line::WelcomeReprompt => "You can say help to hear what I can do.",
        Line::Help => {
            "I run operations on your AWS account by voice. Ask what's running, what you've \
             spent this month, which alarms are firing, what you can clean up, or for a \
             security check. Anything that changes your account, like \"stop the web server\" \
             or \"set my monthly budget to 500 dollars\", waits for the code shown in your \
             voxgate app; say cancel to drop it. What would you like to do?"
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
        Line::NotEnrolled => {
            "I don't know you yet, so I can't reach any AWS account for you. Ask your voxgate \
             operator to enrol you; the card in your Alexa app shows what they need."
        }
        Line::LinkAccount => {
            "Please link your voxgate account first. I've sent a card to your Alexa app to do \
             that."
        }
        Line::NoLinkedAccount => {
            "Your team hasn't linked an AWS account to voxgate yet, so there's nothing I can look \
             at. Ask your voxgate operator to link one."
        }
        Line::Reply(reply) => return reply_text(reply),
        Line::AwsTrustRejected => {
            "Your AWS account turned voxgate away: the role's trust policy or external ID doesn't \
             match what voxgate has. Nothing was changed. Ask your operator to check the account \
             link."
        }
        Line::AwsUnreachable => {
            "I couldn't reach AWS just now. Nothing was changed. Please try again."
        }
        Line::KeyServiceUnavailable => {
            "The service that protects your voxgate key didn't work just now, so I didn't do \
             anything. Nothing was changed. Please try again; if it keeps happening, tell your \
             voxgate operator."
        }
        Line::AwsAccessDenied => {
            "Your AWS account didn't allow that: the voxgate role lacks the permission. Nothing \
             was changed."
        }
        Line::AwsFailed => "AWS reported an error, so I stopped there. Nothing was changed.",
        Line::AccountDetailsUnavailable => {
            "I couldn't open the stored details of your AWS account. Nothing was changed. Your \
             operator will find the reason in voxgate's log."
        }
        Line::Held { summary } => {
            return format!(
                "I'll {}, once you say the code from your voxgate app.",
                lower_first(summary)
            );
        }
        Line::HeldReprompt => "Say the code shown in your voxgate app, or say cancel.",
        Line::AskCode => "What's the code shown in your voxgate app?",
        Line::NothingWaiting => "Nothing is waiting for your approval. What would you like to do?",
        Line::CodeNotHeard => {
            "I didn't catch the whole code. Please say all six digits shown in your voxgate app."
        }
        Line::StillWaiting { summary } => {
            return format!(
                "Okay. This is still waiting for its code: {summary}. Say cancel to drop it. \
                 Goodbye."
            );
        }
        Line::Done(Report::Instance(op)) => {
            let doing = match op.action {
                Action::Start => "Starting",
                Action::Stop => "Stopping",
                Action::Reboot => "Rebooting",
            };
            return format!("{doing} {} now.", op.instance_name);
        }
        Line::Done(Report::Cleanup(result)) => return cleaned(result),
        Line::Done(Report::Alarm(op)) => {
            return format!(
                "Done. The alarm fires when {}'s CPU is over {} percent.",
                op.instance_name, op.percent
            );
        }
        Line::Done(Report::HealthCheck(sent)) => {
            return format!(
                "Sent the health check to {}; SSM has it as {}. Ask \"how did the health check \
                 go\" in a minute.",
                sent.op.instance_name,
                command_status(&sent.status)
            );
        }
        Line::Done(Report::Invalidation(sent)) => {
            return format!(
                "Clearing the cache of {} now. CloudFront usually takes a few minutes.",
                sent.op.site
            );
        }
        Line::Done(Report::Budget(op)) => {
            return format!(
                "Done. The monthly budget of {} is now {}.",
                op.account_name,
                dollars(op.amount)
            );
        }
        Line::ChangedSinceApproval => {
            "Something changed since you approved it, so I didn't run it. Nothing was \
             changed. Ask again to see what can be done now."
        }
        Line::WrongCode {
            tries_left,
            wait_seconds,
            next_lockout_seconds,
        } => {
            let tries = if *tries_left == 1 {
                "1 try".to_owned()
            } else {
                format!("{tries_left} tries")
            };
            return match (wait_seconds, next_lockout_seconds) {
                (Some(wait), _) => format!(
                    "That code didn't match, and that's too many wrong codes in a row: wait {} \
                     before the next one. You have {tries} left.",
                    wait_words(*wait)
                ),
                (None, Some(next)) => format!(
                    "That code didn't match; you have {tries} left. One more wrong code and \
                     you'll have to wait {}.",
                    wait_words(*next)
                ),
                (None, None) => format!("That code didn't match; you have {tries} left."),
            };
        }
        Line::TooManyWrongCodes => {
            "That code didn't match either, and that was the last try, so I cancelled the \
             request. Nothing was changed."
        }
        Line::LockedOut { seconds } => {
            return format!(
                "Too many wrong codes. Please wait {}, then say the code again. Nothing was \
                 changed.",
                wait_words(*seconds)
            );
        }
        Line::CodeReused => "That code was already used, so I didn't run anything again.",
        Line::CheckBusy => {
            "I'm still checking another code for this. Please say it again in a moment."
        }
        Line::ChallengeExpired => {
            "That approval expired, so nothing was changed. Ask again if you still want it."
        }
        Line::ChallengeDenied => "That request was denied in your voxgate app, so nothing ran.",
        Line::ChallengeCancelled => "That request was cancelled, so nothing ran.",
        Line::ChallengeReplaced => {
            "That request was replaced by a newer one, so nothing ran. Say the code for the new \
             one instead."
        }
        Line::ChallengeEndedByWrongCodes => {
            "That request was cancelled after too many wrong codes, so nothing ran. Ask again if \
             you still want it."
        }
        Line::ChallengeUnreadable => {
            "I couldn't read that request back, so I won't run it. Please ask again."
        }
        Line::AlreadyApproved => {
            "That request was already approved, so I didn't run anything again."
        }
        Line::OutcomeUnknown(Operation::Instance(op)) => {
            let done = match op.action {
                Action::Start => "started",
                Action::Stop => "stopped",
                Action::Reboot => "rebooted",
            };
            let name = &op.instance_name;
            return format!(
                "I asked AWS, but got no clear answer, so I can't tell whether {name} was \
                 {done}. Please check {name} before asking again; I won't retry it."
            );
        }
        Line::OutcomeUnknown(Operation::Cleanup(_)) => {
            "I asked AWS, but got no clear answer, so I can't tell whether the unused \
             resources were deleted. Please check them in your account before asking again; I \
             won't retry it."
        }
        Line::OutcomeUnknown(op) => {
            return format!(
                "I asked AWS, but got no clear answer, so I can't tell whether this happened: \
                 {}. Please check before asking again; I won't retry it.",
                lower_first(&op.summary())
            );
        }
        Line::TooLateToCancel { summary } => {
            return format!("Too late to cancel: {summary} was already approved and is running.");
        }
        Line::NotRecorded => {
            "I couldn't record that in the audit log, so I didn't do it. Nothing was changed. \
             Please tell your voxgate operator."
        }
        Line::Cancelled { summary } => {
            return format!("Okay, I cancelled it: {summary}. Nothing was changed.");
        }
        Line::NoLongerManaged(Operation::Instance(op)) => {
            return format!(
                "{} no longer carries voxgate's tag, so I didn't run it. Nothing was changed.",
                op.instance_name
            );
        }
        Line::NoLongerManaged(Operation::Cleanup(_)) => {
            "One of those resources no longer carries voxgate's tag, so I didn't delete \
             anything. Nothing was changed."
        }
        Line::NoLongerManaged(_) => {
            "That no longer carries voxgate's tag, so I didn't run it. Nothing was changed."
        }
        Line::ReplaceAsk { old, new } => {
            return format!(
                "You already have an approval waiting: {old}. Should I replace it with: {new}?"
            );
        }
        Line::KeptOld { old } => {
            return format!(
                "Okay, I kept the approval that's waiting: {old}. Say its code when you're ready."
            );
        }
        Line::ApprovalCardTitle => "Approval needed",
        Line::ApprovalCardHint => "Open the voxgate app to see the code for this operation.",
    };
    text.to_owned()
}

/// "In prod, Ireland" (the account only when the tenant has several; no region for
/// account-wide answers, so possibly nothing at all).
fn in_scope(scope: &Scope) -> String {
    let region = crate::cloud::arn::Region::words(&scope.region);
    match (&scope.account, region.is_empty()) {
        (Some(account), false) => format!("In {account}, {region}"),
        (Some(account), true) => format!("In {account}"),
        (None, false) => format!("In {region}"),
        (None, true) => String::new(),
    }
}

/// "{place}, {rest}", or `rest` with a capital when there is no place to say.
fn lead(place: &str, rest: &str) -> String {
    if place.is_empty() {
        let mut chars = rest.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    } else {
        format!("{place}, {rest}")
    }
}

fn security_text(place: &str, findings: &crate::ops::security::Findings) -> String {
    use crate::ops::security::{Exposure, PasswordPolicy};
    if findings.clean() {
        return lead(
            place,
            &format!(
                "I found nothing to worry about: no security group is open to the world, the \
                 password policy is strong, and no access key is older than {} days.",
                findings.key_age_days
            ),
        );
    }
    let mut parts = Vec::new();
    let groups = &findings.open_groups;
    if !groups.is_empty() {
        let on = |exposure| groups.iter().filter(|g| g.exposure == exposure).count();
        let detail: Vec<String> = [
            (on(Exposure::Ssh), "on SSH"),
            (on(Exposure::Rdp), "on RDP"),
            (on(Exposure::AllPorts), "on all ports"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.push(format!(
            "{} open to the world ({})",
            count(groups.len(), "security group is", "security groups are"),
            detail.join(", ")
        ));
    }
    match &findings.password_policy {
        PasswordPolicy::Missing => parts.push("the account has no password policy".to_owned()),
        PasswordPolicy::Weak(missing) => {
            parts.push(format!("the password policy is weak: {}", list(missing)))
        }
        PasswordPolicy::Strong => {}
    }
    if !findings.old_keys.is_empty() {
        parts.push(format!(
            "{} older than {} days",
            count(findings.old_keys.len(), "access key is", "access keys are"),
            findings.key_age_days
        ));
    }
    format!(
        "{} The card lists them.",
        lead(place, &format!("{}.", list(&parts)))
    )
}

/// An SSM status as it is said: "ConnectionLost" → "connection lost", "InProgress" → "in
/// progress".
fn command_status(status: &str) -> String {
    let mut out = String::new();
    for (i, c) in status.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// "500 dollars", "1 dollar", "1,500 dollars" (exact whole dollars).
fn dollars(amount: u64) -> String {
    format!(
        "{} dollar{}",
        crate::ops::words::thousands(amount),
        if amount == 1 { "" } else { "s" }
    )
}

fn budgets_text(place: &str, budgets: &[crate::ops::budgets::BudgetInfo]) -> String {
    let one = |b: &crate::ops::budgets::BudgetInfo| {
        let limit = crate::ops::words::money(b.limit_hundredths, &b.unit);
        match (b.spent_hundredths, b.percent_used()) {
            (Some(spent), Some(percent)) => format!(
                "{limit} a month, and you've used {} of it, {percent} percent",
                crate::ops::words::money(spent, &b.unit)
            ),
            _ => format!("{limit} a month"),
        }
    };
    match budgets {
        [] => lead(
            place,
            "you have no monthly budget. You can say \"set my monthly budget to 500 dollars\".",
        ),
        [b] => lead(place, &format!("your monthly budget is {}.", one(b))),
        several => lead(
            place,
            &format!(
                "you have {} monthly budgets: {}.",
                several.len(),
                several
                    .iter()
                    .map(|b| format!("{}, {}", b.name, one(b)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

/// Why one account could not answer, as a clause after its scope.
fn failure_text(failure: Failure) -> &'static str {
    match failure {
        Failure::TrustRejected => "your AWS account turned voxgate away",
        Failure::Unreachable => "I couldn't reach AWS",
        Failure::AccessDenied => "the voxgate role lacks a permission",
        Failure::DetailsUnavailable => "I couldn't open the stored account details",
        Failure::Failed => "AWS reported an error",
    }
}

/// Each scope's sentence, or why that account could not answer.
fn per_scope<T>(scopes: &[Scoped<T>], text: impl Fn(&str, &T) -> String) -> String {
    scopes
        .iter()
        .map(|scoped| {
            let place = in_scope(&scoped.scope);
            match &scoped.found {
                Ok(found) => text(&place, found),
                Err(failure) => format!("{}.", lead(&place, failure_text(*failure))),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a family answered.
fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::NothingToSay => "There's nothing to tell.".to_owned(),
        Reply::UnknownRegion { spoken } => format!(
            "I don't know the region {spoken}. Which region? Try a name like Ireland, or a \
             code like eu west one."
        ),
        Reply::Instances(scopes) => per_scope(scopes, instances_text),
        Reply::InstanceState { name, state } => format!("{name} is {}.", state_word(*state)),
        Reply::WhichInstance => "Which instance? Say its name.".to_owned(),
        Reply::InstanceNotFound { spoken, known } if known.is_empty() => {
            format!("I couldn't find an instance called {spoken}. You don't have any instances.")
        }
        Reply::InstanceNotFound { spoken, known } => format!(
            "I couldn't find an instance called {spoken}. You have {}.",
            list(known)
        ),
        Reply::InstanceNotFoundEverywhere { spoken } => format!(
            "I couldn't find an instance called {spoken}, but I couldn't reach every account, \
             so it may be in one of those. Nothing was changed."
        ),
        Reply::InstanceAmbiguous { spoken, candidates } => format!(
            "More than one instance matches {spoken}: {}. Which one do you mean?",
            list_with(candidates, "or")
        ),
        Reply::StillAmbiguous { candidates } => format!(
            "I still can't tell which one you mean, so I'll stop here. Nothing was changed. \
             Ask again with the account's name, like {}.",
            candidates
                .first()
                .map_or_else(|| "web server in prod".to_owned(), Clone::clone)
        ),
        Reply::AlreadyInState { name, state } => format!(
            "{name} is already {}, so there's nothing to do. Nothing was changed.",
            state_word(*state)
        ),
        Reply::NotManaged { name, tag } => format!(
            "{name} isn't managed by voxgate: it doesn't carry the tag {tag}, so I won't \
             change it. Nothing was changed."
        ),
        Reply::CleanupReport(scopes) => cleanup_report(scopes),
        Reply::NothingToClean { unmanaged: 0 } => {
            "There's nothing unused to clean up. Nothing was changed.".to_owned()
        }
        Reply::NothingToClean { unmanaged } => format!(
            "Nothing that voxgate manages is unused. {} without voxgate's tag, so I'll leave \
             {}. Nothing was changed.",
            count(*unmanaged, "unused resource is", "unused resources are"),
            if *unmanaged == 1 { "it" } else { "them" }
        ),
        Reply::Vpn(scopes) => per_scope(scopes, |place, found| vpn_text(place, found)),
        Reply::WhichAccount { accounts } => {
            format!("Which account: {}?", list_with(accounts, "or"))
        }
        Reply::AskAmount => "What amount, in dollars?".to_owned(),
        Reply::BadAmount { spoken } => format!(
            "{spoken} isn't an amount I can use: say a whole number of dollars from 1 to \
             1,000,000. What amount, in dollars?"
        ),
        Reply::AlarmsFiring(scopes) => per_scope(scopes, |place, names| match names.as_slice() {
            [] => lead(place, "no alarm is firing."),
            [one] => lead(place, &format!("1 alarm is firing: {one}.")),
            many => lead(
                place,
                &format!("{} alarms are firing: {}.", many.len(), list(many)),
            ),
        }),
        Reply::AskPercent => "Over what percentage of CPU, from 1 to 100?".to_owned(),
        Reply::BadPercent { spoken } => format!(
            "{spoken} isn't a percentage I can use: say a whole number from 1 to 100. Over \
             what percentage?"
        ),
        Reply::AlarmAlready { name, percent } => format!(
            "There's already an alarm for {name}'s CPU over {percent} percent, so there's \
             nothing to do. Nothing was changed."
        ),
        Reply::SsmAgent { name, state } => match state {
            crate::ops::ssm::AgentState::Online(_) => {
                format!("Yes, the SSM agent on {name} is online.")
            }
            crate::ops::ssm::AgentState::Lost(status) => format!(
                "The SSM agent on {name} isn't answering: SSM says {}.",
                command_status(status)
            ),
            crate::ops::ssm::AgentState::NotRegistered => format!(
                "{name} isn't registered with SSM, so its agent isn't running, or it can't reach \
                 SSM."
            ),
        },
        Reply::HealthCheckStatus { name, status: None } => format!(
            "No health check has been run on {name} yet. Say \"run the health check on {name}\"."
        ),
        Reply::HealthCheckStatus {
            name,
            status: Some(status),
        } => format!(
            "The last health check on {name} {}.",
            match status.as_str() {
                "Success" => "succeeded".to_owned(),
                "Failed" => "failed".to_owned(),
                "Pending" | "InProgress" => "is still running".to_owned(),
                other => format!("ended as {}", command_status(other)),
            }
        ),
        Reply::WhichSite { sites } => {
            format!("Which site: {}?", list_with(sites, "or"))
        }
        Reply::SiteNotFound { spoken, known } => format!(
            "I couldn't find a site called {spoken}. You have {}. Nothing was changed.",
            list(known)
        ),
        Reply::NoSites => {
            "You don't have any CloudFront distributions, so there's no cache to clear. Nothing \
             was changed."
                .to_owned()
        }
        Reply::MonthCost(scopes) => per_scope(scopes, |place, spent| {
            let amount = crate::ops::words::money(spent.hundredths, &spent.unit);
            lead(place, &format!("you've spent {amount} so far this month."))
        }),
        Reply::Security(scopes) => per_scope(scopes, security_text),
        Reply::NoHealthCheckDocument { account, region } => format!(
            "There's no voxgate health check in {account}, {}: the voxgate-HealthCheck \
             document from voxgate's role template isn't there. Nothing was changed.",
            crate::cloud::arn::Region::words(region)
        ),
        Reply::BudgetCurrency { account, unit } => format!(
            "The monthly budget of {account} is in {unit}, and I set budgets in dollars, so I \
             won't change it. Nothing was changed."
        ),
        Reply::Budgets(scopes) => per_scope(scopes, |place, found| budgets_text(place, found)),
        Reply::SeveralBudgets { account, count } => format!(
            "{account} has {count} monthly budgets, so I won't guess which one to change. \
             Nothing was changed. Change it in the AWS console, or name one voxgate-monthly."
        ),
        Reply::BudgetAlready { account, amount } => format!(
            "The monthly budget of {account} is already {}, so there's nothing to do. Nothing \
             was changed.",
            dollars(*amount)
        ),
    }
}

fn cleanup_report(scopes: &[Scoped<Vec<Unused>>]) -> String {
    let found: Vec<&Unused> = scopes
        .iter()
        .filter_map(|s| s.found.as_ref().ok())
        .flatten()
        .collect();
    let mut said = per_scope(scopes, |place, unused| {
        if unused.is_empty() {
            return format!("{place}, nothing is unused.");
        }
        let cents: u64 = unused.iter().map(|u| u.monthly_cents).sum();
        format!(
            "{place}, you have {}, costing {}.",
            cleanup::counted(unused),
            monthly(cents)
        )
    });
    let managed = found.iter().filter(|u| u.managed).count();
    if !found.is_empty() {
        said.push(' ');
        said.push_str(&match managed {
            0 => "None of them carries voxgate's tag, so I can't clean them up.".to_owned(),
            n if n == found.len() => "Say \"clean up unused resources\" to delete them.".to_owned(),
            n => format!(
                "{} voxgate's tag; say \"clean up unused resources\" to delete {}.",
                count(n, "of them carries", "of them carry"),
                if n == 1 { "it" } else { "those" }
            ),
        });
    }
    said
}

fn cleaned(result: &CleanupResult) -> String {
    let mut sentences = vec![if !result.deleted.is_empty() {
        format!(
            "Deleted {}, saving {}.",
            cleanup::counted(&result.deleted),
            monthly(result.monthly_cents())
        )
    } else if result.failed.is_empty() {
        "I can't confirm that any of them was deleted.".to_owned()
    } else {
        "I couldn't delete any of them.".to_owned()
    }];
    for (resource, code) in &result.failed {
        sentences.push(format!("AWS refused to delete {} ({code}).", resource.id));
    }
    for resource in &result.unknown {
        sentences.push(format!(
            "AWS didn't answer about {}, so please check it; I won't retry.",
            resource.id
        ));
    }
    if !result.skipped.is_empty() {
        sentences.push(format!(
            "I didn't get to {}; ask again to clean up the rest.",
            count(result.skipped.len(), "resource", "resources")
        ));
    }
    sentences.join(" ")
}

fn vpn_text(place: &str, connections: &[VpnConnection]) -> String {
    if connections.is_empty() {
        return format!("{place}, there's no VPN connection.");
    }
    let parts: Vec<String> = connections
        .iter()
        .map(|c| {
            if c.is_up() {
                format!("{} is up", c.label())
            } else if c.state != "available" {
                format!("{} is {}", c.label(), c.state)
            } else if c.tunnels == 0 {
                format!("{} reports no tunnels", c.label())
            } else {
                format!(
                    "{} has {} of {} tunnels up",
                    c.label(),
                    c.tunnels_up,
                    c.tunnels
                )
            }
        })
        .collect();
    format!("{place}, {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance_op() -> Operation {
        Operation::Instance(crate::ops::instances::InstanceOperation {
            action: Action::Stop,
            account_id: "a_1".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            instance_id: "i-1".into(),
            instance_name: "web-1".into(),
        })
    }

    fn unused(kind: cleanup::ResourceKind) -> cleanup::Unused {
        cleanup::Unused {
            kind,
            id: "vol-1".into(),
            label: None,
            size_gib: 8,
            monthly_cents: 4210,
            managed: true,
        }
    }

    fn cleanup_op() -> Operation {
        Operation::Cleanup(cleanup::CleanupOperation {
            account_id: "a_1".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            resources: vec![unused(cleanup::ResourceKind::Volume)],
            snapshot_age_days: 90,
        })
    }

    pub(super) fn every_line() -> Vec<Line> {
        let scope = Scope {
            account: Some("prod".into()),
            region: "eu-west-1".into(),
        };
        vec![
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
            Line::NotEnrolled,
            Line::LinkAccount,
            Line::NoLinkedAccount,
            Line::Reply(Reply::Instances(vec![
                Scoped {
                    scope: scope.clone(),
                    found: Ok(InstanceCounts {
                        running: vec!["web-1".into()],
                        stopped: vec![],
                        changing: 0,
                    }),
                },
                Scoped {
                    scope: scope.clone(),
                    found: Err(Failure::Unreachable),
                },
            ])),
            Line::Reply(Reply::InstanceState {
                name: "web-1".into(),
                state: InstanceState::Running,
            }),
            Line::Reply(Reply::WhichInstance),
            Line::Reply(Reply::InstanceNotFound {
                spoken: "x".into(),
                known: vec!["a".into()],
            }),
            Line::Reply(Reply::InstanceNotFoundEverywhere { spoken: "x".into() }),
            Line::Reply(Reply::InstanceAmbiguous {
                spoken: "web".into(),
                candidates: vec!["web-1".into(), "web-2".into()],
            }),
            Line::Reply(Reply::StillAmbiguous {
                candidates: vec!["web-1 in prod".into(), "web-1 in staging".into()],
            }),
            Line::Reply(Reply::UnknownRegion {
                spoken: "mars".into(),
            }),
            Line::AwsTrustRejected,
            Line::AwsUnreachable,
            Line::KeyServiceUnavailable,
            Line::AwsAccessDenied,
            Line::AwsFailed,
            Line::AccountDetailsUnavailable,
            Line::ChallengeCancelled,
            Line::ChallengeReplaced,
            Line::ChallengeEndedByWrongCodes,
            Line::ChallengeUnreadable,
            Line::AlreadyApproved,
            Line::OutcomeUnknown(instance_op()),
            Line::OutcomeUnknown(cleanup_op()),
            Line::NoLongerManaged(instance_op()),
            Line::NoLongerManaged(cleanup_op()),
            Line::Done(Report::Instance(match instance_op() {
                Operation::Instance(op) => op,
                _ => unreachable!(),
            })),
            Line::Done(Report::Cleanup(CleanupResult {
                deleted: vec![unused(cleanup::ResourceKind::Volume)],
                failed: vec![(
                    unused(cleanup::ResourceKind::Address),
                    "InvalidAddress".into(),
                )],
                unknown: vec![unused(cleanup::ResourceKind::Snapshot)],
                skipped: vec![unused(cleanup::ResourceKind::Snapshot)],
            })),
            Line::Reply(Reply::AlreadyInState {
                name: "web-1".into(),
                state: InstanceState::Stopped,
            }),
            Line::ChangedSinceApproval,
            Line::Reply(Reply::CleanupReport(vec![Scoped {
                scope: scope.clone(),
                found: Ok(vec![
                    unused(cleanup::ResourceKind::Volume),
                    unused(cleanup::ResourceKind::Address),
                ]),
            }])),
            Line::Reply(Reply::NothingToClean { unmanaged: 0 }),
            Line::Reply(Reply::NothingToClean { unmanaged: 2 }),
            Line::Reply(Reply::Vpn(vec![Scoped {
                scope: scope.clone(),
                found: Ok(vec![VpnConnection {
                    id: "vpn-1".into(),
                    name: Some("office".into()),
                    state: "available".into(),
                    tunnels_up: 1,
                    tunnels: 2,
                }]),
            }])),
            Line::Reply(Reply::WhichAccount {
                accounts: vec!["prod".into(), "staging".into()],
            }),
            Line::Reply(Reply::AskAmount),
            Line::CodeNotHeard,
            Line::NothingWaiting,
            Line::WrongCode {
                tries_left: 2,
                wait_seconds: None,
                next_lockout_seconds: Some(30),
            },
            Line::WrongCode {
                tries_left: 1,
                wait_seconds: Some(240),
                next_lockout_seconds: Some(480),
            },
            Line::LockedOut { seconds: 3600 },
            Line::StillWaiting {
                summary: "Stop web-1 in prod, Ireland".into(),
            },
            Line::Reply(Reply::AlarmsFiring(vec![Scoped {
                scope: scope.clone(),
                found: Ok(vec!["web-cpu".into(), "db-disk".into()]),
            }])),
            Line::Reply(Reply::AskPercent),
            Line::Reply(Reply::WhichSite {
                sites: vec!["shop.example.com".into(), "blog.example.com".into()],
            }),
            Line::Reply(Reply::SiteNotFound {
                spoken: "docs".into(),
                known: vec!["shop.example.com".into()],
            }),
            Line::Reply(Reply::NoSites),
            Line::Reply(Reply::BudgetCurrency {
                account: "prod".into(),
                unit: "EUR".into(),
            }),
            Line::Reply(Reply::NoHealthCheckDocument {
                account: "prod".into(),
                region: "eu-west-1".into(),
            }),
            Line::Reply(Reply::MonthCost(vec![Scoped {
                scope: Scope {
                    account: Some("prod".into()),
                    region: String::new(),
                },
                found: Ok(crate::ops::cost::MonthToDate {
                    hundredths: 123_456,
                    unit: "USD".into(),
                    estimated: true,
                }),
            }])),
            Line::Reply(Reply::Security(vec![Scoped {
                scope: scope.clone(),
                found: Ok(crate::ops::security::Findings {
                    open_groups: vec![crate::ops::security::OpenGroup {
                        id: "sg-1".into(),
                        name: "web".into(),
                        exposure: crate::ops::security::Exposure::Ssh,
                    }],
                    password_policy: crate::ops::security::PasswordPolicy::Missing,
                    old_keys: vec![],
                    key_age_days: 90,
                }),
            }])),
            Line::Reply(Reply::SsmAgent {
                name: "web-1".into(),
                state: crate::ops::ssm::AgentState::Lost("ConnectionLost".into()),
            }),
            Line::Reply(Reply::HealthCheckStatus {
                name: "web-1".into(),
                status: Some("InProgress".into()),
            }),
            Line::Reply(Reply::BadPercent {
                spoken: "120".into(),
            }),
            Line::Reply(Reply::AlarmAlready {
                name: "web-1".into(),
                percent: 80,
            }),
            Line::Reply(Reply::BadAmount {
                spoken: "-5".into(),
            }),
            Line::Reply(Reply::Budgets(vec![Scoped {
                scope: Scope {
                    account: None,
                    region: String::new(),
                },
                found: Ok(vec![crate::ops::budgets::BudgetInfo {
                    name: "monthly".into(),
                    limit: "500.0".into(),
                    limit_hundredths: 50_000,
                    spent_hundredths: Some(4_210),
                    unit: "USD".into(),
                }]),
            }])),
            Line::Reply(Reply::SeveralBudgets {
                account: "prod".into(),
                count: 2,
            }),
            Line::Reply(Reply::BudgetAlready {
                account: "prod".into(),
                amount: 500,
            }),
            Line::TooLateToCancel {
                summary: "Stop instance web-1".into(),
            },
            Line::NotRecorded,
        ]
    }

    #[test]
    fn every_line_is_short_and_free_of_markup() {
        for line in every_line() {
            let text = line.text(Locale::EnUs);
            assert!(!text.is_empty(), "{line:?}");
            assert!(text.len() < 400, "{line:?} is {} bytes", text.len());
            assert!(!text.contains('<') && !text.contains('&'), "{line:?}");
        }
    }

    #[test]
    fn every_aws_failure_says_nothing_was_changed() {
        for line in [
            Line::AwsTrustRejected,
            Line::AwsUnreachable,
            Line::KeyServiceUnavailable,
            Line::AwsAccessDenied,
            Line::AwsFailed,
            Line::AccountDetailsUnavailable,
            Line::InternalError,
        ] {
            assert!(
                line.text(Locale::EnUs).contains("Nothing was changed"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn help_says_that_changes_need_the_code_from_the_app() {
        let help = Line::Help.text(Locale::EnUs);
        assert!(help.contains("code"), "{help}");
        assert!(help.contains("app"), "{help}");
    }

    #[test]
    fn instance_summaries_are_short_counts_and_names() {
        let counts = |running: &[&str], stopped: &[&str], changing| Scoped {
            scope: Scope {
                account: None,
                region: "eu-west-1".into(),
            },
            found: Ok(InstanceCounts {
                running: running.iter().map(|s| s.to_string()).collect(),
                stopped: stopped.iter().map(|s| s.to_string()).collect(),
                changing,
            }),
        };
        let say = |c| Line::Reply(Reply::Instances(vec![c])).text(Locale::EnUs);
        assert_eq!(
            say(counts(&[], &[], 0)),
            "In Ireland, you have no instances."
        );
        assert_eq!(
            say(counts(&["web-1", "web-2"], &["db"], 1)),
            "In Ireland, 2 instances are running: web-1 and web-2. 1 is stopped: db. 1 is \
             starting or stopping."
        );
        assert_eq!(
            say(counts(&["a", "b", "c", "d", "e", "f", "g"], &[], 0)),
            "In Ireland, 7 instances are running: a, b, c, d, e and 2 more."
        );
        assert_eq!(
            say(counts(&[], &["db"], 0)),
            "In Ireland, nothing is running. 1 is stopped: db."
        );
    }

    #[test]
    fn names_with_and_in_them_stay_whole() {
        let line = Line::Reply(Reply::InstanceAmbiguous {
            spoken: "web".into(),
            candidates: vec!["web in sales and ops".into(), "web in prod".into()],
        });
        assert_eq!(
            line.text(Locale::EnUs),
            "More than one instance matches web: web in sales and ops or web in prod. Which one do you mean?"
        );
    }

    #[test]
    fn ambiguity_offers_a_choice() {
        let line = Line::Reply(Reply::InstanceAmbiguous {
            spoken: "web".into(),
            candidates: vec!["web-1".into(), "web-2".into(), "web-3".into()],
        });
        assert_eq!(
            line.text(Locale::EnUs),
            "More than one instance matches web: web-1, web-2 or web-3. Which one do you mean?"
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::tests::every_line;
    use super::*;

    #[test]
    fn a_budget_is_said_with_how_much_of_it_is_used() {
        let line = Line::Reply(Reply::Budgets(vec![Scoped {
            scope: Scope {
                account: None,
                region: String::new(),
            },
            found: Ok(vec![crate::ops::budgets::BudgetInfo {
                name: "monthly".into(),
                limit: "500.0".into(),
                limit_hundredths: 50_000,
                spent_hundredths: Some(4_210),
                unit: "USD".into(),
            }]),
        }]));
        assert_eq!(
            line.text(Locale::EnUs),
            "Your monthly budget is about 500 dollars a month, and you've used about 42 dollars \
             of it, 8 percent."
        );
    }

    #[test]
    fn british_english_is_spoken_to_en_gb_requests() {
        assert_eq!(Locale::from_tag(Some("en-GB")), Locale::EnGb);
        assert_eq!(Locale::from_tag(Some("en-AU")), Locale::EnUs);
        assert_eq!(
            Line::Goodbye.text(Locale::EnGb),
            "OK, nothing more to do. Goodbye."
        );
        for line in every_line() {
            assert!(!line.text(Locale::EnGb).is_empty(), "{line:?}");
        }
    }

    #[test]
    fn long_waits_are_said_in_minutes() {
        assert_eq!(wait_words(30), "30 seconds");
        assert_eq!(wait_words(60), "1 minute");
        assert_eq!(wait_words(61), "2 minutes");
        assert_eq!(wait_words(3600), "60 minutes");
    }

    #[test]
    fn a_held_operation_is_read_back_as_a_spoken_request() {
        let line = Line::Held {
            summary: "Stop web server in prod, Ireland".into(),
        };
        assert_eq!(
            line.text(Locale::EnUs),
            "I'll stop web server in prod, Ireland, once you say the code from your voxgate app."
        );
    }

    #[test]
    fn an_account_that_cannot_answer_says_so_and_the_others_still_answer() {
        let scoped = |account: &str, found| Scoped {
            scope: Scope {
                account: Some(account.into()),
                region: "us-east-2".into(),
            },
            found,
        };
        let line = Line::Reply(Reply::Vpn(vec![
            scoped("prod", Ok(Vec::new())),
            scoped("staging", Err(Failure::Unreachable)),
        ]));
        assert_eq!(
            line.text(Locale::EnUs),
            "In prod, Ohio, there's no VPN connection. In staging, Ohio, I couldn't reach AWS."
        );
    }
}
