//! The master key check: a wrong master key never serves (issue 12, item 6; migration
//! `20261208000020_master_key_check`).
//!
//! The database keeps, per master key id, a known constant sealed with that master key
//! (`app_private.master_key_checks`; AAD `serein-key-check v1|{id:08x}`). [`Keyring::connect`]
//! builds the keyring and runs `verify` before anything else uses it (serve, `serein keys
//! rotate`, `serein tenants purge`), in one transaction as the request role through the two
//! start-up definers (serving pods log in as a role that can only become `serein_app`):
//! 1. a check exists for the configured id (`SEREIN_MASTER_KEY`): it must open, else refuse;
//! 2. checks exist, none for this id: refuse, unless `SEREIN_PREVIOUS_MASTER_KEY` is configured
//!    and opens its check (a master rotation in progress: `serein keys rotate` records the new
//!    key's check, as the owner, in the transaction that re-wraps under it);
//! 3. no check at all (a fresh database, or the first start after the migration): when live
//!    tenant keys name the configured id, unwrapping one must succeed; when they name only
//!    other ids, refuse (or prove `SEREIN_PREVIOUS_MASTER_KEY` the same way, if they name its
//!    id); then record the first check. The database records only the first check and only for
//!    an id a live tenant key names (or when none is live): a wrong-key process never records
//!    a check that would lock the right ones out, and a race of two first starters leaves one
//!    check, against which the loser is checked again.
//! 4. then, live tenant keys still wrapped under a checked id that neither configured key is
//!    (the previous key dropped before `serein keys rotate` re-wrapped everything): refuse.
//!
//! Refusals are one line ([`KeyCheckError`]) naming the variable and the master key ids
//! involved (fingerprints: the first 4 bytes of SHA-256 over a label and the key), never key
//! material. `serein keys rotate` keeps the check current ([`record_current`],
//! [`prune`]): it records the current master's check with every tenant it re-wraps, and then
//! removes the checks of ids under which no live tenant key remains.

use sqlx::PgConnection;

use super::keyring::Keyring;
use super::master::MasterKey;
use super::sealed::{self, CryptoError};
use crate::db::{Db, SystemTx, TenantId};

/// The constant every check seals (26 bytes: the migration's length check depends on it).
const CHECK_PLAINTEXT: &[u8] = b"serein master key check v1";

/// The variable of the previous master key, as refusals name it.
const PREVIOUS: &str = "SEREIN_PREVIOUS_MASTER_KEY";

fn check_aad(id: u32) -> Vec<u8> {
    format!("serein-key-check v1|{id:08x}").into_bytes()
}

/// A fresh check sealed with `master`.
fn seal_check(master: &MasterKey) -> Result<Vec<u8>, CryptoError> {
    sealed::seal_with(
        &master.key,
        master.id,
        &check_aad(master.id),
        CHECK_PLAINTEXT,
    )
}

/// Does `blob` open under `master` as its check?
fn opens(master: &MasterKey, blob: &[u8]) -> bool {
    sealed::key_version(blob) == Some(master.id)
        && sealed::open_with(&master.key, &check_aad(master.id), blob)
            .is_ok_and(|p| p.as_slice() == CHECK_PLAINTEXT)
}

fn ids(list: &[u32]) -> String {
    let v: Vec<String> = list.iter().map(|i| format!("{i:08x}")).collect();
    v.join(", ")
}

