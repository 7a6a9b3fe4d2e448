//! Spate's built-in operators, sources and sinks.

pub mod basic;
pub mod generator;
pub mod keyed;
pub mod sink;
pub mod window;
