//! The Node object: registered at start, kept Ready by renewing its Lease in `kube-node-lease`
//! (what the node lifecycle controller watches) and by refreshing the Ready condition's
//! heartbeat.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tracing::{info, warn};

/// The Lease is valid this long after a renewal; renewals come every quarter of it, so three
/// missed renewals in a row still leave the node Ready.
pub const LEASE_SECONDS: i32 = 40;

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Pods this node accepts (the scheduler's limit).
    pub max_pods: u32,
}

/// What the node offers: generous, since processes are not confined to it and the scheduler
/// must never hold a pod back for lack of room.
fn resources(info: &NodeInfo) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity("64".into())),
        ("memory".to_string(), Quantity("256Gi".into())),
        ("ephemeral-storage".to_string(), Quantity("1Ti".into())),
        ("pods".to_string(), Quantity(info.max_pods.to_string())),
    ])
}

fn conditions(now: Timestamp, since: Timestamp) -> Vec<NodeCondition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "no memory pressure",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "no PID pressure",
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "spate-node-agent is running pods as processes",
        ),
    ]
}

pub fn node_object(info: &NodeInfo, now: Timestamp, since: Timestamp) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), info.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
        ("spate.dev/node-agent".to_string(), "true".to_string()),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(resources(info)),
            allocatable: Some(resources(info)),
            conditions: Some(conditions(now, since)),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: info.ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: info.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints::default()),
            node_info: Some(NodeSystemInfo {
                architecture: arch().into(),
                operating_system: "linux".into(),
                container_runtime_version: format!("process://{}", env!("CARGO_PKG_VERSION")),
                kubelet_version: format!("v{}-spate-node-agent", env!("CARGO_PKG_VERSION")),
                os_image: "spate-node-agent".into(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Creates the Node, or takes over an existing one of that name (an earlier run of the agent),
/// writing its status in either case.
pub async fn register(client: &kube::Client, info: &NodeInfo) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now();
    let node = node_object(info, now, now);
    let created = match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => {
            info!(node = %info.name, "registered the node");
            created
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            info!(node = %info.name, "the node exists; taking it over");
            let patch = serde_json::json!({"metadata": {"labels": node.metadata.labels}});
            nodes
                .patch(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?
        }
        Err(e) => return Err(e),
    };
    // A node's status is only written through the status subresource once it exists.
    let status = serde_json::json!({"status": node.status});
    nodes
        .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(created)
}

/// Renews the Lease every LEASE_SECONDS / 4 and the Ready heartbeat every `heartbeat`; never
/// returns. Failures are logged and retried on the next tick: a node that cannot reach the API
/// server for long enough is declared NotReady, as a real one would be.
pub async fn keep_ready(client: kube::Client, info: NodeInfo, owner: Node, heartbeat: Duration) {
    let since = Timestamp::now();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut lease_tick = tokio::time::interval(Duration::from_secs(LEASE_SECONDS as u64 / 4));
    let mut heartbeat_tick = tokio::time::interval(heartbeat);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&leases, &info, &owner).await {
                    warn!(error = %e, "cannot renew the node lease");
                }
            }
            _ = heartbeat_tick.tick() => {
                let status = serde_json::json!({
                    "status": {"conditions": conditions(Timestamp::now(), since)}
                });
                if let Err(e) = nodes
                    .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                {
                    warn!(error = %e, "cannot update the node's Ready heartbeat");
                }
            }
        }
    }
}

async fn renew_lease(
    leases: &Api<Lease>,
    info: &NodeInfo,
    owner: &Node,
) -> Result<(), kube::Error> {
    let renew = MicroTime(Timestamp::now());
    if leases.get_opt(&info.name).await?.is_none() {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(info.name.clone()),
                // Owned by the Node, as the kubelet's is, so deleting the Node removes it.
                owner_references: owner.metadata.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: info.name.clone(),
                        uid,
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(info.name.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                renew_time: Some(renew),
                ..LeaseSpec::default()
            }),
        };
        leases.create(&PostParams::default(), &lease).await?;
        return Ok(());
    }
    let patch = serde_json::json!({"spec": {
        "holderIdentity": info.name,
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": renew,
    }});
    leases
        .patch(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_is_ready_schedulable_and_addressed_on_loopback() {
        let info = NodeInfo {
            name: "process-node".into(),
            ip: Ipv4Addr::LOCALHOST,
            max_pods: 200,
        };
        let node = node_object(
            &info,
            Timestamp::from_second(5).unwrap(),
            Timestamp::UNIX_EPOCH,
        );
        let spec = node.spec.unwrap();
        assert!(spec.taints.is_none() && spec.unschedulable.is_none());
        let status = node.status.unwrap();
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(Timestamp::from_second(5).unwrap()))
        );
        let addresses = status.addresses.unwrap();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "127.0.0.1");
        assert_eq!(status.allocatable.unwrap()["pods"], Quantity("200".into()));
        assert_eq!(
            node.metadata.labels.unwrap()["kubernetes.io/hostname"],
            "process-node"
        );
    }
}
