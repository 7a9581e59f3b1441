//! A small test-support surface: what tests read of the ledger beyond the
//! public API (row counts, whole tables to compare before and after, an
//! integrity check, and rows an older stockgate could have written), the
//! same for every backend, so the same tests can run on each. Not for the
//! gateway itself.

/// One stored value, as a test sees it (Debug-formatted like SQLite's own
/// values: `Null`, `Integer(5)`, `Text("A")`).
#[derive(Debug, Clone, PartialEq)]
pub enum DebugValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for DebugValue {
    fn from(s: &str) -> Self {
        DebugValue::Text(s.to_string())
    }
}

impl From<i64> for DebugValue {
    fn from(v: i64) -> Self {
        DebugValue::Integer(v)
    }
}

/// Every row of one table, in the order asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<DebugValue>>,
}

/// One row of a [`DebugTable`], its values by column name.
#[derive(Clone, Copy)]
pub struct DebugRow<'a> {
    columns: &'a [String],
    values: &'a [DebugValue],
}

impl DebugTable {
    pub fn iter(&self) -> impl Iterator<Item = DebugRow<'_>> {
        self.rows.iter().map(|values| DebugRow {
            columns: &self.columns,
            values,
        })
    }

    /// How many rows `f` holds for.
    pub fn count(&self, f: impl Fn(DebugRow) -> bool) -> i64 {
        self.iter().filter(|r| f(*r)).count() as i64
    }
}

impl<'a> DebugRow<'a> {
    /// The value of column `name` (a test's mistake panics).
    pub fn get(&self, name: &str) -> &'a DebugValue {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
        &self.values[i]
    }

    pub fn is_null(&self, name: &str) -> bool {
        *self.get(name) == DebugValue::Null
    }

    /// A text column's value (None when NULL or not text).
    pub fn text(&self, name: &str) -> Option<&'a str> {
        match self.get(name) {
            DebugValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// An integer column's value (None when NULL or not an integer).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            DebugValue::Integer(v) => Some(*v),
            _ => None,
        }
    }

    /// Every value, in column order.
    pub fn values(&self) -> &'a [DebugValue] {
        self.values
    }
}
