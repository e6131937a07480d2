//! Confirming a spoken code: the atomic approval, wrong codes and the lockout.

use super::*;

impl Gate {
    /// Checks a spoken code against the user's challenge (`challenge_id` from the session,
    /// or else their pending one).
    pub async fn confirm(
        &self,
        user: &User,
        challenge_id: Option<&str>,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let found = match challenge_id {
            Some(id) => self.challenge_of(user, id).await,
            None => Ok(None),
        };
        let challenge = match found {
            Ok(Some(challenge)) => challenge,
            Ok(None) => match self.pending(&user.id).await? {
                Some(challenge) => challenge,
                None => return self.nothing_pending(user, spoken, actor).await,
            },
            Err(GateError::Unreadable(_)) => return Ok(Verdict::Unreadable),
            Err(other) => return Err(other),
        };
        if challenge.state != State::Pending {
            let matched = self.matches(user, &challenge, spoken).await?.is_some();
            return Ok(self.after_end(challenge, matched, actor).await);
        }
        // Checks of one challenge take turns (also across replicas), so each sees the wrong
        // codes and the lockout the ones before it left: guessing in parallel gains nothing.
        let owner = crate::store::new_id("turn");
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now().unix_timestamp();
            if self
                .store
                .take_check_turn(&challenge.id, &owner, now + 10, now)
                .await?
            {
                break;
            }
            match self.challenge_of(user, &challenge.id).await {
                Ok(Some(c)) if c.state == State::Pending => {}
                // It was approved, denied or closed meanwhile: say so.
                Ok(Some(c)) => {
                    let matched = self.matches(user, &c, spoken).await?.is_some();
                    return Ok(self.after_end(c, matched, actor).await);
                }
                Ok(None) => return Ok(Verdict::NothingPending),
                Err(GateError::Unreadable(_)) => return Ok(Verdict::Unreadable),
                Err(other) => return Err(other),
            }
            if started.elapsed() > std::time::Duration::from_secs(5) {
                return Ok(Verdict::Busy);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        // Whatever happens in the check, the turn is given back (only by its holder), but
        // for an approval: turns are taken only of a pending challenge, so an approved one
        // needs none given back (one write less on the way to running the operation).
        let verdict = async {
            match self.challenge_of(user, &challenge.id).await {
                Ok(Some(c)) => self.check(user, c, spoken, actor).await,
                Ok(None) => Ok(Verdict::NothingPending),
                Err(GateError::Unreadable(_)) => Ok(Verdict::Unreadable),
                Err(other) => Err(other),
            }
        }
        .await;
        if !matches!(verdict, Ok(Verdict::Approved(_)))
            && let Err(error) = self.store.release_check_turn(&challenge.id, &owner).await
        {
            tracing::warn!(%error, "could not give back a check turn; it lapses in 10 s");
        }
        verdict
    }

    /// The TOTP step `spoken` matches for `challenge`, if it is its code right now.
    pub(super) async fn matches(
        &self,
        user: &User,
        challenge: &Challenge,
        spoken: &str,
    ) -> Result<Option<u64>, GateError> {
        let Some(code) = SpokenCode::parse(spoken) else {
            return Ok(None);
        };
        let key = self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let totp = code::totp_for(&key, &challenge.id, &challenge.digest)?;
        Ok(totp.check(code.as_str(), unix(self.clock.now())))
    }

    /// Checks a spoken code against `challenge` as it stands (holding its turn if pending).
    pub(super) async fn check(
        &self,
        user: &User,
        challenge: Challenge,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        if let Some(until) = self.store.user_locked_until(&user.id).await?
            && until > now.unix_timestamp()
        {
            self.record_refusal(self.entry(
                &challenge,
                Outcome::LockedOut,
                "code refused unchecked: user locked out",
                actor,
            ))
            .await;
            return Ok(Verdict::LockedOut(Duration::seconds(
                until - now.unix_timestamp(),
            )));
        }
        let matched_step = self.matches(user, &challenge, spoken).await?;
        if challenge.state != State::Pending {
            return Ok(self
                .after_end(challenge, matched_step.is_some(), actor)
                .await);
        }
        if challenge.expires_at <= now {
            self.expire(&challenge).await?;
            let mut expired = challenge;
            expired.state = State::Expired;
            return Ok(self.after_end(expired, matched_step.is_some(), actor).await);
        }
        let Some(step) = matched_step else {
            let well_formed = SpokenCode::parse(spoken).is_some();
            return self.wrong_code(user, challenge, well_formed, actor).await;
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let mut tx = self.store.begin().await?;
        if !tx
            .approve_challenge(&challenge.id, step, now.unix_timestamp(), MAX_WRONG_CODES)
            .await?
        {
            tx.rollback().await?;
            // Something else ended it between our look and our move: say what.
            return Ok(match self.challenge_of(user, &challenge.id).await {
                Ok(Some(current)) => self.after_end(current, true, actor).await,
                Ok(None) => Verdict::NothingPending,
                Err(GateError::Unreadable(_)) => Verdict::Unreadable,
                Err(other) => return Err(other),
            });
        }
        tx.reset_user_failures(&user.id).await?;
        let mut approved = challenge;
        approved.state = State::Approved;
        // Nothing runs unless its approval is on record: both are written, or neither.
        self.audit
            .commit_with(tx, &self.entry(&approved, Outcome::Confirmed, "", actor))
            .await?;
        self.publish(
            approved.user_id.as_str(),
            &approved.id,
            &approved.summary,
            Outcome::Confirmed,
        )
        .await;
        Ok(Verdict::Approved(approved))
    }

    /// The verdict for a code spoken to a challenge that had already ended, recorded with
    /// the cause.
    pub(super) async fn after_end(
        &self,
        challenge: Challenge,
        matched: bool,
        actor: &Actor,
    ) -> Verdict {
        let detail = if matched {
            "the code was right"
        } else {
            "the code was not right"
        };
        let (outcome, verdict): (Outcome, fn(Challenge) -> Verdict) = match challenge.state {
            State::Pending => return Verdict::Busy,
            s if s.was_approved() && matched => (Outcome::Reuse, Verdict::AlreadyUsed),
            s if s.was_approved() => (Outcome::CodeAfterApproval, Verdict::AlreadyApproved),
            State::Denied => (Outcome::CodeAfterDeny, Verdict::Denied),
            State::Cancelled => (Outcome::CodeAfterCancel, Verdict::Cancelled),
            State::Replaced => (Outcome::CodeAfterReplace, Verdict::Replaced),
            State::Expired => (Outcome::CodeAfterExpiry, Verdict::Expired),
            State::TooManyWrongCodes => (Outcome::CodeAfterWrongCodes, Verdict::EndedByWrongCodes),
            _ => return Verdict::Unreadable,
        };
        self.record_refusal(self.entry(&challenge, outcome, detail, actor))
            .await;
        verdict(challenge)
    }

    /// Nothing waits for a code; if the code is one that recently approved an operation,
    /// it is a reuse, and is recorded as such.
    pub(super) async fn nothing_pending(
        &self,
        user: &User,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        if SpokenCode::parse(spoken).is_none() {
            return Ok(Verdict::NothingPending);
        }
        let since = (self.clock.now() - Duration::minutes(10)).unix_timestamp();
        for row in self.store.recently_approved(&user.id, since).await? {
            let Some(challenge) = Challenge::read(&row) else {
                continue;
            };
            if self.matches(user, &challenge, spoken).await?.is_some() {
                self.record_refusal(self.entry(
                    &challenge,
                    Outcome::Reuse,
                    "code spoken again with nothing pending",
                    actor,
                ))
                .await;
                return Ok(Verdict::AlreadyUsed(challenge));
            }
        }
        Ok(Verdict::NothingPending)
    }

    pub(super) async fn wrong_code(
        &self,
        user: &User,
        challenge: Challenge,
        well_formed: bool,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let failures = tx.count_user_failure(&user.id).await?;
        let lockout = |failures: i64| {
            let doublings = u32::try_from(failures - LOCKOUT_AFTER)
                .unwrap_or(u32::MAX)
                .min(16);
            (FIRST_LOCKOUT * 2_i32.pow(doublings)).min(MAX_LOCKOUT)
        };
        let locked_for = (failures >= LOCKOUT_AFTER).then(|| lockout(failures));
        if let Some(delay) = locked_for {
            tx.lock_user(&user.id, (now + delay).unix_timestamp())
                .await?;
        }
        let next_lockout = (failures + 1 >= LOCKOUT_AFTER).then(|| lockout(failures + 1));
        let Some(wrong) = tx.count_wrong_code(&challenge.id).await? else {
            tx.rollback().await?;
            return Ok(match self.challenge_of(user, &challenge.id).await {
                Ok(Some(current)) => self.after_end(current, false, actor).await,
                Ok(None) => Verdict::NothingPending,
                Err(GateError::Unreadable(_)) => Verdict::Unreadable,
                Err(other) => return Err(other),
            });
        };
        let detail = if well_formed {
            "wrong code"
        } else {
            "not a code"
        };
        let mut entries = vec![self.entry(&challenge, Outcome::WrongCode, detail, actor)];
        let exhausted = wrong >= MAX_WRONG_CODES
            && tx
                .move_challenge(
                    &challenge.id,
                    &["pending"],
                    State::TooManyWrongCodes.as_str(),
                    now.unix_timestamp(),
                )
                .await?;
        if exhausted {
            entries.push(self.entry(
                &challenge,
                Outcome::TooManyWrongCodes,
                "too many wrong codes: challenge cancelled",
                actor,
            ));
        }
        self.audit.commit_all(tx, &entries).await?;
        if exhausted {
            self.publish(
                challenge.user_id.as_str(),
                &challenge.id,
                &challenge.summary,
                Outcome::TooManyWrongCodes,
            )
            .await;
            return Ok(Verdict::TooManyWrongCodes(challenge));
        }
        Ok(Verdict::WrongCode {
            tries_left: MAX_WRONG_CODES - wrong,
            challenge,
            locked_for,
            next_lockout,
        })
    }
}
