//! Committing a transaction another process left pre-committed: the one step of the sink's
//! two-phase commit that Kafka's clients do not offer. A producer asks the coordinator for its
//! id and epoch (`InitProducerId`) when it starts, and that aborts whatever its transactional
//! id left open, so a restarted sink cannot commit through a producer. Flink sets the stored id
//! and epoch into its producer by reflection; here the stored transaction is ended directly
//! with `EndTxn(commit)`, sent to its coordinator with krafka's wire-protocol layer (its
//! `internal` feature, outside krafka's semver promise, hence the exact version pin).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use krafka::__private::network::{BrokerConnection, ConnectionConfig};
use krafka::__private::protocol::{
    ApiKey, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    VersionedDecode, VersionedEncode, versions,
};
use krafka::error::{ErrorCode, KrafkaError};

use super::prepared::Prepared;

/// How long a commit is retried while the coordinator is moving, loading or busy.
const COMMIT_RETRIES_FOR: Duration = Duration::from_secs(60);
/// The first `EndTxn` version with transaction version 2's semantics (KIP-890); a transaction
/// of version 1 must be ended below it.
const TV2_END_TXN: i16 = 5;

/// What became of a pre-committed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    Committed,
    /// The coordinator no longer holds it open under the stored epoch: it was committed before
    /// (by the notice of its checkpoint, or an earlier restore), or aborted when its
    /// `transaction.timeout.ms` ran out.
    NoLongerOpen(ErrorCode),
}

/// Commits `prepared` on the brokers at `bootstrap`, retrying while the coordinator is not
/// ready. Idempotent: committing it again answers `NoLongerOpen` (or `Committed`, for a retry
/// the coordinator recognizes).
pub async fn commit(bootstrap: &str, prepared: &Prepared) -> Result<Resumed, KrafkaError> {
    let attempt = || async {
        let coordinator = coordinator(bootstrap, &prepared.transactional_id).await?;
        end_transaction(&coordinator, prepared).await
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(2))
                .with_total_delay(Some(COMMIT_RETRIES_FOR))
                .without_max_times(),
        )
        .when(KrafkaError::is_retriable)
        .notify(|error, after| {
            tracing::debug!(transactional_id = %prepared.transactional_id, %error, ?after, "commit of a restored transaction retried");
        })
        .await
}

/// A connection to the coordinator of `transactional_id`, found through the first broker of
/// `bootstrap` that answers.
async fn coordinator(
    bootstrap: &str,
    transactional_id: &str,
) -> Result<BrokerConnection, KrafkaError> {
    let mut last = None;
    for address in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match find_coordinator(address, transactional_id).await {
            Ok(found) => return connect(&found).await,
            Err(error) if error.is_retriable() => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| KrafkaError::config("no broker in properties.bootstrap.servers")))
}

async fn connect(address: &str) -> Result<BrokerConnection, KrafkaError> {
    let config = ConnectionConfig::builder().client_id("spate").build()?;
    BrokerConnection::connect(address, config).await
}

async fn find_coordinator(address: &str, transactional_id: &str) -> Result<String, KrafkaError> {
    let connection = connect(address).await?;
    let version = negotiate(
        &connection,
        ApiKey::FindCoordinator,
        versions::FIND_COORDINATOR_MIN,
        versions::FIND_COORDINATOR_MAX,
    )?;
    let request = FindCoordinatorRequest::for_transaction(transactional_id);
    let mut bytes = connection
        .send_request(ApiKey::FindCoordinator, version, |buf| {
            request.encode_versioned(version, buf)
        })
        .await?;
    let response = FindCoordinatorResponse::decode_versioned(version, &mut bytes)?;
    if !response.error_code.is_ok() {
        return Err(KrafkaError::broker(
            response.error_code,
            "finding the transaction coordinator",
        ));
    }
    Ok(format!("{}:{}", response.host, response.port))
}

async fn end_transaction(
    coordinator: &BrokerConnection,
    prepared: &Prepared,
) -> Result<Resumed, KrafkaError> {
    // The version decides the semantics: a transaction is ended under the transaction version
    // its producer used.
    let (min, max) = if prepared.transaction_v2 {
        (TV2_END_TXN, versions::END_TXN_MAX)
    } else {
        (versions::END_TXN_MIN, TV2_END_TXN - 1)
    };
    let version = negotiate(coordinator, ApiKey::EndTxn, min, max)?;
    let request = EndTxnRequest::commit(
        prepared.transactional_id.clone(),
        prepared.producer_id,
        prepared.producer_epoch,
    );
    let mut bytes = coordinator
        .send_request(ApiKey::EndTxn, version, |buf| {
            request.encode_versioned(version, buf)
        })
        .await?;
    let response = EndTxnResponse::decode_versioned(version, &mut bytes)?;
    match response.error_code {
        code if code.is_ok() => Ok(Resumed::Committed),
        // A later epoch holds the id (TV2 bumps it with every commit; a producer started on the
        // id bumps it too), the transaction is complete, or the id expired: nothing is open
        // under the stored epoch any more.
        code @ (ErrorCode::ProducerFenced
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::InvalidTxnState
        | ErrorCode::TransactionalIdNotFound
        | ErrorCode::InvalidProducerIdMapping) => Ok(Resumed::NoLongerOpen(code)),
        code => Err(KrafkaError::broker(
            code,
            "committing a restored transaction",
        )),
    }
}

fn negotiate(
    connection: &BrokerConnection,
    api: ApiKey,
    min: i16,
    max: i16,
) -> Result<i16, KrafkaError> {
    connection
        .negotiate_api_version(api, max, min)
        .ok_or_else(|| {
            KrafkaError::broker(
                ErrorCode::UnsupportedVersion,
                format!("the broker speaks no {api:?} version in {min}..={max}"),
            )
        })
}
