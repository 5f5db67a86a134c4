//! SQL for the vault, users and sessions, shared by both backends like `sql.rs`.

macro_rules! impl_security_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn item_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::VaultItemRow> {
                use sqlx::Row as _;
                Ok($crate::VaultItemRow {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    name_hmac: r.try_get("name_hmac")?,
                    sealed_name: r.try_get("sealed_name")?,
                    policy: r.try_get("policy")?,
                    current_version: r.try_get("current_version")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }

            fn version_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::VaultVersionRow> {
                use sqlx::Row as _;
                Ok($crate::VaultVersionRow {
                    item_id: r.try_get("item_id")?,
                    version: r.try_get("version")?,
                    generation: r.try_get("generation")?,
                    sealed: r.try_get("sealed")?,
                    created_at_us: r.try_get("created_at_us")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                    created_by: r.try_get("created_by")?,
                })
            }

            fn user_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::UserRow> {
                use sqlx::Row as _;
                Ok($crate::UserRow {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                    password_hash: r.try_get("password_hash")?,
                    role: r.try_get("role")?,
                    display_name: r.try_get("display_name")?,
                    email: r.try_get("email")?,
                    preferences: r.try_get("preferences")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                    disabled_at_us: r.try_get("disabled_at_us")?,
                })
            }

            fn refresh_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::RefreshRow> {
                use sqlx::Row as _;
                Ok($crate::RefreshRow {
                    token_hash: $crate::sql::arr(r.try_get("token_hash")?, "token_hash")?,
                    session_id: r.try_get("session_id")?,
                    issued_at_us: r.try_get("issued_at_us")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                    used_at_us: r.try_get("used_at_us")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::VaultStore for $store {
            async fn vault_header(&self) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT header FROM vault_header WHERE id = 1").fetch_optional(&mut *self.read_conn().await?).await?)
            }

            async fn put_vault_header(&self, header: &str, at_us: i64) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO vault_header (id, header, updated_at_us) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET header = excluded.header, updated_at_us = excluded.updated_at_us",
                )
                .bind(header)
                .bind(at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn insert_vault_item(
                &self,
                item: &$crate::VaultItemRow,
                first: &$crate::VaultVersionRow,
            ) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query(
                    "INSERT INTO vault_items (id, kind, name_hmac, sealed_name, policy, current_version, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&item.id)
                .bind(&item.kind)
                .bind(&item.name_hmac)
                .bind(&item.sealed_name)
                .bind(&item.policy)
                .bind(item.current_version)
                .bind(item.created_at_us)
                .execute(&mut *tx)
                .await?;
                Self::insert_version(&mut tx, first).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn add_vault_version(&self, v: &$crate::VaultVersionRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                Self::insert_version(&mut tx, v).await?;
                let done = sqlx::query("UPDATE vault_items SET current_version = $1 WHERE id = $2")
                    .bind(v.version)
                    .bind(&v.item_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn vault_items(&self, kind: &str) -> $crate::StoreResult<Vec<$crate::VaultItemRow>> {
                let rows = sqlx::query("SELECT * FROM vault_items WHERE kind = $1 ORDER BY created_at_us, id")
                    .bind(kind)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::item_from_row).collect()
            }

            async fn all_vault_items(&self) -> $crate::StoreResult<Vec<$crate::VaultItemRow>> {
                let rows = sqlx::query("SELECT * FROM vault_items ORDER BY created_at_us, id").fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::item_from_row).collect()
            }

            async fn vault_item(&self, id: &str) -> $crate::StoreResult<Option<$crate::VaultItemRow>> {
                let row = sqlx::query("SELECT * FROM vault_items WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::item_from_row).transpose()
            }

            async fn vault_versions(&self, item_id: &str) -> $crate::StoreResult<Vec<$crate::VaultVersionRow>> {
                let rows = sqlx::query("SELECT * FROM vault_versions WHERE item_id = $1 ORDER BY version")
                    .bind(item_id)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::version_from_row).collect()
            }

            async fn vault_version(&self, item_id: &str, version: i64) -> $crate::StoreResult<Option<$crate::VaultVersionRow>> {
                let row = sqlx::query("SELECT * FROM vault_versions WHERE item_id = $1 AND version = $2")
                    .bind(item_id)
                    .bind(version)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await?;
                row.as_ref().map(Self::version_from_row).transpose()
            }

            async fn set_vault_policy(&self, item_id: &str, policy: &str) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE vault_items SET policy = $1 WHERE id = $2")
                    .bind(policy)
                    .bind(item_id)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_vault_item(&self, item_id: &str) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("DELETE FROM vault_versions WHERE item_id = $1").bind(item_id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM vault_items WHERE id = $1").bind(item_id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn vault_versions_before(&self, generation: i64, limit: u32) -> $crate::StoreResult<Vec<$crate::VaultVersionRow>> {
                let rows = sqlx::query("SELECT * FROM vault_versions WHERE generation < $1 ORDER BY item_id, version LIMIT $2")
                    .bind(generation)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::version_from_row).collect()
            }

            async fn reseal_vault(
                &self,
                versions: &[$crate::VaultVersionRow],
                items: &[$crate::VaultItemRow],
            ) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                for v in versions {
                    sqlx::query("UPDATE vault_versions SET sealed = $1, generation = $2 WHERE item_id = $3 AND version = $4")
                        .bind(&v.sealed)
                        .bind(v.generation)
                        .bind(&v.item_id)
                        .bind(v.version)
                        .execute(&mut *tx)
                        .await?;
                }
                for i in items {
                    sqlx::query("UPDATE vault_items SET sealed_name = $1, name_hmac = $2 WHERE id = $3")
                        .bind(&i.sealed_name)
                        .bind(&i.name_hmac)
                        .bind(&i.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }
        }

        impl $store {
            async fn insert_version(
                tx: &mut sqlx::Transaction<'_, $db>,
                v: &$crate::VaultVersionRow,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO vault_versions (item_id, version, generation, sealed, created_at_us, expires_at_us, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&v.item_id)
                .bind(v.version)
                .bind(v.generation)
                .bind(&v.sealed)
                .bind(v.created_at_us)
                .bind(v.expires_at_us)
                .bind(&v.created_by)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::UserStore for $store {
            async fn insert_user(&self, u: &$crate::UserRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, role, display_name, email, preferences, \
                     created_at_us, updated_at_us, disabled_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(&u.role)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(&u.preferences)
                .bind(u.created_at_us)
                .bind(u.updated_at_us)
                .bind(u.disabled_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn user(&self, id: &str) -> $crate::StoreResult<Option<$crate::UserRow>> {
                let row = sqlx::query("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn user_by_name(&self, username: &str) -> $crate::StoreResult<Option<$crate::UserRow>> {
                let row = sqlx::query("SELECT * FROM users WHERE username = $1").bind(username).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn users(&self) -> $crate::StoreResult<Vec<$crate::UserRow>> {
                let rows = sqlx::query("SELECT * FROM users ORDER BY created_at_us, id").fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::user_from_row).collect()
            }

            async fn update_user(&self, u: &$crate::UserRow) -> $crate::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE users SET username = $1, password_hash = $2, role = $3, display_name = $4, email = $5, \
                     preferences = $6, updated_at_us = $7, disabled_at_us = $8 WHERE id = $9",
                )
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(&u.role)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(&u.preferences)
                .bind(u.updated_at_us)
                .bind(u.disabled_at_us)
                .bind(&u.id)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_user(&self, id: &str) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn count_users(&self) -> $crate::StoreResult<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *self.read_conn().await?).await?;
                $crate::sql::u64_of(n, "count")
            }
        }

        #[async_trait::async_trait]
        impl $crate::SessionStore for $store {
            async fn insert_session(&self, s: &$crate::SessionRow, r: &$crate::RefreshRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("INSERT INTO sessions (id, user_id, created_at_us, revoked_at_us) VALUES ($1, $2, $3, $4)")
                    .bind(&s.id)
                    .bind(&s.user_id)
                    .bind(s.created_at_us)
                    .bind(s.revoked_at_us)
                    .execute(&mut *tx)
                    .await?;
                Self::insert_refresh(&mut tx, r).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn session(&self, id: &str) -> $crate::StoreResult<Option<$crate::SessionRow>> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT * FROM sessions WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.map(|r| {
                    Ok($crate::SessionRow {
                        id: r.try_get("id")?,
                        user_id: r.try_get("user_id")?,
                        created_at_us: r.try_get("created_at_us")?,
                        revoked_at_us: r.try_get("revoked_at_us")?,
                    })
                })
                .transpose()
            }

            async fn revoke_session(&self, id: &str, at_us: i64) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
                    .bind(at_us)
                    .bind(id)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }

            async fn revoke_user_sessions(&self, user_id: &str, at_us: i64) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE user_id = $2 AND revoked_at_us IS NULL")
                    .bind(at_us)
                    .bind(user_id)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }

            async fn use_refresh_token(&self, hash: &[u8; 32], at_us: i64) -> $crate::StoreResult<Option<$crate::RefreshRow>> {
                let row = sqlx::query(
                    "UPDATE refresh_tokens SET used_at_us = $1 WHERE token_hash = $2 AND used_at_us IS NULL RETURNING *",
                )
                .bind(at_us)
                .bind(hash.to_vec())
                .fetch_optional(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                row.as_ref().map(Self::refresh_from_row).transpose()
            }

            async fn refresh_token(&self, hash: &[u8; 32]) -> $crate::StoreResult<Option<$crate::RefreshRow>> {
                let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
                    .bind(hash.to_vec())
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await?;
                row.as_ref().map(Self::refresh_from_row).transpose()
            }

            async fn insert_refresh_token(&self, r: &$crate::RefreshRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                Self::insert_refresh(&mut tx, r).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }
        }

        impl $store {
            async fn insert_usage(tx: &mut sqlx::Transaction<'_, $db>, u: &$crate::UsageRow) -> $crate::StoreResult<()> {
                sqlx::query(&format!("{} VALUES ($1, $2, $3, $4, $5, $6, $7)", $crate::sql_security::INSERT_USAGE))
                .bind(&u.id)
                .bind(u.at_us)
                .bind(&u.principal)
                .bind(&u.persona)
                .bind(u.prompt_tokens)
                .bind(u.completion_tokens)
                .bind(u.cost_micros)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn insert_refresh(tx: &mut sqlx::Transaction<'_, $db>, r: &$crate::RefreshRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, issued_at_us, expires_at_us, used_at_us) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(r.token_hash.to_vec())
                .bind(&r.session_id)
                .bind(r.issued_at_us)
                .bind(r.expires_at_us)
                .bind(r.used_at_us)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::UsageStore for $store {
            async fn record_usage(&self, u: &$crate::UsageRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                Self::insert_usage(&mut tx, u).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn usage_totals(&self, principal: Option<&str>, since_us: i64) -> $crate::StoreResult<Vec<$crate::UsageTotal>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT principal, persona, COUNT(*) AS calls, CAST(SUM(prompt_tokens) AS BIGINT) AS p, \
                     CAST(SUM(completion_tokens) AS BIGINT) AS c, CAST(SUM(cost_micros) AS BIGINT) AS cost FROM llm_usage \
                     WHERE at_us >= $1 AND ($2 IS NULL OR principal = $2) GROUP BY principal, persona ORDER BY principal, persona",
                )
                .bind(since_us)
                .bind(principal)
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::UsageTotal {
                            principal: r.try_get("principal")?,
                            persona: r.try_get("persona")?,
                            calls: r.try_get("calls")?,
                            prompt_tokens: r.try_get("p")?,
                            completion_tokens: r.try_get("c")?,
                            cost_micros: r.try_get("cost")?,
                        })
                    })
                    .collect()
            }

            async fn spent_since(&self, principal: &str, since_us: i64) -> $crate::StoreResult<$crate::Spent> {
                use sqlx::Row as _;
                let r = sqlx::query(
                    "SELECT CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) AS t, CAST(SUM(cost_micros) AS BIGINT) AS c \
                     FROM llm_usage WHERE principal = $1 AND at_us >= $2",
                )
                .bind(principal)
                .bind(since_us)
                .fetch_one(&mut *self.read_conn().await?)
                .await?;
                Ok($crate::Spent {
                    tokens: r.try_get::<Option<i64>, _>("t")?.unwrap_or(0),
                    cost_micros: r.try_get::<Option<i64>, _>("c")?.unwrap_or(0),
                })
            }
        }
    };
}

pub(crate) use impl_security_store;

/// The head of an `llm_usage` insert; its values are the id, time, principal, persona, prompt
/// and completion tokens and cost, in that order.
pub(crate) const INSERT_USAGE: &str = "INSERT INTO llm_usage (id, at_us, principal, persona, prompt_tokens, completion_tokens, cost_micros)";
