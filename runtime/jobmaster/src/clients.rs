//! Clients of the job's workers. Each is made when its worker registers and connects on first
//! use, so looking one up never waits; RPCs take a copy of the clients they need and run
//! without anything of the job's record borrowed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use spate_proto::v1::worker_client::WorkerClient;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::record::JobRecord;

/// The deadline of connecting to a worker and of every control RPC but deployment.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Deployment's deadline. Inside the call the worker builds the job's graph (planning a job's
/// SQL takes seconds for a deep expression on a loaded machine) and downloads the state the task
/// restores, so a deadline made for small control messages would fail good deployments.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);

/// A worker's control client: every call carries a deadline, [`RPC_TIMEOUT`] unless the call
/// set its own (`tonic::Request::set_timeout`).
pub type ControlClient = WorkerClient<InterceptedService<Channel, DefaultDeadline>>;

/// Gives a call without a deadline the control path's one.
#[derive(Clone, Copy, Debug)]
pub struct DefaultDeadline;

impl Interceptor for DefaultDeadline {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if !request.metadata().contains_key("grpc-timeout") {
            request.set_timeout(RPC_TIMEOUT);
        }
        Ok(request)
    }
}

/// A client that connects when first used. The deadline is per call rather than the channel's,
/// because tonic keeps the shorter of the two and deployment needs a longer one.
pub fn lazy_client(address: &str) -> anyhow::Result<ControlClient> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(RPC_TIMEOUT);
    Ok(WorkerClient::with_interceptor(
        endpoint.connect_lazy(),
        DefaultDeadline,
    ))
}

/// The clients of the registered workers, by worker id.
#[derive(Clone, Default)]
pub struct WorkerClients(BTreeMap<String, ControlClient>);

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

    pub fn get(&self, worker_id: &str) -> anyhow::Result<ControlClient> {
        self.0
            .get(worker_id)
            .cloned()
            .with_context(|| format!("unknown worker {worker_id}"))
    }
}
