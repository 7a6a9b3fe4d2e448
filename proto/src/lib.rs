//! Generated types and gRPC stubs of `spate.v1`, the JobMaster <-> worker contract.

pub mod v1 {
    tonic::include_proto!("spate.v1");
}
