//! `run --http ADDR`: `/healthz`, `/metrics` (OpenMetrics text) and `/` (a
//! small HTML status page, no JavaScript), served by tiny_http on its own
//! thread.
//!
//! Threads: tiny_http accepts connections and parses requests on its own
//! threads; the requests then queue for us. We answer them from a small
//! fixed pool ([`WORKERS`] threads, the one in [`Server::thread`] included),
//! each taking the next request with `recv_timeout` so that all of them
//! notice `stop` within [`POLL`]. A pool rather than one thread because
//! `respond` writes to the client's socket and blocks while a client that
//! does not read has a full socket buffer: one such client holds one
//! worker, never the others. Every answer is built within a few ms (two
//! small SQLite reads at most) and is a few kB, so a handful is plenty.
//!
//! Known limit of tiny_http 0.12 (not of this module): it gives each
//! connection a thread from a pool that grows on demand, and keeps it for as
//! long as the client keeps the connection open (no idle timeout). Its
//! pool counts idle threads loosely, so a connection that arrives in the
//! same instant as several others, while the rest of the pool waits on idle
//! keep-alive clients, can wait until one of those connections closes.
//! Seen only with bursts of simultaneous connections (tests/status_page.rs
//! spaces its slow clients for that reason); a scraper, a probe and a
//! browser are far from it.

use crate::config::Config;
use crate::telemetry::Telemetry;
use crate::util::{bounded, now_ms, rfc3339};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What the server reads; the daemon owns and updates it.
pub struct ServeState {
    /// The config in force (replaced on SIGHUP).
    pub config: RwLock<Arc<Config>>,
    pub telemetry: Arc<Telemetry>,
    /// When `run` started (ms since the epoch).
    pub started_at: i64,
}

/// A running HTTP server.
pub struct Server {
    /// The address it listens on (the real port when ADDR had port 0).
    pub addr: std::net::SocketAddr,
    pub thread: std::thread::JoinHandle<()>,
}

/// Threads answering requests (see the module comment).
const WORKERS: usize = 3;
/// How often a worker looks at `stop` when idle.
const POLL: Duration = Duration::from_millis(500);
/// The main loop counts as stalled when its heartbeat is this old.
const STALLED_MS: i64 = 15_000;
/// How long `/healthz` waits for a locked ledger.
const LEDGER_BUSY: Duration = Duration::from_secs(2);
/// Rows of "Recent history" on the page.
const HISTORY_ROWS: u64 = 20;
/// Longest value shown on the page (characters).
const MAX_VALUE: usize = 120;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
/// prometheus-client's text encoder writes OpenMetrics 1.0 (it ends with `# EOF`).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds ADDR and serves until `stop` is set.
pub fn serve(addr: &str, state: Arc<ServeState>, stop: Arc<AtomicBool>) -> Result<Server, String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a,
        #[allow(unreachable_patterns)]
        other => return Err(format!("cannot listen on {addr}: bound to {other:?}")),
    };
    let server = Arc::new(server);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let mut helpers = vec![];
            for i in 1..WORKERS {
                let (server, state, stop) = (server.clone(), state.clone(), stop.clone());
                match std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || worker(&server, &state, &stop))
                {
                    Ok(h) => helpers.push(h),
                    Err(e) => tracing::warn!("http: cannot start a worker thread: {e}"),
                }
            }
            worker(&server, &state, &stop);
            for h in helpers {
                let _ = h.join();
            }
            tracing::debug!("http: stopped");
        })
        .map_err(|e| format!("cannot listen on {addr}: cannot start a thread: {e}"))?;
    tracing::info!("http: listening on {bound}");
    Ok(Server {
        addr: bound,
        thread,
    })
}

