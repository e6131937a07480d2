//! CloudFront: "clear the cache of my website" (critical: an invalidation of every path of
//! one managed distribution). With several distributions the person names the site by an
//! alias ("shop.example.com", "the shop") or its comment; voxgate asks when it cannot
//! tell.

use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

use super::ask::{Answer, Ask, Trouble, answered};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, Report, SlotSpec,
    sha256_hex,
};
use super::names::{self, Match};
use super::reply::Reply;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::broker::AwsSession;

/// The kind invalidations are stored under.
pub const KIND: &str = "cloudfront-invalidation";

/// Where the CloudFront API lives.
const CLOUDFRONT_REGION: &str = "us-east-1";

/// The slot naming the site.
pub const SITE_SLOT: &str = "site";

const SITE: SlotSpec = SlotSpec {
    name: SITE_SLOT,
    slot_type: "WEBSITE_NAME",
};

/// Reads: the distributions and their tags.
const READS: &[&str] = &[
    "cloudfront:ListDistributions",
    "cloudfront:ListTagsForResource",
];

/// The CloudFront family's operations.
pub const DECLARATIONS: &[Declaration] = &[Declaration {
    name: "cloudfront.invalidate",
    intent: "ClearCacheIntent",
    slots: &[SITE],
    criticality: Criticality::Critical,
    iam_actions: &[
        "cloudfront:ListDistributions",
        "cloudfront:ListTagsForResource",
        "cloudfront:CreateInvalidation",
    ],
}];

/// The session policy of the reads (listing has no resource-level permissions).
pub fn read_policy() -> SessionPolicy {
    SessionPolicy::allow(READS, &["*"])
}

/// A distribution as people know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `E…`.
    pub id: String,
    /// Its ARN (for its tags).
    pub arn: String,
    /// Its alternate domain names.
    pub aliases: Vec<String>,
    /// Its comment.
    pub comment: String,
    /// `d….cloudfront.net`.
    pub domain: String,
    /// Whether it carries the managed tag.
    pub managed: bool,
}

impl Site {
    /// The name people use: the first alias, else the comment, else the CloudFront domain.
    pub fn label(&self) -> &str {
        self.aliases
            .first()
            .map(String::as_str)
            .or(Some(self.comment.as_str()).filter(|c| !c.trim().is_empty()))
            .unwrap_or(&self.domain)
    }

    /// Every name it answers to.
    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.aliases.iter().map(String::as_str).collect();
        names.push(&self.comment);
        names.push(&self.domain);
        names.retain(|n| !n.trim().is_empty());
        names
    }
}

fn client(session: &AwsSession, change: bool) -> aws_sdk_cloudfront::Client {
    aws_sdk_cloudfront::Client::new(&session.config(Some(CLOUDFRONT_REGION), change))
}

/// The tags of the distribution `arn`; `None` if there is no such distribution.
async fn tags_of(
    client: &aws_sdk_cloudfront::Client,
    arn: &str,
) -> Result<Option<Vec<(String, String)>>, OpsError> {
    let answer = match client.list_tags_for_resource().resource(arn).send().await {
        Ok(answer) => answer,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_no_such_resource()) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(OpsError::from_sdk(error)),
    };
    Ok(Some(
        answer
            .tags()
            .map(|t| {
                t.items()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    ))
}

/// Every distribution of the session's account, with whether it carries `managed`.
pub async fn sites(session: &AwsSession, managed: &ManagedTag) -> Result<Vec<Site>, OpsError> {
    let client = client(session, false);
    let mut sites = Vec::new();
    let mut marker = None;
    loop {
        let page = client
            .list_distributions()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        let Some(list) = page.distribution_list() else {
            break;
        };
        for d in list.items() {
            let tags = tags_of(&client, d.arn()).await?.unwrap_or_default();
            sites.push(Site {
                id: d.id().to_owned(),
                arn: d.arn().to_owned(),
                aliases: d.aliases().map(|a| a.items().to_vec()).unwrap_or_default(),
                comment: d.comment().to_owned(),
                domain: d.domain_name().to_owned(),
                managed: managed.marks(&tags),
            });
        }
        match list.next_marker() {
            Some(next) if list.is_truncated() && !next.is_empty() => {
                marker = Some(next.to_owned());
            }
            _ => break,
        }
    }
    sites.sort_by(|a, b| a.label().cmp(b.label()));
    Ok(sites)
}

/// The CloudFront family.
#[derive(Debug)]
pub struct CloudFront;

#[async_trait::async_trait]
impl Family for CloudFront {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, _: &'static Declaration, ask: &Ask<'_>) -> Answer {
        clear(ask).await.unwrap_or_else(|answer| answer)
    }
}

