//! Where a ledger lives: a SQLite file, or a PostgreSQL database named by
//! a URL whose password is never shown (rule 36).

use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// A ledger's place, from `[ledger] path`, `url` or `url_env`.
#[derive(Clone)]
pub enum LedgerLocation {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database (`postgres://...` or `host=... dbname=...`).
    Postgres(PgUrl),
}

/// A PostgreSQL connection string, kept secret: `Display` and `Debug`
/// show it with its password replaced by `***`.
#[derive(Clone)]
pub struct PgUrl {
    url: SecretString,
    shown: String,
}

impl PgUrl {
    pub fn new(url: &str) -> PgUrl {
        PgUrl {
            shown: redact(url),
            url: SecretString::from(url.to_string()),
        }
    }

    /// The URL itself, for connecting only.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// Whether the URL carries a password (`check` warns of an inline one).
    pub fn has_password(&self) -> bool {
        self.shown != self.url.expose_secret()
    }
}

impl LedgerLocation {
    pub fn file(path: impl Into<PathBuf>) -> LedgerLocation {
        LedgerLocation::File(path.into())
    }

    /// The SQLite file, when the ledger is one.
    pub fn as_file(&self) -> Option<&Path> {
        match self {
            LedgerLocation::File(p) => Some(p),
            LedgerLocation::Postgres(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, LedgerLocation::Postgres(_))
    }
}

impl std::fmt::Display for LedgerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerLocation::File(p) => write!(f, "{}", p.display()),
            LedgerLocation::Postgres(u) => f.write_str(&u.shown),
        }
    }
}

impl std::fmt::Debug for LedgerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerLocation({self})")
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

impl From<&Path> for LedgerLocation {
    fn from(p: &Path) -> Self {
        LedgerLocation::File(p.to_path_buf())
    }
}

impl From<&PathBuf> for LedgerLocation {
    fn from(p: &PathBuf) -> Self {
        LedgerLocation::File(p.clone())
    }
}

impl From<PathBuf> for LedgerLocation {
    fn from(p: PathBuf) -> Self {
        LedgerLocation::File(p)
    }
}

impl From<&LedgerLocation> for LedgerLocation {
    fn from(l: &LedgerLocation) -> Self {
        l.clone()
    }
}

/// `url` with any password replaced by `***`: the userinfo of a
/// `postgres://user:password@host` URL, a `password=` query parameter, and
/// a `password=` key of the `key=value` form.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let auth_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..auth_end].rfind('@') {
            let at = rest + at;
            if let Some(colon) = out[rest..at].find(':') {
                out.replace_range(rest + colon + 1..at, "***");
            }
        }
    }
    // `password=...` as a query parameter or a key=value pair.
    let lower = out.to_ascii_lowercase();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    while let Some(off) = lower[i..].find("password=") {
        let start = i + off;
        let boundary = start == 0 || matches!(out.as_bytes()[start - 1], b'?' | b'&' | b' ');
        let value = start + "password=".len();
        result.push_str(&out[i..value]);
        if !boundary {
            i = value;
            continue;
        }
        let quoted = out[value..].starts_with('\'');
        let end = if quoted {
            out[value + 1..]
                .find('\'')
                .map_or(out.len(), |e| value + e + 2)
        } else {
            out[value..]
                .find(['&', ' '])
                .map_or(out.len(), |e| value + e)
        };
        result.push_str("***");
        i = end;
    }
    result.push_str(&out[i..]);
    result
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        assert_eq!(
            redact("postgres://gw:s3cr:et@db.example:5432/stock"),
            "postgres://gw:***@db.example:5432/stock"
        );
        assert_eq!(
            redact("postgresql://gw@db/stock?sslmode=require"),
            "postgresql://gw@db/stock?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/stock?user=gw&password=hunter2&sslmode=require"),
            "postgres://db/stock?user=gw&password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=db user=gw password='a b' dbname=stock"),
            "host=db user=gw password=*** dbname=stock"
        );
        assert_eq!(redact("host=db password=x"), "host=db password=***");
        assert_eq!(redact("host=db user=gw"), "host=db user=gw");
    }
}