fn worker(server: &tiny_http::Server, state: &ServeState, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(POLL) {
            Ok(Some(req)) => handle(req, state),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("http: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// An answer, built before anything is written.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body,
            allow: false,
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("static header is valid")
}

fn handle(req: tiny_http::Request, state: &ServeState) {
    let method = req.method().clone();
    let url = req.url().to_string();
    // A bug in building a reply answers 500; it never takes the thread down.
    let reply =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(&method, &url, state)))
            .unwrap_or_else(|_| Reply::new(500, TEXT, "internal error\n".into()));
    let mut resp = tiny_http::Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if reply.content_type == HTML {
        // Nothing on the page may run or load anything: belt and braces
        // over the escaping.
        resp = resp
            .with_header(header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            ))
            .with_header(header("Referrer-Policy", "no-referrer"));
    }
    if reply.allow {
        resp = resp.with_header(header("Allow", "GET, HEAD"));
    }
    if let Err(e) = req.respond(resp) {
        tracing::debug!("http: answering {method} {}: {e}", bounded(&url, 200));
    }
}

fn route(method: &tiny_http::Method, url: &str, state: &ServeState) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or("");
    if !matches!(path, "/" | "/healthz" | "/metrics") {
        return Reply::new(404, TEXT, "not found\n".into());
    }
    // HEAD is GET without the body (tiny_http leaves the body out).
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        let mut r = Reply::new(405, TEXT, "method not allowed\n".into());
        r.allow = true;
        return r;
    }
    let cfg = config(state);
    match path {
        "/healthz" => match health(state, &cfg) {
            Ok(()) => Reply::new(200, TEXT, "ok\n".into()),
            Err(why) => Reply::new(503, TEXT, format!("{why}\n")),
        },
        "/metrics" => Reply::new(200, OPENMETRICS, state.telemetry.encode(&cfg.ledger_path)),
        _ => match page(state, &cfg) {
            Ok(html) => Reply::new(200, HTML, html),
            Err(e) => Reply::new(503, HTML, error_page(state, &e)),
        },
    }
}