/// Why a process refuses to start. Each is one line naming the key variable(s) and ids.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "{var} (master key id {id:08x}) does not open this database's key check for that id \
         (the check was altered, or another key shares the id); refusing to start"
    )]
    CheckDoesNotOpen { var: String, id: u32 },
    #[error(
        "{var} (master key id {id:08x}) is not this database's master key (its key check names \
         master key id {}); refusing to start (to rotate the master key, set the new key as \
         SEREIN_MASTER_KEY and the current one as SEREIN_PREVIOUS_MASTER_KEY, then run \
         `serein keys rotate`)", ids(.checked)
    )]
    NotTheDatabaseKey {
        var: String,
        id: u32,
        checked: Vec<u32>,
    },
    #[error(
        "neither {var} (master key id {id:08x}) nor SEREIN_PREVIOUS_MASTER_KEY (master key id \
         {previous:08x}) is this database's master key (its key check names master key id {}); \
         refusing to start", ids(.checked)
    )]
    NeitherIsTheDatabaseKey {
        var: String,
        id: u32,
        previous: u32,
        checked: Vec<u32>,
    },
    #[error(
        "{var} (master key id {id:08x}) is not this database's master key (its tenant keys are \
         wrapped under master key id {}); refusing to start", ids(.wrapping)
    )]
    NotTheTenantKeysMaster {
        var: String,
        id: u32,
        wrapping: Vec<u32>,
    },
    #[error(
        "{var} (master key id {id:08x}) does not unwrap the tenant keys that name its id; \
         refusing to start"
    )]
    DoesNotUnwrap { var: String, id: u32 },
    #[error(
        "tenant keys are still wrapped under master key id {}, which neither {var} (master key \
         id {id:08x}) nor SEREIN_PREVIOUS_MASTER_KEY is: configure that key as \
         SEREIN_PREVIOUS_MASTER_KEY until `serein keys rotate` has re-wrapped them; refusing to \
         start", ids(.stranded)
    )]
    StillWrappedUnderAnother {
        var: String,
        id: u32,
        stranded: Vec<u32>,
    },
    #[error("master key check: {0}")]
    Database(String),
    #[error("master key check: {0}")]
    Crypto(CryptoError),
}

impl From<sqlx::Error> for KeyCheckError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<CryptoError> for KeyCheckError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

/// What the check found (logged at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheckOutcome {
    /// The configured master key opened its check.
    Verified,
    /// The database had no check: this master key id's check was recorded.
    Recorded(u32),
    /// The previous master key opened its check; the current one has none yet (a master
    /// rotation in progress: `serein keys rotate` records it).
    RotationInProgress,
}

/// `app_private.master_key_check_state`, with ids as `u32`.
struct State {
    master_check: Option<Vec<u8>>,
    previous_check: Option<Vec<u8>>,
    checked: Vec<u32>,
    wrapping: Vec<u32>,
    sample: Option<(TenantId, String, i32, Vec<u8>)>,
}

fn id_db(id: u32) -> i64 {
    i64::from(id)
}

fn ids_u32(list: Vec<i64>) -> Result<Vec<u32>, CryptoError> {
    list.into_iter()
        .map(|i| u32::try_from(i).map_err(|_| CryptoError::Unreadable))
        .collect()
}

async fn state(
    conn: &mut PgConnection,
    master: u32,
    previous: Option<u32>,
) -> Result<State, KeyCheckError> {
    let row = sqlx::query!(
        r#"SELECT master_check, previous_check, checked_ids AS "checked_ids!",
                  key_ids AS "key_ids!", sample_tenant AS "sample_tenant: TenantId",
                  sample_purpose, sample_version, sample_wrapped
           FROM app_private.master_key_check_state($1, $2)"#,
        id_db(master),
        previous.map(id_db)
    )
    .fetch_one(conn)
    .await?;
    let sample = match (
        row.sample_tenant,
        row.sample_purpose,
        row.sample_version,
        row.sample_wrapped,
    ) {
        (Some(t), Some(p), Some(v), Some(w)) => Some((t, p, v, w)),
        _ => None,
    };
    Ok(State {
        master_check: row.master_check,
        previous_check: row.previous_check,
        checked: ids_u32(row.checked_ids)?,
        wrapping: ids_u32(row.key_ids)?,
        sample,
    })
}

