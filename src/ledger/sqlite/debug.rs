//! The test-support surface ([`crate::ledger::debug`]) on SQLite.

use super::super::debug::{DebugTable, DebugValue};
use super::*;
use rusqlite::types::{Value, ValueRef};

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl rusqlite::ToSql for DebugValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            DebugValue::Null => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Null),
            DebugValue::Integer(v) => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            DebugValue::Real(v) => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            DebugValue::Text(s) => {
                rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            DebugValue::Blob(b) => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl SqliteLedger {
    /// The ledger's tables, by name.
    #[doc(hidden)]
    pub fn debug_tables(&self) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Every row of `table`, ordered by the columns `order_by` (in the
    /// stored order when empty).
    #[doc(hidden)]
    pub fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        let mut sql = format!("SELECT * FROM {}", ident(table));
        if !order_by.is_empty() {
            let cols: Vec<String> = order_by.iter().map(|c| ident(c)).collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&cols.join(", "));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get::<_, Value>(i)? {
                            Value::Null => DebugValue::Null,
                            Value::Integer(v) => DebugValue::Integer(v),
                            Value::Real(v) => DebugValue::Real(v),
                            Value::Text(s) => DebugValue::Text(s),
                            Value::Blob(b) => DebugValue::Blob(b),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(DebugTable { columns, rows })
    }

    /// Inserts one row as is (what an older stockgate could have written).
    #[doc(hidden)]
    pub fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        let cols: Vec<String> = row.iter().map(|(c, _)| ident(c)).collect();
        let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            ident(table),
            cols.join(", "),
            marks.join(", ")
        );
        self.conn
            .execute(&sql, rusqlite::params_from_iter(row.iter().map(|(_, v)| v)))?;
        Ok(())
    }

    /// The backend's own integrity check: "ok" when whole.
    #[doc(hidden)]
    pub fn debug_integrity(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

impl SqliteLedger {
    /// The sum of an integer column over a whole table (0 when empty).
    #[doc(hidden)]
    pub fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT COALESCE(SUM({}), 0) FROM {}",
                ident(column),
                ident(table)
            ),
            [],
            |r| r.get(0),
        )?)
    }
}