/// "clear the cache of my website": the one site, or the one named; asks which when it
/// cannot tell; only a managed distribution is held.
async fn clear(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let managed = ask.managed;
    let reached = ask
        .each_account(&read_policy(), None, |session, _| async move {
            sites(&session, managed).await
        })
        .await;
    let reached = answered(reached)?;
    let several = ask.several_accounts();
    let mut everything = Vec::new();
    let mut first_trouble: Option<(crate::store::LinkedAccount, Trouble)> = None;
    for r in reached {
        match r.result {
            Ok(sites) => everything.extend(sites.into_iter().map(|s| (r.account.clone(), s))),
            Err(trouble) => {
                first_trouble.get_or_insert((r.account, trouble));
            }
        }
    }
    let label = |(account, site): &(crate::store::LinkedAccount, Site)| {
        if several {
            format!("{} in {}", site.label(), account.name)
        } else {
            site.label().to_owned()
        }
    };
    let chosen = match ask.value(SITE_SLOT) {
        None if everything.len() == 1 => everything.pop(),
        None if everything.is_empty() => {
            return Ok(match first_trouble {
                Some((account, trouble)) => Answer::Trouble(Box::new(account), trouble),
                None => Answer::say(Reply::NoSites),
            });
        }
        None => {
            return Err(Answer::Elicit {
                reply: Reply::WhichSite {
                    sites: everything.iter().map(label).collect(),
                },
                slot: SITE_SLOT,
                context: None,
            });
        }
        Some(spoken) => {
            let matching: Vec<_> = everything
                .iter()
                .filter(|(_, site)| {
                    site.names().iter().any(|name| {
                        matches!(names::find(spoken, &[*name], |n| n), Match::One(_))
                            || names::normalise(name)
                                .starts_with(&names::normalise(spoken.trim_start_matches("the ")))
                    })
                })
                .cloned()
                .collect();
            match matching.len() {
                1 => matching.into_iter().next(),
                0 => {
                    return Ok(Answer::say(Reply::SiteNotFound {
                        spoken: spoken.to_owned(),
                        known: everything.iter().map(label).collect(),
                    }));
                }
                _ => {
                    return Err(Answer::Elicit {
                        reply: Reply::WhichSite {
                            sites: matching.iter().map(label).collect(),
                        },
                        slot: SITE_SLOT,
                        context: None,
                    });
                }
            }
        }
    };
    let Some((account, site)) = chosen else {
        return Ok(Answer::say(Reply::NoSites));
    };
    let op = InvalidationOperation {
        account_id: account.id.as_str().to_owned(),
        account_name: account.name.clone(),
        distribution_id: site.id.clone(),
        site: site.label().to_owned(),
        paths: vec!["/*".to_owned()],
    };
    let name = op.site.clone();
    Ok(ask.hold_if_managed(site.managed, &name, Operation::Invalidation(op)))
}

/// Invalidating paths of one managed distribution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidationOperation {
    /// voxgate's id of the linked account.
    pub account_id: String,
    /// Its label ("prod").
    pub account_name: String,
    /// `E…`.
    pub distribution_id: String,
    /// The site's name, as people call it.
    pub site: String,
    /// The paths to invalidate (`/*`: everything).
    pub paths: Vec<String>,
}

/// What CloudFront took: the invalidation's id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidationSent {
    /// The operation.
    pub op: InvalidationOperation,
    /// CloudFront's invalidation id.
    pub id: String,
    /// Its status ("InProgress").
    pub status: String,
}

#[async_trait::async_trait]
impl Critical for InvalidationOperation {
    super::catalog::critical_identity!(KIND, global);

