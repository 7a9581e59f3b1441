//! FTP and FTPS end to end through the real binary, against a real
//! pure-ftpd started on a loopback port (plain, and explicit TLS with a
//! throwaway CA): feeds out, files in, every pickup rule, a server that
//! goes away, 2,000 files, kill -9 mid-transfer.

mod common;
use common::ftpd::Ftpd;
use common::remote::*;

#[test]
fn ftp_feed_round_trip() {
    feed_round_trip(&Ftpd::start().remote());
}

#[test]
fn ftp_order_loop() {
    order_loop(&Ftpd::start().remote());
}

#[test]
fn ftps_feed_round_trip() {
    feed_round_trip(&Ftpd::start_tls().remote());
}

#[test]
fn ftp_pickup_after_values() {
    pickup_after_values(&Ftpd::start().remote());
}

#[test]
fn ftps_pickup_after_values() {
    pickup_after_values(&Ftpd::start_tls().remote());
}

#[test]
fn ftp_not_taken_until_stable() {
    not_taken_until_stable(&Ftpd::start().remote());
}

#[test]
fn ftp_done_marker() {
    done_marker(&Ftpd::start().remote());
}

#[test]
fn ftp_rejected_file_quarantined_once() {
    rejected_once(&Ftpd::start().remote());
}

#[test]
fn ftps_rejected_file_quarantined_once() {
    rejected_once(&Ftpd::start_tls().remote());
}

#[test]
fn ftp_two_thousand_files() {
    many_files(&Ftpd::start().remote(), 2000);
}

#[test]
fn ftp_kill9_mid_transfer() {
    kill9_mid_transfer(&Ftpd::start().remote());
}

#[test]
fn ftps_kill9_mid_transfer() {
    kill9_mid_transfer(&Ftpd::start_tls().remote());
}

#[test]
fn ftp_server_down_then_back_loses_nothing() {
    let s = Ftpd::start();
    let r = s.remote();
    server_down_then_back(
        &r,
        || drop(s),
        || {
            let s2 = Ftpd::start();
            let r2 = s2.remote();
            (s2, r2)
        },
    );
}

#[test]
fn ftp_wrong_password_is_permanent_and_never_shown() {
    let s = Ftpd::start();
    let mut r = s.remote();
    r.env = vec![("SG_FTP_PASSWORD".into(), "not-the-Password-123".into())];
    let ws = remote_ws(&r, "stable_for = \"0s\"", "");
    ws.apply("wms", "a.csv", STOCK);
    let o = ws.run_env(&["sync", "shop", "--json"], &r.env);
    assert_eq!(o.code, 1);
    assert!(
        !o.stdout.contains("not-the-Password-123") && !o.stderr.contains("not-the-Password-123")
    );
    assert!(!o.stdout.contains(&s.password));
    let v = o.json();
    assert_eq!(v["outcome"], "failed");
    assert!(r.files("out").is_empty());
}

#[test]
fn ftp_unreadable_file_is_skipped_and_recorded() {
    unreadable_file_is_skipped(&Ftpd::start().remote());
}

#[test]
fn ftp_backslash_name_is_skipped() {
    backslash_name_is_skipped(&Ftpd::start().remote());
}
