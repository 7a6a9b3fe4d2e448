//! The operator's view of a JobMaster's gRPC service (`spate.v1.JobMaster`): read the job's
//! status, take a savepoint. A trait, so that the reconciler tests need no network.

use std::time::Duration;

use futures::future::BoxFuture;
use spate_proto::v1::job_master_client::JobMasterClient;
use spate_proto::v1::{GetJobStatusRequest, JobStatus, TriggerSavepointRequest};
use tonic::transport::Endpoint;

/// A completed savepoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Savepoint {
    pub id: u64,
    /// Its directory in checkpoint storage, as `--from` takes it.
    pub location: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to the JobMaster at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("the JobMaster at {address} answered {code:?}: {message}")]
    Call {
        address: String,
        code: tonic::Code,
        message: String,
    },
    #[error("the JobMaster at {address} did not answer within {after:?}")]
    Timeout { address: String, after: Duration },
}

/// `call` to the JobMaster at `address`, given up after `limit`.
pub async fn within<T>(
    limit: Duration,
    address: &str,
    call: BoxFuture<'_, Result<T, RpcError>>,
) -> Result<T, RpcError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(RpcError::Timeout {
            address: address.to_string(),
            after: limit,
        })
    })
}

/// Calls to one job's JobMaster at `address` (`host:port`).
pub trait JobMasterApi: Send + Sync {
    fn job_status<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<JobStatus, RpcError>>;

    /// Takes a savepoint and returns once it is complete; with `stop`, the job then ends in
    /// STOPPED with nothing committed after the savepoint.
    fn trigger_savepoint<'a>(
        &'a self,
        address: &'a str,
        stop: bool,
    ) -> BoxFuture<'a, Result<Savepoint, RpcError>>;
}

/// The real client: a new connection per call. Calls are a few per job every few seconds, and
/// the JobMaster's address changes whenever its pod is replaced, so nothing is worth caching.
pub struct GrpcJobMaster;

/// Longest wait for a connection to a JobMaster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect(address: &str) -> Result<JobMasterClient<tonic::transport::Channel>, RpcError> {
    let connect_error = |message: String| RpcError::Connect {
        address: address.to_string(),
        message,
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| connect_error(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    Ok(JobMasterClient::new(channel))
}

fn call_error(address: &str) -> impl FnOnce(tonic::Status) -> RpcError + '_ {
    move |status| RpcError::Call {
        address: address.to_string(),
        code: status.code(),
        message: status.message().to_string(),
    }
}

impl JobMasterApi for GrpcJobMaster {
    fn job_status<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<JobStatus, RpcError>> {
        Box::pin(async move {
            let mut client = connect(address).await?;
            let response = client
                .get_job_status(GetJobStatusRequest {})
                .await
                .map_err(call_error(address))?;
            Ok(response.into_inner())
        })
    }

    fn trigger_savepoint<'a>(
        &'a self,
        address: &'a str,
        stop: bool,
    ) -> BoxFuture<'a, Result<Savepoint, RpcError>> {
        Box::pin(async move {
            let mut client = connect(address).await?;
            let response = client
                .trigger_savepoint(TriggerSavepointRequest { stop })
                .await
                .map_err(call_error(address))?
                .into_inner();
            Ok(Savepoint {
                id: response.checkpoint_id,
                location: response.location,
            })
        })
    }
}
