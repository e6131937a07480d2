//! `voxgate tenant …` and `voxgate user …`: who may use voxgate. Every change is audited in
//! the same transaction as the change itself.

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::table::Table;
use super::{
    Changing, Output, find_tenant, find_user, now, open, operator_entry, print_json, rfc3339, when,
};
use crate::audit::Outcome;
use crate::config::{DatabaseArgs, SealingArgs};
use crate::store::{
    AlexaUserId, NewUser, OAuthSubject, Removal, Store, StoreError, Tenant, TenantName, User,
    UserName,
};

/// `voxgate tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Its name (unique, regardless of case).
        name: String,
        /// Sealing of secrets (the same settings as `serve`), to write the audit record.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// List tenants, with how many users and accounts each has.
    List {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Remove a tenant. Refused while it has users or accounts, unless --force (which
    /// removes them too, all in one step, and is refused while any of their operations is
    /// waiting for a code or running).
    Remove {
        /// The tenant's name.
        name: String,
        /// Also remove its users (their devices stop working) and unlink its accounts.
        #[arg(long)]
        force: bool,
        /// Sealing of secrets (the same settings as `serve`), to write the audit records.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `voxgate user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Enrol a user, by Alexa user id and/or OAuth subject.
    Add {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The person's name (shown in the customer's CloudTrail as the source identity).
        #[arg(long)]
        name: String,
        /// Their Alexa user id (amzn1.ask.account.…), as logged when they first speak.
        #[arg(long)]
        alexa_user_id: Option<String>,
        /// Their subject (`sub`) at the OAuth provider used for account linking.
        #[arg(long)]
        oauth_subject: Option<String>,
        /// Sealing of secrets (the same settings as `serve`), to write the audit record.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// List users.
    List {
        /// Only this tenant's users.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Remove a user: their devices stop working at once, their Alexa user id and OAuth
    /// subject are forgotten. Refused while an operation of theirs is waiting or running.
    Remove {
        /// The user: name (with --tenant if several tenants have one) or id.
        user: String,
        /// The user's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Sealing of secrets (the same settings as `serve`), to write the audit record.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

pub(super) async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Add {
            name,
            sealing,
            db,
            out,
        } => {
            let name = TenantName::parse(&name)?;
            let changing = Changing::open(&db, &sealing, true).await?;
            let mut tx = changing.store.begin().await?;
            let tenant = match tx.add_tenant(&name, now()).await {
                Ok(tenant) => tenant,
                Err(StoreError::Duplicate(_)) => {
                    tx.rollback().await?;
                    return Err(tenant_clash(changing.store.as_ref(), &name).await);
                }
                Err(other) => return Err(other.into()),
            };
            changing
                .audit
                .commit_with(
                    tx,
                    &operator_entry(
                        Outcome::TenantAdded,
                        Some(&tenant.id),
                        None,
                        format!("Added tenant {}", tenant.name),
                    ),
                )
                .await?;
            if out.json {
                print_json(&tenant_json(&tenant, 0, 0))
            } else {
                println!("Added tenant '{}' ({}).", tenant.name, tenant.id);
                Ok(())
            }
        }
        TenantCommand::List { db, out } => {
            let store = open(&db).await?;
            let tenants = store.tenants().await?;
            let users = store.users(None).await?;
            let accounts = store.accounts(None).await?;
            let counts = |t: &Tenant| {
                (
                    users.iter().filter(|u| u.tenant_id == t.id).count(),
                    accounts.iter().filter(|a| a.tenant_id == t.id).count(),
                )
            };
            if out.json {
                let rows: Vec<_> = tenants
                    .iter()
                    .map(|t| {
                        let (users, accounts) = counts(t);
                        tenant_json(t, users, accounts)
                    })
                    .collect();
                return print_json(&json!(rows));
            }
            if tenants.is_empty() {
                println!("No tenants yet. Add one with `voxgate tenant add NAME`.");
                return Ok(());
            }
            let mut table = Table::new(&["TENANT", "ID", "USERS", "ACCOUNTS", "CREATED"]);
            for t in &tenants {
                let (users, accounts) = counts(t);
                table.row(vec![
                    t.name.clone(),
                    t.id.as_str().to_owned(),
                    users.to_string(),
                    accounts.to_string(),
                    when(t.created_at),
                ]);
            }
            print!("{table}");
            Ok(())
        }
        TenantCommand::Remove {
            name,
            force,
            sealing,
            db,
            out,
        } => remove_tenant(&name, force, &sealing, &db, out).await,
    }
}

fn tenant_json(tenant: &Tenant, users: usize, accounts: usize) -> serde_json::Value {
    json!({
        "id": tenant.id,
        "tenant": tenant.name,
        "users": users,
        "accounts": accounts,
        "created_at": rfc3339(tenant.created_at),
    })
}

/// Names the tenant a new name clashed with.
async fn tenant_clash(store: &dyn Store, name: &TenantName) -> anyhow::Error {
    match store.tenant_by_name(name.as_str()).await {
        Ok(Some(existing)) => anyhow::anyhow!(
            "tenant '{}' already exists ({}): tenant names are unique regardless of case",
            existing.name,
            existing.id
        ),
        _ => anyhow::anyhow!("a tenant named '{name}' already exists"),
    }
}

async fn remove_tenant(
    name: &str,
    force: bool,
    sealing: &SealingArgs,
    db: &DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let changing = Changing::open(db, sealing, false).await?;
    let store = changing.store.as_ref();
    let tenant = find_tenant(store, name).await?;
    let users = store.users(Some(&tenant.id)).await?;
    let accounts = store.accounts(Some(&tenant.id)).await?;
    if !force && (!users.is_empty() || !accounts.is_empty()) {
        bail!(
            "tenant '{}' still has {} and {}: remove them first (`voxgate user remove`, \
             `voxgate account unlink`), or add --force to remove them with it",
            tenant.name,
            plural(users.len(), "user"),
            plural(accounts.len(), "account")
        );
    }
    let mut tx = store.begin().await?;
    let mut entries = Vec::new();
    for account in &accounts {
        match tx.unlink_account(&account.id, now()).await? {
            Removal::Removed => entries.push(operator_entry(
                Outcome::AccountUnlinked,
                Some(&tenant.id),
                None,
                format!("Unlinked account {} of {}", account.name, tenant.name),
            )),
            Removal::Busy { .. } => bail!(
                "an operation on account '{}' is waiting for a code or running: wait until it \
                 ends (or deny it in the app), then remove tenant '{}'; nothing was removed",
                account.name,
                tenant.name
            ),
            Removal::Missing | Removal::NotEmpty { .. } => {}
        }
    }
    for user in &users {
        match tx.remove_user(&user.id, now()).await? {
            Removal::Removed => entries.push(user_removed_entry(user, &tenant)),
            Removal::Busy { .. } => bail!(
                "an operation of '{}' is waiting for a code or running: wait until it ends (or \
                 deny it in the app), then remove tenant '{}'; nothing was removed",
                user.name,
                tenant.name
            ),
            Removal::Missing | Removal::NotEmpty { .. } => {}
        }
    }
    match tx.remove_tenant(&tenant.id, now()).await? {
        Removal::Removed => {}
        Removal::Missing => bail!("tenant '{}' was removed meanwhile", tenant.name),
        Removal::NotEmpty { .. } | Removal::Busy { .. } => bail!(
            "tenant '{}' gained users or accounts meanwhile: nothing was removed; try again",
            tenant.name
        ),
    }
    entries.push(operator_entry(
        Outcome::TenantRemoved,
        Some(&tenant.id),
        None,
        format!("Removed tenant {}", tenant.name),
    ));
    let count = |outcome| entries.iter().filter(|e| e.outcome == outcome).count();
    let (removed_users, unlinked_accounts) =
        (count(Outcome::UserRemoved), count(Outcome::AccountUnlinked));
    changing.audit.commit_all(tx, &entries).await?;
    if out.json {
        return print_json(&json!({
            "id": tenant.id,
            "tenant": tenant.name,
            "removed": true,
            "users_removed": removed_users,
            "accounts_unlinked": unlinked_accounts,
        }));
    }
    if removed_users + unlinked_accounts == 0 {
        println!("Removed tenant '{}'.", tenant.name);
    } else {
        println!(
            "Removed tenant '{}' with its {} and {}.",
            tenant.name,
            plural(removed_users, "user"),
            plural(unlinked_accounts, "account")
        );
    }
    Ok(())
}

/// "1 user", "2 users".
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn user_removed_entry(user: &User, tenant: &Tenant) -> crate::audit::Entry {
    operator_entry(
        Outcome::UserRemoved,
        Some(&tenant.id),
        Some(&user.id),
        format!("Removed user {} of {}", user.name, tenant.name),
    )
}

pub(super) async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            tenant,
            name,
            alexa_user_id,
            oauth_subject,
            sealing,
            db,
            out,
        } => {
            let name = UserName::parse(&name)?;
            let alexa_user_id = alexa_user_id
                .as_deref()
                .map(AlexaUserId::parse)
                .transpose()?;
            let oauth_subject = oauth_subject
                .as_deref()
                .map(OAuthSubject::parse)
                .transpose()?;
            if alexa_user_id.is_none() && oauth_subject.is_none() {
                bail!(
                    "say how voxgate will recognise '{name}': give --alexa-user-id (from voxgate's \
                     log when they first speak) or --oauth-subject (with account linking)"
                );
            }
            let changing = Changing::open(&db, &sealing, false).await?;
            let store = changing.store.as_ref();
            let tenant = find_tenant(store, &tenant).await?;
            let new = NewUser {
                tenant_id: tenant.id.clone(),
                name,
                alexa_user_id,
                oauth_subject,
            };
            let mut tx = store.begin().await?;
            let user = match tx.add_user(&new, now()).await {
                Ok(user) => user,
                Err(StoreError::Duplicate(_)) => {
                    tx.rollback().await?;
                    return Err(user_clash(store, &tenant, &new).await?);
                }
                Err(other) => return Err(other.into()),
            };
            changing
                .audit
                .commit_with(
                    tx,
                    &operator_entry(
                        Outcome::UserEnrolled,
                        Some(&tenant.id),
                        Some(&user.id),
                        format!("Enrolled user {} in {}", user.name, tenant.name),
                    ),
                )
                .await?;
            if out.json {
                print_json(&user_json(&user, &tenant.name, 0))
            } else {
                println!(
                    "Enrolled '{}' ({}) in tenant '{}'.",
                    user.name, user.id, tenant.name
                );
                Ok(())
            }
        }
        UserCommand::List { tenant, db, out } => {
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let tenants = store.tenants().await?;
            let users = store.users(tenant_id.as_ref()).await?;
            let devices = store.devices(None).await?;
            let tenant_name = |u: &User| {
                tenants
                    .iter()
                    .find(|t| t.id == u.tenant_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            };
            let paired = |u: &User| {
                devices
                    .iter()
                    .filter(|d| d.user_id == u.id.as_str() && d.revoked_at.is_none())
                    .count()
            };
            if out.json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| user_json(u, &tenant_name(u), paired(u)))
                    .collect();
                return print_json(&json!(rows));
            }
            if users.is_empty() {
                println!("No users yet. Enrol one with `voxgate user add`.");
                return Ok(());
            }
            let mut table = Table::new(&[
                "TENANT",
                "USER",
                "ID",
                "ALEXA USER ID",
                "OAUTH SUBJECT",
                "DEVICES",
                "ENROLLED",
            ]);
            for u in &users {
                table.row(vec![
                    tenant_name(u),
                    u.name.clone(),
                    u.id.as_str().to_owned(),
                    u.alexa_user_id
                        .as_deref()
                        .map(abbreviate)
                        .unwrap_or_default(),
                    u.oauth_subject
                        .as_deref()
                        .map(abbreviate)
                        .unwrap_or_default(),
                    paired(u).to_string(),
                    when(u.created_at),
                ]);
            }
            print!("{table}");
            Ok(())
        }
        UserCommand::Remove {
            user,
            tenant,
            sealing,
            db,
            out,
        } => {
            let changing = Changing::open(&db, &sealing, false).await?;
            let store = changing.store.as_ref();
            let user = find_user(store, &user, tenant.as_deref()).await?;
            let Some(tenant) = store.tenant(&user.tenant_id).await? else {
                bail!("the tenant of user '{}' no longer exists", user.name);
            };
            let devices = store
                .devices(Some(&user.id))
                .await?
                .iter()
                .filter(|d| d.revoked_at.is_none())
                .count();
            let mut tx = store.begin().await?;
            match tx.remove_user(&user.id, now()).await? {
                Removal::Removed => {}
                Removal::Busy { .. } => bail!(
                    "an operation of '{}' is waiting for a code or running: wait until it ends \
                     (or deny it in the app), then remove them; nothing was removed",
                    user.name
                ),
                Removal::Missing | Removal::NotEmpty { .. } => {
                    bail!("user '{}' was removed meanwhile", user.name)
                }
            }
            changing
                .audit
                .commit_with(tx, &user_removed_entry(&user, &tenant))
                .await?;
            if out.json {
                return print_json(&json!({
                    "id": user.id,
                    "user": user.name,
                    "tenant": tenant.name,
                    "tenant_id": tenant.id,
                    "removed": true,
                    "devices_revoked": devices,
                }));
            }
            println!(
                "Removed user '{}' of tenant '{}'; {} revoked, and voxgate no longer \
                 recognises them.",
                user.name,
                tenant.name,
                plural(devices, "paired device")
            );
            Ok(())
        }
    }
}

