//! The Kubernetes operator of Spate: the `StreamJob` custom resource and its controller.

pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod resources;
pub mod status;
pub mod telemetry;

#[cfg(test)]
mod fixtures;
