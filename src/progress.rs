//! A progress bar on stderr for long `ingest` and `sync` runs (indicatif):
//! only when the command line turned it on (stderr is a terminal, no
//! `--json`, no `-q`), and only once a run has lasted a moment, so short
//! runs never flash one. Off, every call is one relaxed atomic load.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static BAR: Mutex<Option<Bar>> = Mutex::new(None);

/// How long a run goes before its bar is drawn.
const DELAY: Duration = Duration::from_millis(700);

struct Bar {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
    rows: u64,
    /// The bar counts items towards a known total (a full feed), not bytes.
    items: bool,
}

/// Turns progress bars on for this process (the CLI decides).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn with(f: impl FnOnce(&mut Bar)) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut g) = BAR.lock()
        && let Some(b) = g.as_mut()
    {
        if !b.shown && b.started.elapsed() >= DELAY {
            b.shown = true;
            b.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        f(b);
    }
}

/// Starts a bar for `what` (a file name, a cart): with `len` bytes to go
/// (rows, rate and ETA), or a counter of items when the total is unknown.
pub fn start(what: &str, len: Option<u64>) {
    let template = match len {
        Some(_) => {
            "{prefix} [{bar:30}] {percent:>3}%  {msg} rows  {binary_bytes_per_sec}  ETA {eta}"
        }
        None => "{prefix} {spinner} {pos} items  {per_sec}  {elapsed}",
    };
    install(what, len, template, false);
}

/// Starts a bar for `what` counting items towards `total` (items, rate, ETA).
pub fn start_items(what: &str, total: u64) {
    install(
        what,
        Some(total),
        "{prefix} [{bar:30}] {pos}/{len} items  {per_sec}  ETA {eta}",
        true,
    );
}

/// The bar, hidden until `DELAY` has passed (see [`with`]).
fn install(what: &str, len: Option<u64>, template: &str, items: bool) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
    if let Ok(s) = ProgressStyle::with_template(template) {
        bar.set_style(s.progress_chars("=> "));
    }
    bar.set_prefix(crate::util::escape(what));
    if let Ok(mut g) = BAR.lock() {
        *g = Some(Bar {
            bar,
            started: Instant::now(),
            shown: false,
            rows: 0,
            items,
        });
    }
}

/// Bytes of the file read so far (added).
pub fn bytes(n: u64) {
    with(|b| b.bar.inc(n));
}

/// Rows (or items) done so far.
pub fn rows(n: u64) {
    with(|b| {
        b.rows = n;
        if b.bar.length().is_some() && !b.items {
            b.bar.set_message(n.to_string());
        } else {
            b.bar.set_position(n);
        }
    });
}

/// Ends the bar, leaving no trace on the terminal.
pub fn finish() {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut g) = BAR.lock()
        && let Some(b) = g.take()
    {
        b.bar.finish_and_clear();
    }
}
