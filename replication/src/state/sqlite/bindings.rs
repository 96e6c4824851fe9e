//! The AWS account and region each application's state is bound to: one row per application,
//! written once (the first binding wins).

use rusqlite::params;
use time::OffsetDateTime;

use super::Db;
use crate::clock::unix_ms;
use crate::state::{AccountBinding, StateError};

/// The application's recorded account and region, if any.
pub(super) fn binding(db: &Db<'_>, app: &str) -> Result<Option<AccountBinding>, StateError> {
    db.first(
        "read account binding",
        "SELECT account, region FROM account_bindings WHERE app = ?1",
        params![app],
        |r| {
            Ok(AccountBinding {
                account: r.get(0)?,
                region: r.get(1)?,
            })
        },
    )
}

/// Records the binding unless one exists (the first wins); returns the recorded one.
pub(super) fn bind(
    db: &Db<'_>,
    app: &str,
    proposed: &AccountBinding,
    now: OffsetDateTime,
) -> Result<AccountBinding, StateError> {
    db.execute(
        "bind account",
        "INSERT INTO account_bindings (app, account, region, bound_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (app) DO NOTHING",
        params![app, proposed.account, proposed.region, unix_ms(now)],
    )?;
    binding(db, app)?.ok_or_else(|| StateError::Corrupt {
        location: db.path.display().to_string(),
        table: "account_bindings",
        id: app.to_string(),
        what: "the binding just written cannot be read back".into(),
    })
}
