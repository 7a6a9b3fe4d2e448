//! Acquiring and renewing the lease against a mocked API server.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::LeaderElection;
use crate::fixtures::{self, ApiServer};

const NAMESPACE: &str = "spate-system";
const LEASE: &str = "spate-operator";
const ME: &str = "spate-operator-7f9c-a";

fn lease_path() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}")
}

fn lease(holder: &str, renewed: &str, duration_seconds: i32, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": NAMESPACE, "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_seconds,
            "acquireTime": "2025-06-15T15:00:00.000000Z",
            "renewTime": renewed,
            "leaseTransitions": transitions,
        },
    })
}

fn election() -> (LeaderElection, ApiServer) {
    let (client, server) = fixtures::api();
    (LeaderElection::new(client, NAMESPACE, LEASE, ME), server)
}

/// One attempt, run while the test plays the API server.
fn attempt(mut election: LeaderElection) -> JoinHandle<(LeaderElection, bool)> {
    tokio::spawn(async move {
        let leads = election.try_acquire_or_renew().await.unwrap();
        (election, leads)
    })
}

#[tokio::test]
async fn a_missing_lease_is_created_held_by_this_process() {
    let (election, mut server) = election();
    let trying = attempt(election);
    let call = server.expect(Method::GET, &lease_path()).await;
    call.fail(404, "NotFound", "leases \"spate-operator\" not found");
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let call = server.expect(Method::POST, &path).await;
    let spec = call.body["spec"].clone();
    call.echo();
    assert_eq!(spec["holderIdentity"], ME);
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
    assert!(spec["renewTime"].as_str().unwrap().ends_with('Z'));
    let (_, leads) = trying.await.unwrap();
    assert!(leads);
}

#[tokio::test]
async fn two_processes_creating_the_lease_at_once_have_one_leader() {
    let (election, mut server) = election();
    let trying = attempt(election);
    let call = server.expect(Method::GET, &lease_path()).await;
    call.fail(404, "NotFound", "not found");
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let call = server.expect(Method::POST, &path).await;
    call.fail(
        409,
        "AlreadyExists",
        "leases \"spate-operator\" already exists",
    );
    let (_, leads) = trying.await.unwrap();
    assert!(!leads);
}

#[tokio::test]
async fn the_holder_renews_its_lease() {
    let (election, mut server) = election();
    let trying = attempt(election);
    let held = lease(ME, "2025-06-15T15:00:05.000000Z", 15, 3);
    server.expect(Method::GET, &lease_path()).await.ok(&held);
    let call = server.expect(Method::PUT, &lease_path()).await;
    let body = call.body.clone();
    call.echo();
    assert_eq!(
        body["metadata"]["resourceVersion"], "7",
        "a write that races another fails"
    );
    assert_eq!(body["spec"]["holderIdentity"], ME);
    assert_eq!(body["spec"]["leaseTransitions"], 3);
    assert_eq!(body["spec"]["acquireTime"], held["spec"]["acquireTime"]);
    assert_ne!(body["spec"]["renewTime"], held["spec"]["renewTime"]);
    let (_, leads) = trying.await.unwrap();
    assert!(leads);
}

#[tokio::test]
async fn a_lease_renewed_by_another_is_left_alone_and_taken_once_it_expires() {
    let (election, mut server) = election();
    let other = "spate-operator-7f9c-b";

    // Held, and renewed as far as this process has seen: no write.
    let trying = attempt(election);
    let first = lease(other, "2025-06-15T15:00:05.000000Z", 1, 3);
    server.expect(Method::GET, &lease_path()).await.ok(&first);
    let (election, leads) = trying.await.unwrap();
    assert!(!leads);
    server.expect_nothing_more().await;

    // Renewed since: still held.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let trying = attempt(election);
    let renewed = lease(other, "2025-06-15T15:00:06.000000Z", 1, 3);
    server.expect(Method::GET, &lease_path()).await.ok(&renewed);
    let (election, leads) = trying.await.unwrap();
    assert!(!leads);
    server.expect_nothing_more().await;

    // Not renewed for longer than its duration (by this process's clock): taken over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let trying = attempt(election);
    server.expect(Method::GET, &lease_path()).await.ok(&renewed);
    let call = server.expect(Method::PUT, &lease_path()).await;
    let spec = call.body["spec"].clone();
    call.echo();
    assert_eq!(spec["holderIdentity"], ME);
    assert_eq!(spec["leaseTransitions"], 4);
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_ne!(spec["acquireTime"], renewed["spec"]["acquireTime"]);
    let (_, leads) = trying.await.unwrap();
    assert!(leads);
}

#[tokio::test]
async fn a_released_lease_is_taken_and_a_lost_race_is_not_leading() {
    let (election, mut server) = election();
    let trying = attempt(election);
    let released = lease("", "2025-06-15T15:00:05.000000Z", 15, 3);
    server
        .expect(Method::GET, &lease_path())
        .await
        .ok(&released);
    let call = server.expect(Method::PUT, &lease_path()).await;
    assert_eq!(call.body["spec"]["holderIdentity"], ME);
    // Another replica wrote the lease in between.
    call.fail(409, "Conflict", "the object has been modified");
    let (_, leads) = trying.await.unwrap();
    assert!(!leads);
}
