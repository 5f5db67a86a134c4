//! Storage errors with stable codes. Messages never contain connection secrets.

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the operation for an operational reason.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data cannot be decoded (hand-edited or corrupt rows).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// Stable snake_case code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "storage_unavailable",
            Self::NotFound => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Corrupt(_) => "storage_corrupt",
            Self::Config(_) => "storage_config",
            Self::Migration(_) => "migration_failed",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => Self::Corrupt(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;
