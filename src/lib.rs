//! digital-channels-operator: enables Genesys Multicloud CX tenants for Digital Channels (Nexus).
//!
//! The folders show the architecture:
//! - [`api`]: the CRD types (`DigitalChannelsEnvironment`, `DigitalChannelsTenant`).
//! - [`upstream`]: one client per external system, behind traits, plus the shared HTTP layer.
//! - [`runbook`]: the runbook steps, shared by `provision`, `demo` and the controllers.
//! - [`simulator`]: the Genesys APIs served over HTTP, for `demo`, `simulate` and the tests
//!   (cargo feature `simulator`, on by default; the image is built without it).
//! - [`cli`]: the subcommands.
//! - [`fence`]: the leader fence every outgoing request passes.

#![forbid(unsafe_code)]
// No function over 60 lines (clippy.toml): code is read more than written.
#![warn(clippy::too_many_lines)]

pub mod api;
pub mod cli;
pub mod controller;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod fence;
#[cfg(feature = "simulator")]
pub mod local_postgres;
pub mod runbook;
pub mod secret;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod telemetry;
pub mod upstream;
