//! Cloud-neutral route model, the [`CloudProvider`] edge trait and its AWS and Azure
//! implementations, plus the pacing and retry machinery both clouds share.

pub mod aws;
pub mod azure;
pub mod counters;
pub mod error;
pub mod fence;
pub mod model;
pub mod pacing;
pub mod provider;
pub mod retry;

pub use counters::{ApiCounters, CallOutcome};
pub use error::{CloudError, ErrorKind};
pub use fence::{Unfenced, WriteFence};
pub use model::*;
pub use provider::{CloudProvider, WriteGranularity};
