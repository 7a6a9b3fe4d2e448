//! Clients of the job's workers. Each is made when its worker registers and connects on first
//! use, so looking one up never waits; RPCs take a copy of the clients they need and run
//! without anything of the job's record borrowed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use spate_proto::v1::worker_client::WorkerClient;
use tonic::transport::{Channel, Endpoint};

use crate::record::JobRecord;

pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that connects when first used, with the control path's time-outs.
pub fn lazy_client(address: &str) -> anyhow::Result<WorkerClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(RPC_TIMEOUT);
    Ok(WorkerClient::new(endpoint.connect_lazy()))
}

/// The clients of the registered workers, by worker id.
#[derive(Clone, Default)]
pub struct WorkerClients(BTreeMap<String, WorkerClient<Channel>>);

impl WorkerClients {
    pub fn of(record: &JobRecord) -> Self {
        WorkerClients(
            record
                .workers
                .iter()
                .map(|w| (w.id.clone(), w.client.clone()))
                .collect(),
        )
    }

    pub fn get(&self, worker_id: &str) -> anyhow::Result<WorkerClient<Channel>> {
        self.0
            .get(worker_id)
            .cloned()
            .with_context(|| format!("unknown worker {worker_id}"))
    }
}