/// Unwrap the state's sample tenant key with `master` (it must name `master`'s id).
fn proves(keyring: &Keyring, master: &MasterKey, st: &State) -> bool {
    let Some((tenant, purpose, version, wrapped)) = &st.sample else {
        return false;
    };
    let purpose = match purpose.as_str() {
        "data" => super::cache::Purpose::Data,
        "clinical" => super::cache::Purpose::Clinical,
        _ => return false,
    };
    sealed::key_version(wrapped) == Some(master.id)
        && u32::try_from(*version).is_ok_and(|v| {
            keyring
                .tenant_key_from_row(*tenant, purpose, v, wrapped)
                .is_ok()
        })
}

/// One pass of the check (module header); `Ok(None)`: another process recorded the first
/// check meanwhile, read again.
async fn verify_once(
    keyring: &Keyring,
    conn: &mut PgConnection,
    var: &str,
) -> Result<Option<KeyCheckOutcome>, KeyCheckError> {
    let current = keyring.master();
    let previous = keyring.previous_master();
    let st = state(conn, current.id, previous.map(|p| p.id)).await?;
    let var_s = var.to_owned();
    let outcome = if let Some(blob) = &st.master_check {
        if !opens(current, blob) {
            return Err(KeyCheckError::CheckDoesNotOpen {
                var: var_s,
                id: current.id,
            });
        }
        KeyCheckOutcome::Verified
    } else if !st.checked.is_empty() {
        match (previous, &st.previous_check) {
            (Some(p), Some(blob)) if opens(p, blob) => KeyCheckOutcome::RotationInProgress,
            (Some(p), Some(_)) => {
                return Err(KeyCheckError::CheckDoesNotOpen {
                    var: PREVIOUS.to_owned(),
                    id: p.id,
                });
            }
            (Some(p), None) => {
                return Err(KeyCheckError::NeitherIsTheDatabaseKey {
                    var: var_s,
                    id: current.id,
                    previous: p.id,
                    checked: st.checked,
                });
            }
            (None, _) => {
                return Err(KeyCheckError::NotTheDatabaseKey {
                    var: var_s,
                    id: current.id,
                    checked: st.checked,
                });
            }
        }
    } else {
        // No check at all: prove the key the live tenant keys name, then record its check.
        let (key, key_var) = if st.wrapping.is_empty() || st.wrapping.contains(&current.id) {
            (current, var)
        } else {
            match previous {
                Some(p) if st.wrapping.contains(&p.id) => (p, PREVIOUS),
                _ => {
                    return Err(KeyCheckError::NotTheTenantKeysMaster {
                        var: var_s,
                        id: current.id,
                        wrapping: st.wrapping,
                    });
                }
            }
        };
        if !st.wrapping.is_empty() && !proves(keyring, key, &st) {
            return Err(KeyCheckError::DoesNotUnwrap {
                var: key_var.to_owned(),
                id: key.id,
            });
        }
        let check = seal_check(key)?;
        let recorded = sqlx::query_scalar!(
            r#"SELECT app_private.master_key_check_record($1, $2, $3) AS "recorded!""#,
            id_db(key.id),
            &check,
            keyring.clock_now()
        )
        .fetch_one(&mut *conn)
        .await?;
        if !recorded {
            return Ok(None);
        }
        if key.id == current.id {
            KeyCheckOutcome::Recorded(key.id)
        } else {
            KeyCheckOutcome::RotationInProgress
        }
    };
    let stranded: Vec<u32> = st
        .wrapping
        .iter()
        .copied()
        .filter(|i| *i != current.id && Some(*i) != previous.map(|p| p.id))
        .filter(|i| st.checked.contains(i))
        .collect();
    if !stranded.is_empty() {
        return Err(KeyCheckError::StillWrappedUnderAnother {
            var: var_s,
            id: current.id,
            stranded,
        });
    }
    Ok(Some(outcome))
}

