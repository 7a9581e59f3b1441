//! `run --http ADDR`: `/healthz`, `/metrics` (OpenMetrics text) and `/` (a
//! small HTML status page, no JavaScript), served by a small HTTP/1.0-1.1
//! server of our own on `std::net::TcpListener`.
//!
//! What it takes and what it will not: GET and HEAD (others: 405), one
//! request per connection (`Connection: close`), a request head of at most
//! [`MAX_HEAD`] bytes (else 431) that must arrive whole within
//! [`HEAD_WITHIN`] (else the connection is closed): a client that sends
//! half a request and waits holds nothing for long. At most
//! [`MAX_CONNECTIONS`] connections are served at once, each on its own
//! thread; past that a connection is answered `503 busy` and closed (at
//! most [`MAX_BUSY`] such answers at once; beyond even that it is closed
//! unanswered), so the server's descriptors stay bounded and the rest of
//! the gateway keeps its own. An accept that fails (EMFILE: the descriptor
//! limit) is logged once, then retried every 100 ms: the server never
//! stops serving. Every answer is built within a few ms (two small SQLite
//! reads at most) and is a few kB; writing it to a client that does not
//! read gives up after [`WRITE_WITHIN`].

use crate::config::Config;
use crate::telemetry::Telemetry;
use crate::util::{bounded, now_ms, rfc3339};
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Connections served at once (see the module comment).
const MAX_CONNECTIONS: usize = 64;
/// `503 busy` answers being given at once.
const MAX_BUSY: usize = 32;
/// The whole request head must arrive within this.
const HEAD_WITHIN: Duration = Duration::from_secs(5);
/// Longest request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Writing an answer to a client that does not read gives up after this.
const WRITE_WITHIN: Duration = Duration::from_secs(10);
/// How often the acceptor looks at `stop` when no connection comes.
const POLL: Duration = Duration::from_millis(50);
/// The main loop counts as stalled when its heartbeat is this old.
const STALLED_MS: i64 = 15_000;
/// How long `/healthz` waits for a locked ledger.
const LEDGER_BUSY: Duration = Duration::from_secs(2);
/// Rows of "Recent history" on the page.
const HISTORY_ROWS: u64 = 20;
/// Longest value shown on the page (characters).
const MAX_VALUE: usize = 120;
/// Longest error shown on the page: room for what to do (a host key's
/// fingerprint comes late in its message).
const MAX_ERROR: usize = 400;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
/// prometheus-client's text encoder writes OpenMetrics 1.0 (it ends with `# EOF`).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds ADDR and serves until `stop` is set.
pub fn serve(addr: &str, state: Arc<ServeState>, stop: Arc<AtomicBool>) -> Result<Server, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            accept_loop(&listener, &state, &stop);
            tracing::debug!("http: stopped");
        })
        .map_err(|e| format!("cannot listen on {addr}: cannot start a thread: {e}"))?;
    tracing::info!("http: listening on {bound}");
    Ok(Server {
        addr: bound,
        thread,
    })
}

/// Counts a connection as open until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes one of `max` slots, if one is free.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<ServeState>, stop: &AtomicBool) {
    let open = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    // Accepting fails (out of descriptors): said once, until it works again.
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!("http: cannot accept connections ({e}); retrying");
                    failing = true;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if failing {
            tracing::info!("http: accepting connections again");
            failing = false;
        }
        // Accepted sockets do not inherit the listener's non-blocking mode
        // on every platform: say it.
        if conn.set_nonblocking(false).is_err() {
            continue;
        }
        let (job, name): (Box<dyn FnOnce() + Send>, &str) =
            if let Some(slot) = Slot::take(&open, MAX_CONNECTIONS) {
                let state = state.clone();
                (
                    Box::new(move || {
                        let _slot = slot;
                        handle(conn, &state);
                    }),
                    "http-conn",
                )
            } else if let Some(slot) = Slot::take(&busy, MAX_BUSY) {
                (
                    Box::new(move || {
                        let _slot = slot;
                        answer_busy(conn);
                    }),
                    "http-busy",
                )
            } else {
                continue; // closed unanswered
            };
        if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(job) {
            tracing::debug!("http: cannot start a thread: {e}");
        }
    }
}

/// Why a request head was not read.
enum HeadError {
    /// Closed, timed out or failed: nothing more to say to this client.
    Gone,
    TooLong,
}

