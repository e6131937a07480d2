//! VPN (read): each site-to-site VPN connection and the state of its tunnels.

use super::ask::{Answer, Ask, card_section};
use super::catalog::{Criticality, Declaration, Family, REGION};
use super::reply::Reply;
use super::{OpsError, SessionPolicy};

/// The VPN family's operations.
pub const DECLARATIONS: &[Declaration] = &[Declaration {
    name: "vpn.status",
    intent: "VpnStatusIntent",
    slots: &[REGION],
    criticality: Criticality::Read,
    iam_actions: &["ec2:DescribeVpnConnections"],
}];

/// The session policy of [`connections`].
pub fn policy() -> SessionPolicy {
    SessionPolicy::allow(&["ec2:DescribeVpnConnections"], &["*"])
}

/// One site-to-site VPN connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnConnection {
    /// `vpn-…`.
    pub id: String,
    /// The `Name` tag, if any.
    pub name: Option<String>,
    /// `available`, `pending`, `deleting`, …
    pub state: String,
    /// Tunnels that report `UP`.
    pub tunnels_up: usize,
    /// All tunnels AWS reports on.
    pub tunnels: usize,
}

impl VpnConnection {
    /// The name people use: the `Name` tag, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Up: available with every reported tunnel up (at least one).
    pub fn is_up(&self) -> bool {
        self.state == "available" && self.tunnels > 0 && self.tunnels_up == self.tunnels
    }
}

/// Every VPN connection that is not deleted, by name.
pub async fn connections(client: &aws_sdk_ec2::Client) -> Result<Vec<VpnConnection>, OpsError> {
    let answer = client
        .describe_vpn_connections()
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    let mut found: Vec<VpnConnection> = answer
        .vpn_connections()
        .iter()
        .filter(|c| c.state().is_none_or(|s| s.as_str() != "deleted"))
        .map(|c| {
            let telemetry = c.vgw_telemetry();
            VpnConnection {
                id: c.vpn_connection_id().unwrap_or_default().to_owned(),
                name: c
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value().map(str::to_owned)),
                state: c.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                tunnels_up: telemetry
                    .iter()
                    .filter(|t| t.status().is_some_and(|s| s.as_str() == "UP"))
                    .count(),
                tunnels: telemetry.len(),
            }
        })
        .collect();
    found.sort_by(|a, b| a.label().cmp(b.label()));
    Ok(found)
}

/// The VPN family.
#[derive(Debug)]
pub struct Vpn;

#[async_trait::async_trait]
impl Family for Vpn {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    /// "is my VPN up": every site-to-site connection and its tunnels, per account.
    async fn answer(&self, _: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let region = match ask.region() {
            Ok(region) => region,
            Err(answer) => return answer,
        };
        let reached = ask
            .each_account(&policy(), region.as_ref(), |session, region| async move {
                connections(&session.ec2(Some(&region))).await
            })
            .await;
        let card = reached
            .iter()
            .flat_map(|r| {
                card_section(r, |connections| {
                    if connections.is_empty() {
                        return vec!["no VPN connections".to_owned()];
                    }
                    connections
                        .iter()
                        .map(|c| {
                            format!(
                                "{} ({}) {}, tunnels up {}/{}",
                                c.label(),
                                c.id,
                                c.state,
                                c.tunnels_up,
                                c.tunnels
                            )
                        })
                        .collect()
                })
            })
            .collect::<Vec<_>>()
            .join("\n");
        match ask.scoped(reached, |_, connections| connections.clone()) {
            Ok(scoped) => Answer::Say {
                reply: Reply::Vpn(scoped),
                card: Some(card),
            },
            Err(answer) => answer,
        }
    }
}
