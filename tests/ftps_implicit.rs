//! Implicit FTPS (TLS from the first byte, usually port 990) against a real
//! vsftpd on loopback (see `common/vsftpd.rs`): TLS on the login and every
//! data connection, exact bytes on the server's disk, delivery, folder
//! operations, a wrong CA, and one end-to-end run of the binary.

mod common;
use common::ftp_checks::*;
use common::vsftpd::Vsftpd;

#[test]
fn ftps_implicit_list_get_size() {
    let Some(d) = Vsftpd::start() else { return };
    check_list_get_size(&d);
}

#[test]
fn ftps_implicit_put_and_deliver() {
    let Some(d) = Vsftpd::start() else { return };
    check_put_deliver(&d);
}

#[test]
fn ftps_implicit_mkdir_rename_remove() {
    let Some(d) = Vsftpd::start() else { return };
    check_mkdir_rename_remove(&d);
}

/// Many data connections on one control connection, each resuming the
/// control connection's TLS session (vsftpd's require_ssl_reuse): uploads in
/// a row, then uploads and listings in turn. Every session was TLS: vsftpd
/// refuses anything else with these options.
#[test]
fn ftps_implicit_data_connections_resume_the_tls_session() {
    let Some(d) = Vsftpd::start() else { return };
    d.mkdir("in");
    let mut f = open(&d, &d.endpoint("in"));
    for i in 0..10 {
        f.put(&format!("n{i}.txt"), &mut format!("{i}").as_bytes())
            .unwrap_or_else(|e| panic!("upload {i}: {e}"));
    }
    for i in 10..20 {
        f.put(&format!("n{i}.txt"), &mut format!("{i}").as_bytes())
            .unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!(f.list().unwrap().len(), i + 1);
    }
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(d.path(&format!("in/n{i}.txt"))).unwrap(),
            i.to_string()
        );
    }
    f.close();
    let log = d.log();
    assert!(log.contains("OK LOGIN"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
}

#[test]
fn ftps_implicit_wrong_ca_is_refused() {
    let Some(d) = Vsftpd::start() else { return };
    check_wrong_ca_is_refused(&d, "cannot connect (implicit TLS)");
}

#[test]
fn ftps_implicit_feed_round_trip() {
    let Some(d) = Vsftpd::start() else { return };
    let r = d.remote();
    common::remote::feed_round_trip(&r);
    // The binary's sessions were TLS too (vsftpd forces it) and logged in.
    assert!(d.log().contains("OK LOGIN"), "{}", d.log());
}