/// Reads the request head (through the blank line), whole within
/// `HEAD_WITHIN`, at most `MAX_HEAD` bytes.
fn read_head(conn: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + HEAD_WITHIN;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(HeadError::Gone);
        }
        conn.set_read_timeout(Some(left))
            .map_err(|_| HeadError::Gone)?;
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => n,
        };
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        let find = |pat: &[u8]| head[from..].windows(pat.len()).position(|w| w == pat);
        let end = find(b"\r\n\r\n")
            .map(|p| from + p + 4)
            .or_else(|| find(b"\n\n").map(|p| from + p + 2));
        if let Some(end) = end {
            if end > MAX_HEAD {
                return Err(HeadError::TooLong);
            }
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLong);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes `reply` (without its body for HEAD) and closes the connection.
fn respond(mut conn: TcpStream, version: &str, head_only: bool, reply: &Reply) {
    use std::io::Write;
    let mut out = String::with_capacity(256 + reply.body.len());
    let _ = write!(
        out,
        "{version} {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        reply.status,
        reason(reply.status),
        chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT"),
        reply.content_type,
        reply.body.len(),
    );
    if reply.content_type == HTML {
        // Nothing on the page may run or load anything: belt and braces
        // over the escaping.
        out.push_str(
            "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
             Referrer-Policy: no-referrer\r\n",
        );
    }
    if reply.allow {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    if !head_only {
        out.push_str(&reply.body);
    }
    let _ = conn.set_write_timeout(Some(WRITE_WITHIN));
    if let Err(e) = conn.write_all(out.as_bytes()) {
        tracing::debug!("http: answering: {e}");
    }
    let _ = conn.shutdown(std::net::Shutdown::Write);
    linger(&mut conn);
}

/// Reads (briefly) what the client still sends before the socket closes,
/// so that closing it with unread bytes does not reset the connection
/// before the client has read the answer.
fn linger(conn: &mut TcpStream) {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 1024];
    for _ in 0..16 {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Past [`MAX_CONNECTIONS`]: `503 busy`, and close.
fn answer_busy(conn: TcpStream) {
    respond(
        conn,
        "HTTP/1.0",
        false,
        &Reply::new(503, TEXT, "busy\n".into()),
    );
}

fn handle(mut conn: TcpStream, state: &ServeState) {
    let head = match read_head(&mut conn) {
        Ok(h) => h,
        Err(HeadError::Gone) => return,
        Err(HeadError::TooLong) => {
            let r = Reply::new(431, TEXT, "request head too long\n".into());
            return respond(conn, "HTTP/1.1", false, &r);
        }
    };
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim_end_matches('\r')
                .to_string()
        })
        .unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, url, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(u), Some(v), None) if !m.is_empty() && !u.is_empty() => (m, u, v),
        _ => {
            let r = Reply::new(400, TEXT, "bad request\n".into());
            return respond(conn, "HTTP/1.1", false, &r);
        }
    };
    let version = match version {
        "HTTP/1.0" => "HTTP/1.0",
        "HTTP/1.1" => "HTTP/1.1",
        _ => {
            let r = Reply::new(505, TEXT, "HTTP/1.0 or HTTP/1.1 only\n".into());
            return respond(conn, "HTTP/1.1", false, &r);
        }
    };
    // A bug in building a reply answers 500; it never takes the thread down.
    let reply =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(method, url, state)))
            .unwrap_or_else(|_| Reply::new(500, TEXT, "internal error\n".into()));
    if reply.status == 500 {
        tracing::debug!(
            "http: answering {} {}: internal error",
            crate::util::escape(&bounded(method, 20)),
            crate::util::escape(&bounded(url, 200))
        );
    }
    respond(conn, version, method == "HEAD", &reply);
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

fn route(method: &str, url: &str, state: &ServeState) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or("");
    if !matches!(path, "/" | "/healthz" | "/metrics") {
        return Reply::new(404, TEXT, "not found\n".into());
    }
    // HEAD is GET without the body (left out when writing).
    if !matches!(method, "GET" | "HEAD") {
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
        "/metrics" => {
            order_gauges(state, &cfg);
            Reply::new(200, OPENMETRICS, state.telemetry.encode(&cfg.ledger))
        }
        _ => match page(state, &cfg) {
            Ok(html) => Reply::new(200, HTML, html),
            Err(e) => Reply::new(503, HTML, error_page(state, &e)),
        },
    }
}

