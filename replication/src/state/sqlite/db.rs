//! The SQL plumbing every record module shares: a connection with its file (for messages),
//! rows read into records or named as corrupt, and one-transaction writes.

use std::path::Path;

use rusqlite::{Connection, Params, Row};

use crate::state::{StateError, StoredText};

/// A connection (or a transaction) and the file it belongs to, for error messages.
pub(super) struct Db<'a> {
    pub(super) conn: &'a Connection,
    pub(super) path: &'a Path,
}

/// Why a row could not be read: SQLite failed, or the row holds something this rehost cannot
/// read (unknown status text, a malformed JSON column or manifest).
pub(super) enum RowError {
    Sql(rusqlite::Error),
    Corrupt {
        table: &'static str,
        id: String,
        what: String,
    },
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> RowError {
        RowError::Sql(e)
    }
}

/// Reads stored status text, or names the row holding text this rehost does not know.
pub(super) fn stored<T: StoredText>(
    table: &'static str,
    id: &str,
    column: &str,
    text: &str,
) -> Result<T, RowError> {
    T::from_text(text).ok_or_else(|| RowError::Corrupt {
        table,
        id: id.to_string(),
        what: format!("unknown {column} '{text}'"),
    })
}

/// Reads a JSON column, or names the row holding a malformed one.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: &str,
    column: &str,
    text: &str,
) -> Result<T, RowError> {
    serde_json::from_str(text).map_err(|e| RowError::Corrupt {
        table,
        id: id.to_string(),
        what: format!("{column} is not valid JSON: {e}"),
    })
}

impl Db<'_> {
    pub(super) fn sql(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Sql {
            path: self.path.to_path_buf(),
            operation,
            source,
        }
    }

    pub(super) fn row_error(&self, operation: &'static str, e: RowError) -> StateError {
        match e {
            RowError::Sql(source) => self.sql(operation)(source),
            RowError::Corrupt { table, id, what } => StateError::Corrupt {
                location: self.path.display().to_string(),
                table,
                id,
                what,
            },
        }
    }

    pub(super) fn execute<P: Params>(
        &self,
        operation: &'static str,
        sql: &str,
        params: P,
    ) -> Result<usize, StateError> {
        self.conn.execute(sql, params).map_err(self.sql(operation))
    }

    /// Every row of a query, each read by `read`.
    pub(super) fn rows<T, P: Params>(
        &self,
        operation: &'static str,
        sql: &str,
        params: P,
        read: impl Fn(&Row<'_>) -> Result<T, RowError>,
    ) -> Result<Vec<T>, StateError> {
        let all = || -> Result<Vec<T>, RowError> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read(row)?);
            }
            Ok(out)
        };
        all().map_err(|e| self.row_error(operation, e))
    }

    /// The first row of a query, if any.
    pub(super) fn first<T, P: Params>(
        &self,
        operation: &'static str,
        sql: &str,
        params: P,
        read: impl Fn(&Row<'_>) -> Result<T, RowError>,
    ) -> Result<Option<T>, StateError> {
        let first = || -> Result<Option<T>, RowError> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            rows.next()?.map(read).transpose()
        };
        first().map_err(|e| self.row_error(operation, e))
    }
}

/// Runs `f` in one transaction, committed when it succeeds.
pub(super) fn transaction<T>(
    conn: &mut Connection,
    path: &Path,
    operation: &'static str,
    f: impl FnOnce(&Db<'_>) -> Result<T, StateError>,
) -> Result<T, StateError> {
    let sql = |source| StateError::Sql {
        path: path.to_path_buf(),
        operation,
        source,
    };
    // IMMEDIATE takes the write lock at BEGIN, waiting out other writers (busy timeout). A
    // deferred transaction that reads first and then writes fails at once with SQLITE_BUSY when
    // another connection committed in between (WAL cannot upgrade a stale read snapshot), which
    // made the block recorder give up while another process opened the state.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let out = f(&Db { conn: &tx, path })?;
    tx.commit().map_err(sql)?;
    Ok(out)
}
