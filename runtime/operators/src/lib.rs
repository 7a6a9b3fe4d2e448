//! Spate's built-in operators, sources and sinks.

pub mod keyed;
pub mod window;