/// The order loop's gauges, read from the ledger at each scrape (only
/// when the config has order sources or feeds).
fn order_gauges(state: &ServeState, cfg: &Config) {
    let feeds: Vec<String> = cfg
        .carts
        .iter()
        .filter(|c| !c.is_inventory())
        .map(|c| c.id.clone())
        .collect();
    if feeds.is_empty() {
        return;
    }
    let Ok(ledger) = crate::ledger::Ledger::open_read(&cfg.ledger) else {
        return;
    };
    if let Ok((st, waiting)) = crate::inspect::orders_status(cfg, &ledger) {
        state.telemetry.set_orders(&st, &waiting, &feeds);
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
    crate::ledger::Ledger::health(&cfg.ledger, LEDGER_BUSY)
        .map_err(|e| format!("ledger: {}", bounded(&e, 500)))
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

/// An error as page text, in its error style: bounded (longer), then escaped.
fn error_cell(s: &str) -> String {
    format!(
        "<span class=\"err\">{}</span>",
        escape_html(&bounded(s, MAX_ERROR))
    )
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
tr.failing td{background:#fff4f5}
.flag{margin-left:6px;padding:0 5px;border-radius:3px;background:#b00020;color:#fff;font-size:.8em;font-weight:600}
@media (max-width:700px){
 table,tbody,tr,td{display:block;width:auto}
 thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
 tr{margin:0 0 10px;border:1px solid #d5d8dd;border-radius:6px;background:#fff}
 tr.failing{border-color:#b00020}
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
/// A row marked failing (its first cell flagged, the row tinted).
fn table(out: &mut String, heads: &[&str], rows: &[(bool, Vec<String>)], empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">{empty}</p>");
        return;
    }
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for h in heads {
        let _ = write!(out, "<th>{}</th>", h.trim_end_matches('~'));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (failing, r) in rows {
        out.push_str(if *failing {
            "<tr class=\"failing\">"
        } else {
            "<tr>"
        });
        for (i, (h, c)) in heads.iter().zip(r).enumerate() {
            let (label, class) = match h.strip_suffix('~') {
                Some(l) => (l, " class=\"long\""),
                None => (*h, ""),
            };
            let flag = if *failing && i == 0 {
                "<span class=\"flag\">failing</span>"
            } else {
                ""
            };
            let _ = write!(out, "<td{class} data-label=\"{label}\">{c}{flag}</td>");
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
        cell(&cfg.ledger.to_string()),
    );
}

fn page(state: &ServeState, cfg: &Config) -> Result<String, String> {
    let ledger = crate::ledger::Ledger::open(&cfg.ledger).map_err(|e| e.to_string())?;
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
        // A pending retry comes before the next slot: the daemon tries then.
        let next_due = if c.next_is_retry {
            format!("{} (retry)", opt(&c.next_due))
        } else {
            opt(&c.next_due)
        };
        let failing = c.last_outcome.as_deref() == Some("failed");
        rows.push((
            failing,
            vec![
                cell(&c.cart),
                cell(&c.merchant),
                cell(&c.format),
                cell(&c.schedule),
                next_due,
                opt(&c.last_attempt),
                opt(&c.last_success),
                outcome(&c.last_outcome),
                error.map_or_else(|| "—".into(), |e| error_cell(&e)),
                opt(&c.held_by),
            ],
        ));
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
            "Last success",
            "Last outcome",
            "Error~",
            "Held by",
        ],
        &rows,
        "No carts configured.",
    );

    order_loop(&mut out, &st);

    // Rules 20-24: each cart's allocation keys, as `status --json` shows
    // them under "allocation" (carts with none are left out).
    out.push_str("<h2>Allocation</h2>\n");
    let list = |v: &[String]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            v.iter().map(|p| cell(p)).collect::<Vec<_>>().join(", ")
        }
    };
    let rows: Vec<(bool, Vec<String>)> = st
        .carts
        .iter()
        .filter_map(|c| c.allocation.as_ref().map(|a| (c, a)))
        .map(|(c, a)| {
            let trouble = if a.trouble.is_empty() {
                "—".to_string()
            } else {
                a.trouble
                    .iter()
                    .map(|t| error_cell(t))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let row = vec![
                cell(&c.cart),
                a.buffer.to_string(),
                a.percent.to_string(),
                if a.max_level > 0 {
                    a.max_level.to_string()
                } else {
                    "—".into()
                },
                list(&a.include),
                list(&a.exclude),
                opt(&a.sku_map),
                opt(&a.kits),
                if a.sync_on_orders { "yes" } else { "no" }.to_string(),
                trouble,
            ];
            (!a.trouble.is_empty(), row)
        })
        .collect();
    table(
        &mut out,
        &[
            "Cart",
            "Buffer",
            "Percent",
            "Max level",
            "Include",
            "Exclude",
            "sku_map",
            "Kits",
            "Sync on orders",
            "Table trouble~",
        ],
        &rows,
        "No cart sets allocation keys.",
    );

    out.push_str("<h2>Sources</h2>\n");
    let rows: Vec<(bool, Vec<String>)> = st
        .inbound
        .iter()
        .map(|i| {
            let failures = if i.failures > 0 {
                format!("<span class=\"bad\">{}</span>", i.failures)
            } else {
                "0".into()
            };
            let row = vec![
                cell(&i.source),
                cell(&i.kind),
                opt(&i.last_look),
                failures,
                opt(&i.last_pickup),
                i.applied.to_string(),
                if i.rejected > 0 {
                    format!("<span class=\"bad\">{}</span>", i.rejected)
                } else {
                    "0".into()
                },
                i.held.to_string(),
                i.last_error
                    .as_deref()
                    .map_or_else(|| "—".into(), error_cell),
                opt(&i.last_error_at),
                opt(&i.held_by),
            ];
            (i.failures > 0, row)
        })
        .collect();
    table(
        &mut out,
        &[
            "Source",
            "Kind",
            "Last look",
            "Failures",
            "Last pickup",
            "Applied",
            "Rejected",
            "Held",
            "Last error~",
            "Error at",
            "Held by",
        ],
        &rows,
        "No sources configured.",
    );

    out.push_str("<h2>Recent history</h2>\n");
    let rows: Vec<(bool, Vec<String>)> = history
        .iter()
        .map(|h| {
            let detail = match (&h.file, &h.reason) {
                (Some(f), _) => cell(f),
                (None, Some(r)) => error_cell(r),
                (None, None) => String::new(),
            };
            let row = vec![
                cell(&rfc3339(h.started_at)),
                cell(&h.cart),
                outcome(&Some(h.outcome.to_string())),
                h.items.to_string(),
                detail,
            ];
            (false, row)
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

/// The order loop (CONTRACT §6): each order and confirm feed, what waits
/// and since when, and the orders an operator must look at.
fn order_loop(out: &mut String, st: &crate::inspect::Status) {
    let feeds: Vec<(&str, &crate::inspect::CartStatus)> = st
        .order_feeds
        .iter()
        .map(|c| ("orders", c))
        .chain(st.confirm_feeds.iter().map(|c| ("confirmations", c)))
        .collect();
    if feeds.is_empty() && st.orders.is_none() {
        return;
    }
    out.push_str("<h2>Order loop</h2>\n");
    let rows: Vec<(bool, Vec<String>)> = feeds
        .iter()
        .map(|(kind, c)| {
            let failing = c.last_outcome.as_deref() == Some("failed");
            (
                failing,
                vec![
                    cell(&c.cart),
                    cell(kind),
                    cell(&c.format),
                    cell(&c.schedule),
                    opt(&c.next_due),
                    opt(&c.last_success),
                    outcome(&c.last_outcome),
                    c.pending.to_string(),
                ],
            )
        })
        .collect();
    table(
        out,
        &[
            "Feed",
            "Sends",
            "Format",
            "Schedule",
            "Next due",
            "Last success",
            "Last outcome",
            "Waiting",
        ],
        &rows,
        "No order or confirm feeds configured.",
    );
    if let Some(o) = &st.orders {
        let counts: Vec<String> = o
            .by_status
            .iter()
            .map(|(k, v)| format!("{v} {}", cell(k)))
            .collect();
        let _ = writeln!(
            out,
            "<p>Orders: {}. Waiting to be sent: {} (oldest {}). Shipments waiting to be confirmed: {} (oldest {}).</p>",
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(", ")
            },
            o.waiting_to_send,
            opt(&o.oldest_waiting),
            o.waiting_to_confirm,
            opt(&o.oldest_unconfirmed),
        );
        for id in &o.changed_after_sending {
            let _ = writeln!(
                out,
                "<p class=\"bad\">Order {} changed after it was sent: not resent; tell the warehouse.</p>",
                cell(id)
            );
        }
        for h in &o.held {
            let _ = writeln!(
                out,
                "<p class=\"bad\">Order {} (source {}) held back: {}.</p>",
                cell(&h.order_id),
                cell(&h.source),
                error_cell(&h.reason)
            );
        }
    }
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
        let get = "GET";
        // No ledger yet: unhealthy, and the page says why.
        let r = route(get, "/healthz", &st);
        assert_eq!(r.status, 503);
        assert!(r.body.starts_with("ledger: "), "{}", r.body);
        assert_eq!(route(get, "/nope", &st).status, 404);
        let r = route("POST", "/healthz", &st);
        assert_eq!((r.status, r.allow), (405, true));
        // The page creates the ledger, as `status` does.
        let r = route(get, "/?x=1", &st);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("No carts configured."));
        assert_eq!(route(get, "/healthz", &st).body, "ok\n");
        *st.telemetry.trouble.lock().unwrap() = Some("disk\nfull".into());
        assert_eq!(route(get, "/healthz", &st).body, "trouble: disk\\nfull\n");
        *st.telemetry.trouble.lock().unwrap() = None;
        st.telemetry
            .heartbeat
            .store(now_ms() - 42_500, Ordering::Relaxed);
        let r = route(get, "/healthz", &st);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "stalled: the main loop last ran 42 s ago\n");
        // Not a database: the ledger check reads the file.
        std::fs::write(
            dir.path().join("bad.sqlite"),
            "not a database, no, not at all",
        )
        .unwrap();
        assert!(crate::ledger::Ledger::health(dir.path().join("bad.sqlite"), LEDGER_BUSY).is_err());
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
