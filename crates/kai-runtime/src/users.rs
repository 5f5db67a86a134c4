//! User accounts: create, authenticate (Argon2id, off the async threads), change password,
//! profile, preferences, role, disable, delete.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use kai_core::policy::Role;
use kai_store::{Store, StoreError, UserRow};
use secrecy::{ExposeSecret as _, SecretString};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// User errors.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with that name already exists")]
    Exists,
    #[error("no such user")]
    NotFound,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::Exists,
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}

impl UserError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "bad_request",
            Self::Exists => "conflict",
            Self::NotFound => "not_found",
            Self::BadCredentials => "bad_credentials",
            Self::Disabled => "account_disabled",
            Self::Store(e) => e.code(),
        }
    }
}

/// Argon2id at OWASP's second recommended setting (m = 19 MiB, t = 2, p = 1).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (blocking; call from `spawn_blocking`).
pub fn hash_password(password: &SecretString) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(format!("cannot hash the password: {e}")))
}

fn verify_hash(hash: &str, password: &SecretString) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| hasher().verify_password(password.expose_secret().as_bytes(), &h).is_ok())
}

/// A hash of a random password, so a login for an unknown user costs what a real one does.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_password(&SecretString::from(hex::encode(rand::random::<[u8; 16]>()))).unwrap_or_default()
});

/// Checks a username: 2–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), UserError> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(
            "a username is 2 to 64 characters of a-z, 0-9, `.`, `_` and `-`".into(),
        ))
    }
}

fn check_password(p: &SecretString) -> Result<(), UserError> {
    let n = p.expose_secret().chars().count();
    if (MIN_PASSWORD_LEN..=1024).contains(&n) {
        Ok(())
    } else {
        Err(UserError::Invalid(format!("a password has {MIN_PASSWORD_LEN} to 1024 characters")))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UserError::Invalid(format!("worker failed: {e}")))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The user service.
pub struct Users {
    store: Arc<dyn Store>,
}

impl Users {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates a user.
    pub async fn create(
        &self,
        username: &str,
        password: &SecretString,
        role: Role,
    ) -> Result<UserRow, UserError> {
        check_username(username)?;
        check_password(password)?;
        if role == Role::Agent {
            return Err(UserError::Invalid("agents are not users; give them API tokens".into()));
        }
        let p = password.clone();
        let hash = blocking(move || hash_password(&p)).await??;
        let now = now_us();
        let user = UserRow {
            id: uuid::Uuid::now_v7().to_string(),
            username: username.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
            display_name: username.to_owned(),
            email: String::new(),
            preferences: "{}".into(),
            created_at_us: now,
            updated_at_us: now,
            disabled_at_us: None,
        };
        self.store.insert_user(&user).await?;
        Ok(user)
    }

    /// Checks a username and password. Unknown users cost the same as wrong passwords.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<UserRow, UserError> {
        let user = self.store.user_by_name(username).await?;
        let hash = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
        let p = password.clone();
        let ok = blocking(move || verify_hash(&hash, &p)).await?;
        match user {
            Some(u) if ok => {
                if u.disabled_at_us.is_some() {
                    return Err(UserError::Disabled);
                }
                Ok(u)
            }
            _ => Err(UserError::BadCredentials),
        }
    }

    pub async fn get(&self, id: &str) -> Result<UserRow, UserError> {
        self.store.user(id).await?.ok_or(UserError::NotFound)
    }

    pub async fn list(&self) -> Result<Vec<UserRow>, UserError> {
        Ok(self.store.users().await?)
    }

    /// Sets a new password. Users changing their own must give the current one.
    pub async fn set_password(
        &self,
        id: &str,
        current: Option<&SecretString>,
        new: &SecretString,
    ) -> Result<(), UserError> {
        check_password(new)?;
        let mut user = self.get(id).await?;
        if let Some(current) = current {
            let (hash, p) = (user.password_hash.clone(), current.clone());
            if !blocking(move || verify_hash(&hash, &p)).await? {
                return Err(UserError::BadCredentials);
            }
        }
        let p = new.clone();
        user.password_hash = blocking(move || hash_password(&p)).await??;
        user.updated_at_us = now_us();
        self.store.update_user(&user).await?;
        self.store.revoke_user_sessions(id, now_us()).await?;
        Ok(())
    }

    /// Applies `change` to the stored user and saves it.
    pub async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut UserRow) -> Result<(), UserError>,
    ) -> Result<UserRow, UserError> {
        let mut user = self.get(id).await?;
        change(&mut user)?;
        user.updated_at_us = now_us();
        self.store.update_user(&user).await?;
        if user.disabled_at_us.is_some() {
            self.store.revoke_user_sessions(id, now_us()).await?;
        }
        Ok(user)
    }

    pub async fn delete(&self, id: &str) -> Result<(), UserError> {
        Ok(self.store.delete_user(id).await?)
    }

    pub async fn count(&self) -> Result<u64, UserError> {
        Ok(self.store.count_users().await?)
    }
}
