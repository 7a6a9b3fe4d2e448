//! Clients of the job's workers. Each is made when its worker registers and connects on first
//! use, so looking one up never waits; RPCs take a copy of the clients they need and run
//! without anything of the job's record borrowed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use spate_proto::v1::worker_client::WorkerClient;
use tonic::transport::{Channel, Endpoint};

use crate::record::JobRecord;

/// The deadline of connecting to a worker and of every control RPC but deployment.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Deployment's deadline. Inside the call the worker builds the job's graph (planning a job's
/// SQL takes seconds for a deep expression on a loaded machine) and downloads the state the task
/// restores, so a deadline made for small control messages would fail good deployments.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);

/// A worker's control clients, each connecting when first used: one for deployments and one
/// for every other call, each with its deadline. The deadlines are the channels' own, so the
/// JobMaster stops waiting but the worker is not told to: a call past its deadline still runs
/// to its end there (a per-call `grpc-timeout` would make the worker drop it half-way).
#[derive(Clone)]
pub struct ControlClient {
    calls: WorkerClient<Channel>,
    deploys: WorkerClient<Channel>,
}

impl ControlClient {
    pub fn lazy(address: &str) -> anyhow::Result<Self> {
        let client = |deadline| -> anyhow::Result<WorkerClient<Channel>> {
            let endpoint = Endpoint::from_shared(format!("http://{address}"))?
                .connect_timeout(RPC_TIMEOUT)
                .timeout(deadline);
            Ok(WorkerClient::new(endpoint.connect_lazy()))
        };
        Ok(ControlClient {
            calls: client(RPC_TIMEOUT)?,
            deploys: client(DEPLOY_TIMEOUT)?,
        })
    }
}

/// The clients of the registered workers, by worker id.
#[derive(Clone, Default)]
pub struct WorkerClients(BTreeMap<String, ControlClient>);

impl FromIterator<(String, ControlClient)> for WorkerClients {
    fn from_iter<I: IntoIterator<Item = (String, ControlClient)>>(clients: I) -> Self {
        WorkerClients(clients.into_iter().collect())
    }
}

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

    /// The client of every call but deployment.
    pub fn get(&self, worker_id: &str) -> anyhow::Result<WorkerClient<Channel>> {
        Ok(self.control(worker_id)?.calls.clone())
    }

    /// The client of deployments.
    pub fn deployer(&self, worker_id: &str) -> anyhow::Result<WorkerClient<Channel>> {
        Ok(self.control(worker_id)?.deploys.clone())
    }

    fn control(&self, worker_id: &str) -> anyhow::Result<&ControlClient> {
        self.0
            .get(worker_id)
            .with_context(|| format!("unknown worker {worker_id}"))
    }
}