fn user_json(user: &User, tenant: &str, devices: usize) -> serde_json::Value {
    json!({
        "id": user.id,
        "user": user.name,
        "tenant": tenant,
        "tenant_id": user.tenant_id,
        "alexa_user_id": user.alexa_user_id,
        "oauth_subject": user.oauth_subject,
        "devices": devices,
        "created_at": rfc3339(user.created_at),
    })
}

/// Long identifiers shortened for a table: `amzn1.ask.account.…7Q2ZK4AB`.
fn abbreviate(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 32 {
        return id.to_owned();
    }
    let head: String = chars[..18].iter().collect();
    let tail: String = chars[chars.len() - 8..].iter().collect();
    format!("{head}…{tail}")
}

/// Names what a new user clashed with: their name in the tenant, the Alexa user id or the
/// OAuth subject, and who has it.
async fn user_clash(
    store: &dyn Store,
    tenant: &Tenant,
    new: &NewUser,
) -> anyhow::Result<anyhow::Error> {
    let by_name = store
        .users(Some(&tenant.id))
        .await?
        .into_iter()
        .find(|u| u.name.eq_ignore_ascii_case(new.name.as_str()));
    if let Some(existing) = by_name {
        return Ok(anyhow::anyhow!(
            "tenant '{}' already has a user named '{}' ({}): user names are unique in a tenant, \
             regardless of case",
            tenant.name,
            existing.name,
            existing.id
        ));
    }
    let holder = |user: User| async move {
        let tenant = store
            .tenant(&user.tenant_id)
            .await
            .ok()
            .flatten()
            .map(|t| t.name)
            .unwrap_or_default();
        format!("'{}' ({}) of tenant '{tenant}'", user.name, user.id)
    };
    if let Some(id) = &new.alexa_user_id
        && let Some(existing) = store.user_by_alexa_id(id.as_str()).await?
    {
        return Ok(anyhow::anyhow!(
            "that Alexa user id is already enrolled as {}",
            holder(existing).await
        ));
    }
    if let Some(subject) = &new.oauth_subject
        && let Some(existing) = store.user_by_oauth_subject(subject.as_str()).await?
    {
        return Ok(anyhow::anyhow!(
            "that OAuth subject is already enrolled as {}",
            holder(existing).await
        ));
    }
    Ok(anyhow::anyhow!(
        "a user like '{}' already exists in tenant '{}'",
        new.name,
        tenant.name
    ))
}
