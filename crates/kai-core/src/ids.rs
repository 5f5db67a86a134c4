//! Identifier newtypes (UUIDv7, so they sort by creation time).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies one event on the bus and in the event log.
    EventId
);
uuid_id!(
    /// Identifies a task (a goal submitted to the node).
    TaskId
);
uuid_id!(
    /// Identifies an API token.
    TokenId
);
uuid_id!(
    /// Identifies one job of the durable queue (one unit of work, e.g. a step of a task).
    JobId
);
uuid_id!(
    /// Identifies one claim of a job: the fencing token a worker presents with every
    /// heartbeat, completion or failure. A new claim of the same job gets a new one.
    LeaseId
);
