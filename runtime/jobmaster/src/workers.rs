//! Whether the job's workers live: what their resource manager saw end, whose heartbeats
//! stopped, whose control port refuses connections. A lost worker offers no slots and is
//! asked nothing more.

use std::time::Duration;

use futures::future::join_all;
use tracing::warn;

use crate::clients::RPC_TIMEOUT;
use crate::failover::{FailureCause, WorkerLoss};
use crate::owner::Owner;
use crate::placement::SlotRef;
use crate::record::JobRecord;
use crate::resources::ResourceManager;

const PROBE_ROUNDS: u32 = 5;
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The resource manager and the address its workers register at.
pub struct Workers<'a> {
    pub resources: &'a mut dyn ResourceManager,
    pub jobmaster: &'a str,
}

impl Workers<'_> {
    /// Marks the workers whose processes ended as lost; returns them.
    pub fn mark_exited(&mut self, record: &mut JobRecord) -> Vec<String> {
        let exited = self.resources.exited();
        for id in &exited {
            if let Some(worker) = record.worker_mut(id) {
                worker.lost = true;
            }
        }
        exited
    }

    /// Forgets the workers marked lost, and tells the resource manager to make sure they are gone.
    pub fn drop_lost(&mut self, record: &mut JobRecord) {
        for lost in record.workers.iter().filter(|w| w.lost) {
            self.resources.release(&lost.id);
        }
        record.workers.retain(|w| !w.lost);
    }

    /// Asks the resource manager for workers offering `needed` slots in all.
    pub fn require_slots(&mut self, needed: u32) {
        self.resources.require_slots(needed, self.jobmaster);
    }

    /// Asks for workers offering `needed` slots, after forgetting the lost ones; returns the
    /// slots the live workers offer.
    pub fn live_slots(
        &mut self,
        record: &mut JobRecord,
        needed: u32,
        heartbeat_timeout: Duration,
    ) -> Vec<SlotRef> {
        self.mark_exited(record);
        expire_silent_workers(record, heartbeat_timeout);
        self.drop_lost(record);
        self.require_slots(needed);
        record
            .workers
            .iter()
            .filter(|w| !w.lost)
            .flat_map(|w| {
                (0..w.slots).map(|slot| SlotRef {
                    worker_id: w.id.clone(),
                    data_address: w.data_address.clone(),
                    slot,
                })
            })
            .collect()
    }
}

/// Marks every worker silent for longer than `timeout` as lost, whatever the job is doing
/// (running, waiting for slots, failing to deploy): a worker that dies while it runs no task
/// must not keep offering slots. Returns each one newly lost, with the cause.
pub fn expire_silent_workers(
    record: &mut JobRecord,
    timeout: Duration,
) -> Vec<(String, FailureCause)> {
    let mut expired = Vec::new();
    for worker in record
        .workers
        .iter_mut()
        .filter(|w| !w.lost && w.last_heartbeat.elapsed() > timeout)
    {
        worker.lost = true;
        let cause = FailureCause::WorkerLost {
            worker: worker.describe(),
            why: WorkerLoss::NoHeartbeat(worker.last_heartbeat.elapsed()),
        };
        warn!(reason = %cause, "worker lost");
        expired.push((worker.id.clone(), cause));
    }
    expired
}

/// The first worker whose control port cannot be reached, marked lost, with its description.
/// A killed process closes its sockets one by one while it exits, so its data connections may
/// break (failing the tasks that read them) a moment before its control port goes: probe a few
/// times before concluding that every worker lives.
pub async fn unreachable_worker(owner: &mut Owner) -> Option<(String, String)> {
    let workers: Vec<(String, String, String)> = owner
        .view()
        .workers
        .iter()
        .map(|w| (w.id.clone(), w.describe(), w.control_address.clone()))
        .collect();
    let probe = async {
        for round in 0..PROBE_ROUNDS {
            if round > 0 {
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            let probes = workers.iter().map(|(id, name, address)| async move {
                let reachable = matches!(
                    tokio::time::timeout(RPC_TIMEOUT, tokio::net::TcpStream::connect(address))
                        .await,
                    Ok(Ok(_))
                );
                (!reachable).then_some((id, name))
            });
            if let Some(gone) = join_all(probes).await.into_iter().flatten().next() {
                return Some(gone);
            }
        }
        None
    };
    let (id, name) = owner.serve_until(probe).await?;
    if let Some(worker) = owner.record().worker_mut(id) {
        worker.lost = true;
    }
    Some((id.clone(), name.clone()))
}