/// Check the keyring's master key against the database (module header). `var` names the
/// current master key's source in refusals.
#[tracing::instrument(skip_all)]
pub(crate) async fn verify(
    keyring: &Keyring,
    db: &Db,
    var: &str,
) -> Result<KeyCheckOutcome, KeyCheckError> {
    // Two passes at most: a lost race to record the first check is checked against the winner.
    for _ in 0..2 {
        let mut tx = SystemTx::begin(db)
            .await
            .map_err(|e| KeyCheckError::Database(e.to_string()))?;
        if let Some(outcome) = verify_once(keyring, &mut tx, var).await? {
            tx.commit()
                .await
                .map_err(|e| KeyCheckError::Database(e.to_string()))?;
            match outcome {
                KeyCheckOutcome::Verified => {}
                KeyCheckOutcome::Recorded(id) => tracing::info!(
                    master_key_id = %format_args!("{id:08x}"),
                    "recorded the database's master key check"
                ),
                KeyCheckOutcome::RotationInProgress => tracing::warn!(
                    "master key rotation in progress: SEREIN_PREVIOUS_MASTER_KEY opened the \
                     key check; run `serein keys rotate` to re-wrap under SEREIN_MASTER_KEY"
                ),
            }
            return Ok(outcome);
        }
    }
    Err(KeyCheckError::Database(
        "the key check changed twice while it was read; retry".to_owned(),
    ))
}

/// Record the current master's check unless it has one, on the OWNER's connection inside the
/// caller's transaction (`serein keys rotate`, with the re-wrap under that master).
pub async fn record_current(keyring: &Keyring, conn: &mut PgConnection) -> Result<(), CryptoError> {
    let master = keyring.master();
    let check = seal_check(master)?;
    sqlx::query!(
        "INSERT INTO app_private.master_key_checks (master_id, sealed_check, created_at)
         VALUES ($1, $2, $3) ON CONFLICT (master_id) DO NOTHING",
        id_db(master.id),
        &check,
        keyring.clock_now()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Remove the checks of master ids other than the current one under which no live tenant key
/// remains (OWNER's connection, after a rotation); returns the ids removed.
pub async fn prune(keyring: &Keyring, conn: &mut PgConnection) -> Result<Vec<u32>, CryptoError> {
    let removed = sqlx::query_scalar!(
        r#"DELETE FROM app_private.master_key_checks c
           WHERE c.master_id <> $1
             AND NOT EXISTS (SELECT 1 FROM tenant_keys k
                             WHERE k.wrapped_key IS NOT NULL
                               AND app_private.sealed_key_version(k.wrapped_key) = c.master_id)
           RETURNING c.master_id"#,
        id_db(keyring.master().id)
    )
    .fetch_all(conn)
    .await?;
    ids_u32(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_check_opens_under_its_own_key_only_and_is_not_a_wrapped_key() {
        let (a, b) = (MasterKey::new(&[1; 32]), MasterKey::new(&[2; 32]));
        let check = seal_check(&a).unwrap();
        assert_eq!(check.len(), 59, "the migration's length check");
        assert_eq!(sealed::key_version(&check), Some(a.id));
        assert!(opens(&a, &check));
        assert!(!opens(&b, &check));
        // Relabelled with another id, or one byte flipped: refused.
        let mut relabelled = check.clone();
        relabelled[1..5].copy_from_slice(&b.id.to_be_bytes());
        assert!(!opens(&a, &relabelled));
        let mut flipped = check.clone();
        flipped[30] ^= 1;
        assert!(!opens(&a, &flipped));
        // A blob sealed with the master under another AAD (a wrapped key's) is no check.
        let other = sealed::seal_with(&a.key, a.id, b"serein-key v1|x", CHECK_PLAINTEXT).unwrap();
        assert!(!opens(&a, &other));
    }

    #[test]
    fn refusals_name_the_variable_and_ids_in_one_line() {
        let e = KeyCheckError::NotTheDatabaseKey {
            var: "SEREIN_MASTER_KEY".into(),
            id: 0xab,
            checked: vec![0x1234_5678],
        }
        .to_string();
        assert!(
            e.contains("SEREIN_MASTER_KEY (master key id 000000ab)") && e.contains("12345678"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
