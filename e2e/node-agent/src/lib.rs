//! `spate-node-agent`: a kubelet stand-in for the e2e suite. It registers a Node with a real
//! API server and runs every pod the real scheduler binds to it as local processes, with the
//! pod's environment, volumes (as directories), service-account identity and a loopback
//! address of its own; see `e2e/node-agent/README.md`.

pub mod binaries;
pub mod downward;
pub mod env;
pub mod identity;
pub mod ip;
pub mod node;
pub mod pods;
pub mod probe;
pub mod process;
pub mod rewrite;
pub mod sources;
pub mod status;
pub mod volumes;
mod worker;
