//! The test-support surface ([`crate::ledger::debug`]) on SQLite.

use super::super::debug::DebugValue;
use rusqlite::types::ValueRef;

pub(super) fn ident(name: &str) -> String {
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
