//! SFTP end to end through the real binary, against a real OpenSSH server
//! started on a loopback port: feeds out, files in, every pickup rule,
//! host keys, a server that goes away, 2,000 files, kill -9 mid-transfer.

mod common;
use common::remote::*;
use common::sshd::Sshd;

macro_rules! server {
    () => {
        match Sshd::start() {
            Some(s) => s,
            None => return,
        }
    };
}

#[test]
fn sftp_order_loop() {
    let s = server!();
    order_loop(&s.remote());
}

#[test]
fn sftp_feed_round_trip() {
    let s = server!();
    feed_round_trip(&s.remote());
}

#[test]
fn sftp_pickup_after_values() {
    let s = server!();
    pickup_after_values(&s.remote());
}

#[test]
fn sftp_not_taken_until_stable() {
    let s = server!();
    not_taken_until_stable(&s.remote());
}

#[test]
fn sftp_done_marker() {
    let s = server!();
    done_marker(&s.remote());
}

#[test]
fn sftp_rejected_file_quarantined_once() {
    let s = server!();
    rejected_once(&s.remote());
}

#[test]
fn sftp_two_thousand_files() {
    let s = server!();
    many_files(&s.remote(), 2000);
}

#[test]
fn sftp_kill9_mid_transfer() {
    let s = server!();
    kill9_mid_transfer(&s.remote());
}

#[test]
fn sftp_wrong_host_key_is_refused_with_the_real_fingerprint() {
    let s = server!();
    let mut r = s.remote();
    r.keys = r.keys.replace(
        &s.fingerprint,
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let ws = remote_ws(&r, "stable_for = \"0s\"", "");
    ws.apply("wms", "a.csv", STOCK);
    let (code, v) = sync_json(&ws, &r, "shop", &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["outcome"], "failed");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains(&s.fingerprint), "{reason}");
    assert!(r.files("out").is_empty());
    // A source behind the wrong key is not read either.
    r.put("in/x.csv", STOCK);
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert_ne!(o.code, 0);
    assert!(
        o.stdout.contains(&s.fingerprint) || o.stderr.contains(&s.fingerprint),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert_eq!(r.files("in"), vec!["x.csv"]);
}

#[test]
fn sftp_server_down_then_back_loses_nothing() {
    let mut s = server!();
    let r = s.remote();
    server_down_then_back(
        &r,
        || s.stop(),
        || {
            let s2 = Sshd::start().expect("sshd");
            let r2 = s2.remote();
            (s2, r2)
        },
    );
}

#[test]
fn sftp_unreadable_file_is_skipped_and_recorded() {
    let s = server!();
    unreadable_file_is_skipped(&s.remote());
}

#[test]
fn sftp_backslash_name_is_skipped() {
    let s = server!();
    backslash_name_is_skipped(&s.remote());
}