fn config(state: &ServeState) -> Arc<Config> {
    state
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Ok, or one line saying why not.
fn health(state: &ServeState, cfg: &Config) -> Result<(), String> {
    let t = &state.telemetry;
    let age = now_ms() - t.heartbeat.load(Ordering::Relaxed);
    if age >= STALLED_MS {
        return Err(format!(
            "stalled: the main loop last ran {} s ago",
            age / 1000
        ));
    }
    if let Some(why) = t.trouble_now() {
        return Err(format!("trouble: {}", bounded(&why, 500)));
    }
    ledger_answers(&cfg.ledger_path).map_err(|e| format!("ledger: {}", bounded(&e, 500)))
}

/// Opens the ledger read-only and reads its schema (`SELECT 1` alone would
/// not touch the file: this also finds a ledger that is not a database).
fn ledger_answers(path: &std::path::Path) -> Result<(), String> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    conn.busy_timeout(LEDGER_BUSY).map_err(|e| e.to_string())?;
    conn.query_row("SELECT 1 FROM sqlite_schema LIMIT 1", [], |_| Ok(()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `s` safe as HTML text or a quoted attribute value.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value from the ledger or config as page text: bounded, then escaped.
fn cell(s: &str) -> String {
    escape_html(&bounded(s, MAX_VALUE))
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "—".into(), cell)
}

/// "3 d 4 h", "2 h 5 min", "4 min 10 s", "12 s".
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

const STYLE: &str = "
body{font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f7f9}
h1{font-size:1.4em;margin:0 0 4px}
h2{font-size:1.1em;margin:20px 0 6px}
.meta{color:#555;font-size:.9em;margin:0 0 4px}
.health{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:600}
.ok{color:#0a6b2b}.bad{color:#b00020}.muted{color:#777}
.health.ok{background:#e3f4e8}.health.bad{background:#fde7ea}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.92em}
.scroll{overflow-x:auto}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e2e4e8;vertical-align:top;white-space:nowrap}
td.long{white-space:normal;overflow-wrap:anywhere;min-width:16em}
th{background:#eef0f3;font-weight:600}
.err{color:#b00020}
@media (max-width:700px){
 table,tbody,tr,td{display:block;width:auto}
 thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
 tr{margin:0 0 10px;border:1px solid #d5d8dd;border-radius:6px;background:#fff}
 td,td.long{display:flex;gap:8px;border-bottom:1px solid #f0f1f3;padding:4px 8px;white-space:normal;overflow-wrap:anywhere;min-width:0}
 td:last-child{border-bottom:0}
 td::before{content:attr(data-label);flex:0 0 8.5em;color:#555;font-weight:600}
 table{background:none}
}
";

/// One table: headers and rows of already-escaped HTML cells. A header
/// ending in `~` marks a column of long values (wrapped anywhere); the others
/// do not wrap on a wide screen. Below 700 px each row is a card of
/// "label value" lines, so nothing needs horizontal scrolling on a phone.
fn table(out: &mut String, heads: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">{empty}</p>");
        return;
    }
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for h in heads {
        let _ = write!(out, "<th>{}</th>", h.trim_end_matches('~'));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for (h, c) in heads.iter().zip(r) {
            let (label, class) = match h.strip_suffix('~') {
                Some(l) => (l, " class=\"long\""),
                None => (*h, ""),
            };
            let _ = write!(out, "<td{class} data-label=\"{label}\">{c}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

fn outcome_class(o: &str) -> &'static str {
    match o {
        "sent" | "applied" => "ok",
        "failed" | "rejected" => "bad",
        _ => "",
    }
}

fn outcome(o: &Option<String>) -> String {
    match o {
        None => "—".into(),
        Some(o) => format!("<span class=\"{}\">{}</span>", outcome_class(o), cell(o)),
    }
}

fn head(out: &mut String, state: &ServeState, cfg: &Config) {
    let now = now_ms();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <title>stockgate</title><style>{STYLE}</style></head><body>\n\
         <h1>stockgate</h1>\n\
         <p class=\"meta\">version {} · started {} · up {}</p>\n",
        env!("CARGO_PKG_VERSION"),
        cell(&rfc3339(state.started_at)),
        human_duration(now - state.started_at),
    );
    let (class, text) = match health(state, cfg) {
        Ok(()) => ("ok", "healthy".to_string()),
        Err(why) => ("bad", escape_html(&why)),
    };
    let _ = writeln!(
        out,
        "<p class=\"meta\"><span class=\"health {class}\">{text}</span> · shown {} · ledger {}</p>",
        cell(&rfc3339(now)),
        cell(&cfg.ledger_path.display().to_string()),
    );
}

fn page(state: &ServeState, cfg: &Config) -> Result<String, String> {
    let ledger = crate::ledger::Ledger::open(&cfg.ledger_path).map_err(|e| e.to_string())?;
    let st = crate::inspect::status(cfg, &ledger).map_err(|e| e.to_string())?;
    let history = ledger
        .history(None, HISTORY_ROWS)
        .map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, state, cfg);

    out.push_str("<h2>Carts</h2>\n");
    let mut rows = vec![];
    for c in &st.carts {
        let error = if c.last_outcome.as_deref() == Some("failed") {
            ledger
                .history(Some(&c.cart), 1)
                .map_err(|e| e.to_string())?
                .into_iter()
                .next()
                .and_then(|e| e.reason)
        } else {
            None
        };
        rows.push(vec![
            cell(&c.cart),
            cell(&c.merchant),
            cell(&c.format),
            cell(&c.schedule),
            opt(&c.next_due),
            opt(&c.last_attempt),
            outcome(&c.last_outcome),
            error.map_or_else(
                || "—".into(),
                |e| format!("<span class=\"err\">{}</span>", cell(&e)),
            ),
        ]);
    }
    table(
        &mut out,
        &[
            "Cart",
            "Merchant",
            "Format",
            "Schedule",
            "Next due",
            "Last attempt",
            "Last outcome",
            "Error~",
        ],
        &rows,
        "No carts configured.",
    );

    out.push_str("<h2>Sources</h2>\n");
    let rows: Vec<Vec<String>> = st
        .inbound
        .iter()
        .map(|i| {
            vec![
                cell(&i.source),
                cell(&i.kind),
                opt(&i.last_pickup),
                i.applied.to_string(),
                if i.rejected > 0 {
                    format!("<span class=\"bad\">{}</span>", i.rejected)
                } else {
                    "0".into()
                },
                i.held.to_string(),
                i.last_error.as_deref().map_or_else(
                    || "—".into(),
                    |e| format!("<span class=\"err\">{}</span>", cell(e)),
                ),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "Source",
            "Kind",
            "Last pickup",
            "Applied",
            "Rejected",
            "Held",
            "Last error~",
        ],
        &rows,
        "No sources configured.",
    );

    out.push_str("<h2>Recent history</h2>\n");
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|h| {
            let detail = match (&h.file, &h.reason) {
                (Some(f), _) => cell(f),
                (None, Some(r)) => format!("<span class=\"err\">{}</span>", cell(r)),
                (None, None) => String::new(),
            };
            vec![
                cell(&rfc3339(h.started_at)),
                cell(&h.cart),
                outcome(&Some(h.outcome.to_string())),
                h.items.to_string(),
                detail,
            ]
        })
        .collect();
    table(
        &mut out,
        &["Time", "Cart", "Outcome", "Items", "File / reason~"],
        &rows,
        "No syncs yet.",
    );
    out.push_str("</body></html>\n");
    Ok(out)
}

fn error_page(state: &ServeState, err: &str) -> String {
    let cfg = config(state);
    let mut out = String::new();
    head(&mut out, state, &cfg);
    let _ = write!(
        out,
        "<h2>Ledger unavailable</h2>\n<p class=\"err\">{}</p>\n</body></html>\n",
        escape_html(&bounded(err, 500))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        assert_eq!(escape_html("plain ü"), "plain ü");
        // Bounded first, then escaped: an entity is never cut in half.
        let long = "&".repeat(500);
        let c = cell(&long);
        assert!(c.ends_with("&amp;…"), "{c}");
        assert_eq!(c.matches("&amp;").count(), MAX_VALUE);
        assert_eq!(cell("a\nb<"), "a\\nb&lt;");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(-5), "0 s");
        assert_eq!(human_duration(12_999), "12 s");
        assert_eq!(human_duration(250_000), "4 min 10 s");
        assert_eq!(human_duration(7_500_000), "2 h 5 min");
        assert_eq!(human_duration(277_200_000), "3 d 5 h");
    }

    fn state(dir: &std::path::Path) -> Arc<ServeState> {
        let p = dir.join("stockgate.toml");
        std::fs::write(
            &p,
            "[ledger]\npath = \"ledger.sqlite\"\n\n[[merchant]]\nid = \"m1\"\n",
        )
        .unwrap();
        let cfg = crate::config::load(&p).unwrap_or_else(|e| panic!("{e:?}"));
        Arc::new(ServeState {
            config: RwLock::new(Arc::new(cfg)),
            telemetry: Arc::new(Telemetry::new()),
            started_at: now_ms(),
        })
    }

    #[test]
    fn routes_and_health() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let get = tiny_http::Method::Get;
        // No ledger yet: unhealthy, and the page says why.
        let r = route(&get, "/healthz", &st);
        assert_eq!(r.status, 503);
        assert!(r.body.starts_with("ledger: "), "{}", r.body);
        assert_eq!(route(&get, "/nope", &st).status, 404);
        let r = route(&tiny_http::Method::Post, "/healthz", &st);
        assert_eq!((r.status, r.allow), (405, true));
        // The page creates the ledger, as `status` does.
        let r = route(&get, "/?x=1", &st);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("No carts configured."));
        assert_eq!(route(&get, "/healthz", &st).body, "ok\n");
        *st.telemetry.trouble.lock().unwrap() = Some("disk\nfull".into());
        assert_eq!(route(&get, "/healthz", &st).body, "trouble: disk\\nfull\n");
        *st.telemetry.trouble.lock().unwrap() = None;
        st.telemetry
            .heartbeat
            .store(now_ms() - 42_500, Ordering::Relaxed);
        let r = route(&get, "/healthz", &st);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "stalled: the main loop last ran 42 s ago\n");
        // Not a database: the ledger check reads the file.
        std::fs::write(
            dir.path().join("bad.sqlite"),
            "not a database, no, not at all",
        )
        .unwrap();
        assert!(ledger_answers(&dir.path().join("bad.sqlite")).is_err());
    }

    #[test]
    fn bind_failure_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let s = serve("127.0.0.1:0", st.clone(), stop.clone()).unwrap();
        assert_ne!(s.addr.port(), 0);
        let e = serve(&s.addr.to_string(), st, stop.clone()).err().unwrap();
        assert!(
            e.starts_with(&format!("cannot listen on {}: ", s.addr)),
            "{e}"
        );
        stop.store(true, Ordering::Relaxed);
        let t = std::time::Instant::now();
        s.thread.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
