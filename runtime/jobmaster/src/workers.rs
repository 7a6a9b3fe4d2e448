//! Clients of the job's workers, made once per worker and kept in its entry.

use std::time::Duration;

use anyhow::Context;
use spate_proto::v1::worker_client::WorkerClient;
use tonic::transport::Channel;

use crate::state::Shared;

pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn worker_client(
    shared: &Shared,
    worker_id: &str,
) -> anyhow::Result<WorkerClient<Channel>> {
    let address = {
        let state = shared.state.lock().await;
        let worker = state
            .workers
            .iter()
            .find(|w| w.id == worker_id)
            .with_context(|| format!("unknown worker {worker_id}"))?;
        if let Some(client) = &worker.client {
            return Ok(client.clone());
        }
        worker.control_address.clone()
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to worker {worker_id} at {address}"))?;
    let client = WorkerClient::new(channel);
    if let Some(worker) = shared.state.lock().await.worker_mut(worker_id) {
        worker.client = Some(client.clone());
    }
    Ok(client)
}
