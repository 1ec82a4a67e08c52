//! One client per external system, each behind a trait so tests can swap it, plus the
//! shared HTTP layer (timeouts, retries, `Retry-After`, error classification).

pub mod environment;
pub mod error;
pub mod gws_auth;
pub mod http;
mod json;
pub mod nexus;
pub mod nexus_db;

pub use environment::{EnvironmentApi, EnvironmentClient};
pub use error::{ErrorKind, System, UpstreamError};
pub use gws_auth::{GwsAuthApi, GwsAuthClient};
pub use http::{HttpClient, HttpConfig, RetryPolicy};
pub use nexus::{NexusApi, NexusClient};
pub use nexus_db::{NexusDb, PgNexusDb};
