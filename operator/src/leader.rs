//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas are safe:
//! only the holder of the lease reconciles. The holder renews the lease every few seconds; a
//! lease not renewed for its duration may be taken by another replica. Every write carries the
//! resource version it read, so of two replicas racing for the lease one wins and the other
//! gets a conflict.
//!
//! As in client-go, expiry is judged by the local clock from when this process last saw the
//! lease change, never by comparing the timestamps in it with the local time: the clocks of
//! two nodes need not agree.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The holder renews this often.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// A holder that could not renew for this long stops leading (before the lease expires, so
/// that no other replica leads at the same time).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// A replica that does not lead tries again this often.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the lease {name}: {why}")]
    Lost { name: String, why: String },
}

pub struct LeaderElection {
    leases: Api<Lease>,
    name: String,
    identity: String,
    /// The holder and renewal time last seen, and when they were first seen so.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElection {
            leases: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            observed: None,
        }
    }

    /// Tries once to take or keep the lease; true when this process holds it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let duration_seconds = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return self.written(self.leases.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let seen_since = self.observe(holder.clone(), spec.renew_time.clone());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(LEASE_DURATION, Duration::from_secs);
        let expired = holder.is_none() || seen_since.elapsed() >= duration;
        if !mine && !expired {
            return Ok(false);
        }
        let mut next = spec.clone();
        if !mine {
            info!(lease = %self.name, previous = ?holder, "taking over the lease");
            next.holder_identity = Some(self.identity.clone());
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.renew_time = Some(now);
        next.lease_duration_seconds = Some(duration_seconds);
        lease.spec = Some(next);
        let replaced = self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
        self.written(replaced)
    }

    /// When the lease was first seen with this holder and renewal time.
    fn observe(&mut self, holder: Option<String>, renewed: Option<MicroTime>) -> Instant {
        match &self.observed {
            Some((h, r, at)) if *h == holder && *r == renewed => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((holder, renewed, at));
                at
            }
        }
    }

    /// The outcome of writing the lease: a conflict means another replica wrote it first.
    fn written(&mut self, result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match result {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                self.observe(spec.holder_identity, spec.renew_time);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&mut self) {
        info!(lease = %self.name, identity = %self.identity, "waiting for the lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, "leading");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(lease = %self.name, error = %e, "could not read or write the lease")
                }
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Runs `work` while this process holds the lease, renewing it. Returns when `work` ends,
    /// or an error once the lease is lost (the process should then exit: a replica that lost
    /// the lease may have missed what its successor did).
    pub async fn lead<F: Future<Output = ()>>(&mut self, work: F) -> Result<(), LeaderError> {
        let mut work = std::pin::pin!(work);
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = &mut work => return Ok(()),
                () = tokio::time::sleep(RENEW_PERIOD) => {}
            }
            let why = match self.try_acquire_or_renew().await {
                Ok(true) => {
                    renewed = Instant::now();
                    continue;
                }
                Ok(false) => "another replica holds it".to_string(),
                Err(e) if renewed.elapsed() < RENEW_DEADLINE => {
                    warn!(lease = %self.name, error = %e, "could not renew the lease; retrying");
                    continue;
                }
                Err(e) => format!("not renewed for {RENEW_DEADLINE:?}: {e}"),
            };
            return Err(LeaderError::Lost {
                name: self.name.clone(),
                why,
            });
        }
    }
}

#[cfg(test)]
mod tests;
