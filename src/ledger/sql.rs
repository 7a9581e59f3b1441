//! The ledger seam for code written once for both backends (the order
//! loop, `orders.rs`): a transaction that runs portable SQL with `?`
//! placeholders and typed values. SQLite runs it as written; PostgreSQL
//! numbers the placeholders (`$1`, `$2`, ...). Only what both dialects
//! mean the same way goes through it: BIGINT/INTEGER and TEXT columns,
//! `INSERT ... ON CONFLICT`, `RETURNING`, no functions of one dialect.

use super::{LedgerError, Result};
use std::collections::HashMap;

/// One value: a whole number or a text, either possibly NULL. A NULL read
/// back from a column is [`Val::Null`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    I(Option<i64>),
    T(Option<String>),
    Null,
}

impl Val {
    pub fn int(&self) -> i64 {
        self.opt_int().unwrap_or(0)
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Val::I(v) => *v,
            Val::T(Some(s)) => s.parse().ok(),
            _ => None,
        }
    }
    pub fn text(&self) -> String {
        self.opt_text().unwrap_or_default()
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Val::T(v) => v.clone(),
            Val::I(Some(i)) => Some(i.to_string()),
            _ => None,
        }
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Val {
        Val::I(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::T(Some(v.to_string()))
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::T(Some(v.clone()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::T(Some(v))
    }
}
impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Val {
        Val::T(v.map(str::to_string))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        Val::T(v)
    }
}

/// `vals![a, b, c]`: a parameter list of anything that becomes a [`Val`].
#[macro_export]
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::ledger::sql::Val::from($v)),*] };
}

/// One row read: its columns in SELECT order.
pub type Row = Vec<Val>;

/// A transaction of either backend (or, for reads, a connection).
pub trait SqlTx {
    /// Runs one statement; the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64>;
    /// Runs one query; every row.
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>>;
}

/// SQLite: the statement as written, prepared once per connection.
pub(super) struct SqliteSql<'c>(pub &'c rusqlite::Connection);

fn lite_params(params: &[Val]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    params
        .iter()
        .map(|p| match p {
            Val::I(Some(i)) => V::Integer(*i),
            Val::T(Some(s)) => V::Text(s.clone()),
            _ => V::Null,
        })
        .collect()
}

impl SqlTx for SqliteSql<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let mut st = self.0.prepare_cached(sql)?;
        Ok(st.execute(rusqlite::params_from_iter(lite_params(params)))? as u64)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        use rusqlite::types::ValueRef;
        let mut st = self.0.prepare_cached(sql)?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(lite_params(params)))?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Integer(v) => Val::I(Some(v)),
                    ValueRef::Text(t) => Val::T(Some(String::from_utf8_lossy(t).into_owned())),
                    ValueRef::Real(f) => Val::I(Some(f as i64)),
                    ValueRef::Blob(b) => Val::T(Some(String::from_utf8_lossy(b).into_owned())),
                    ValueRef::Null => Val::Null,
                });
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// PostgreSQL: `?` numbered as `$n`, each statement prepared once per
/// transaction.
pub(super) struct PgSql<'c> {
    pub c: &'c mut postgres::Client,
    pub prepared: HashMap<String, postgres::Statement>,
}

/// `?` -> `$1`, `$2`, ... (the portable SQL has no `?` in literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

impl PgSql<'_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(&numbered(sql))?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
            match p {
                Val::I(v) => Box::new(*v),
                Val::T(v) => Box::new(v.clone()),
                Val::Null => Box::new(None::<String>),
            }
        })
        .collect()
}

impl SqlTx for PgSql<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let st = self.statement(sql)?;
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            p.iter().map(|b| b.as_ref()).collect();
        Ok(self.c.execute(&st, &refs)?)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        use postgres::types::Type;
        let st = self.statement(sql)?;
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            p.iter().map(|b| b.as_ref()).collect();
        let rows = self.c.query(&st, &refs)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(|v| Val::I(Some(v))),
                    Type::INT4 => r
                        .try_get::<_, Option<i32>>(i)?
                        .map(|v| Val::I(Some(i64::from(v)))),
                    Type::INT2 => r
                        .try_get::<_, Option<i16>>(i)?
                        .map(|v| Val::I(Some(i64::from(v)))),
                    Type::BOOL => r
                        .try_get::<_, Option<bool>>(i)?
                        .map(|v| Val::I(Some(i64::from(v)))),
                    Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                        r.try_get::<_, Option<String>>(i)?.map(|v| Val::T(Some(v)))
                    }
                    ref other => {
                        return Err(LedgerError::Usage(format!(
                            "column {} has type {other}, which the portable SQL does not read",
                            col.name()
                        )));
                    }
                };
                row.push(v.unwrap_or(Val::Null));
            }
            out.push(row);
        }
        Ok(out)
    }
}