    /// "Clear the whole cache of shop.example.com in prod".
    fn summary(&self) -> String {
        let what = if self.paths == ["/*"] {
            "the whole cache".to_owned()
        } else {
            format!("{} paths of the cache", self.paths.len())
        };
        format!("Clear {what} of {} in {}", self.site, self.account_name)
    }

    fn well_formed(&self) -> bool {
        !self.distribution_id.is_empty()
            && self
                .distribution_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
            && !self.paths.is_empty()
            && self.paths.iter().all(|p| p.starts_with('/'))
    }

    fn digest(&self) -> String {
        let mut paths = self.paths.clone();
        paths.sort();
        sha256_hex(&format!(
            "voxgate-cloudfront-invalidation-v1\naccount={}\ndistribution={}\npaths={}\n",
            self.account_id,
            self.distribution_id,
            paths.join("\u{1f}")
        ))
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Action", "Invalidate cache".to_owned()),
            (
                "Distribution",
                format!("{} ({})", self.site, self.distribution_id),
            ),
            ("Paths", self.paths.join(", ")),
        ]
    }

    fn guard_policy(&self) -> SessionPolicy {
        read_policy()
    }

    /// CreateInvalidation on exactly this distribution. (The managed tag is checked by the
    /// guard just before: the tag condition is not applied to CloudFront invalidations.)
    fn policy(&self, aws_account: &str, _managed: &ManagedTag) -> SessionPolicy {
        SessionPolicy::allow(
            &["cloudfront:CreateInvalidation"],
            &[&format!(
                "arn:aws:cloudfront::{aws_account}:distribution/{}",
                self.distribution_id
            )],
        )
    }

    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        _now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        // Only this distribution's tags: one call, whatever the account holds.
        let arn = format!(
            "arn:aws:cloudfront::{}:distribution/{}",
            read.aws_account(),
            self.distribution_id
        );
        let Some(tags) = tags_of(&client(read, false), &arn).await? else {
            return Ok(Guard::NotManaged);
        };
        Ok(if managed.marks(&tags) {
            Guard::Clear
        } else {
            Guard::NotManaged
        })
    }

    async fn execute(
        &self,
        session: &AwsSession,
        _deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        use aws_sdk_cloudfront::operation::RequestId as _;
        let unsent = |_| OpsError::Aws {
            code: "Unsent".into(),
            message: "the invalidation could not be built".into(),
        };
        let paths = Paths::builder()
            .quantity(i32::try_from(self.paths.len()).unwrap_or(i32::MAX))
            .set_items(Some(self.paths.clone()))
            .build()
            .map_err(unsent)?;
        // One reference per run: CloudFront would treat a repeated one as the same request.
        let reference = format!(
            "voxgate-{}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(reference)
            .build()
            .map_err(unsent)?;
        let sent = client(session, true)
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(OpsError::from_sdk_change)?;
        Ok(Done {
            request_id: sent.request_id().map(str::to_owned),
            report: Report::Invalidation(InvalidationSent {
                op: self.clone(),
                id: sent
                    .invalidation()
                    .map(|i| i.id().to_owned())
                    .unwrap_or_default(),
                status: sent
                    .invalidation()
                    .map_or_else(|| "InProgress".to_owned(), |i| i.status().to_owned()),
            }),
        })
    }
}

/// One invalidation, for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    vec![Operation::Invalidation(tests::op())]
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = tests::op();
    let with = |f: &dyn Fn(&mut InvalidationOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::Invalidation(op)
    };
    vec![
        (
            Operation::Invalidation(base.clone()),
            with(&|op| op.distribution_id.push('X')),
            Some(with(&|op| op.site = "the shop".into())),
        ),
        (
            Operation::Invalidation(base.clone()),
            with(&|op| op.paths = vec!["/index.html".into()]),
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn op() -> InvalidationOperation {
        InvalidationOperation {
            account_id: "a_1".into(),
            account_name: "prod".into(),
            distribution_id: "E2QWRUHAPOMQZL".into(),
            site: "shop.example.com".into(),
            paths: vec!["/*".into()],
        }
    }

    #[test]
    fn the_summary_names_the_site_and_account() {
        assert_eq!(
            op().summary(),
            "Clear the whole cache of shop.example.com in prod"
        );
    }
}
