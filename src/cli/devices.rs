//! `voxgate pair` and `voxgate device …`: companion devices, paired with a one-time code
//! and revoked by the operator. Both are audited.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::table::Table;
use super::{Changing, Output, find_user, open, print_json, rfc3339, when};
use crate::clock::{Clock as _, SystemClock};
use crate::config::{DatabaseArgs, SealingArgs};

/// `voxgate pair`
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The user: name (with --tenant if several tenants have one) or id.
    #[arg(long)]
    pub user: String,
    /// The user's tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Where people reach voxgate, for the companion link.
    #[arg(
        long,
        env = "VOXGATE_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// Sealing of secrets (the same settings as `serve`).
    #[command(flatten)]
    pub sealing: SealingArgs,
    /// Database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Output format.
    #[command(flatten)]
    pub out: Output,
}

/// `voxgate device …`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List devices.
    List {
        /// Only this user's devices (name or id).
        #[arg(long)]
        user: Option<String>,
        /// The user's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Revoke a device: its token stops working at once.
    Revoke {
        /// The device id (from `voxgate device list`).
        id: String,
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

pub(super) async fn pair(args: PairArgs) -> anyhow::Result<()> {
    let public_url = args.public_url.as_str();
    let base = url::Url::parse(public_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| {
            format!("'{public_url}' is not an http(s) URL: set --public-url (VOXGATE_PUBLIC_URL)")
        })?;
    let loopback = match base.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        eprintln!(
            "voxgate: warning: the link points at {}, which only this machine can open; set \
             --public-url (VOXGATE_PUBLIC_URL) to the address phones reach voxgate at",
            base.host_str().unwrap_or_default()
        );
    }
    let changing = Changing::open(&args.db, &args.sealing, false).await?;
    let store = changing.store.as_ref();
    let user = find_user(store, &args.user, args.tenant.as_deref()).await?;
    let tenant = store
        .tenant(&user.tenant_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let now = SystemClock
        .now()
        .replace_nanosecond(0)
        .unwrap_or(SystemClock.now());
    let key = crate::companion::PairingKey::load(store, &changing.sealer).await?;
    let code =
        crate::companion::issue_pairing_code(store, &changing.audit, &key, &user, now).await?;
    let mut link = base
        .join("app")
        .context("the public URL cannot take a path")?;
    link.set_fragment(Some(&format!("code={code}")));
    let expires = (now + crate::companion::PAIRING_CODE_TTL).unix_timestamp();
    if args.out.json {
        return print_json(&json!({
            "user": user.name,
            "user_id": user.id,
            "tenant": tenant,
            "tenant_id": user.tenant_id,
            "code": code,
            "url": link.as_str(),
            "expires_at": rfc3339(expires),
        }));
    }
    println!("Pairing code for {} ({tenant}): {code}", user.name);
    println!("Open {link} on their phone, or type the code into the voxgate app.");
    println!("It works once, until {}.", when(expires));
    Ok(())
}

pub(super) async fn device(command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::List {
            user,
            tenant,
            db,
            out,
        } => {
            let store = open(&db).await?;
            let user_id = match &user {
                Some(name) => Some(find_user(store.as_ref(), name, tenant.as_deref()).await?.id),
                None => None,
            };
            let devices = store.devices(user_id.as_ref()).await?;
            let users = store.users(None).await?;
            let tenants = store.tenants().await?;
            let owner = |d: &crate::store::Device| {
                let user = users.iter().find(|u| u.id.as_str() == d.user_id);
                let tenant = user.and_then(|u| tenants.iter().find(|t| t.id == u.tenant_id));
                (
                    user.map(|u| u.name.clone()).unwrap_or_default(),
                    tenant.map(|t| t.name.clone()).unwrap_or_default(),
                )
            };
            let state = |d: &crate::store::Device| {
                if d.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                }
            };
            if out.json {
                let rows: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        let (user, tenant) = owner(d);
                        json!({
                            "id": d.id,
                            "user": user,
                            "user_id": d.user_id,
                            "tenant": tenant,
                            "state": state(d),
                            "created_at": rfc3339(d.created_at),
                            "revoked_at": d.revoked_at.map(rfc3339),
                        })
                    })
                    .collect();
                return print_json(&json!(rows));
            }
            if devices.is_empty() {
                println!("No paired devices. Pair one with `voxgate pair --user NAME`.");
                return Ok(());
            }
            let mut table = Table::new(&["DEVICE", "TENANT", "USER", "STATE", "PAIRED", "REVOKED"]);
            for d in &devices {
                let (user, tenant) = owner(d);
                table.row(vec![
                    d.id.clone(),
                    tenant,
                    user,
                    state(d).to_owned(),
                    when(d.created_at),
                    d.revoked_at.map(when).unwrap_or_default(),
                ]);
            }
            print!("{table}");
            Ok(())
        }
        DeviceCommand::Revoke {
            id,
            sealing,
            db,
            out,
        } => {
            let changing = Changing::open(&db, &sealing, false).await?;
            let store = changing.store.as_ref();
            let not_active = || {
                anyhow::anyhow!(
                    "there is no active device '{}': list them with `voxgate device list`",
                    id.trim()
                )
            };
            let device = store.device(id.trim()).await?.ok_or_else(not_active)?;
            let user = store
                .user(&crate::store::UserId(device.user_id.clone()))
                .await?
                .ok_or_else(not_active)?;
            if !crate::companion::revoke(
                store,
                &changing.audit,
                id.trim(),
                &user,
                false,
                SystemClock.now(),
            )
            .await?
            {
                return Err(not_active());
            }
            if out.json {
                print_json(&json!({"id": id.trim(), "revoked": true}))
            } else {
                println!("Revoked device {}; its token no longer works.", id.trim());
                Ok(())
            }
        }
    }
}
