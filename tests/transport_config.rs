//! Transport config: one set of keys per kind, every wrong or missing key
//! named by `check`, secrets never echoed, the shipped examples valid.

mod common;
use common::*;

fn check_with(transport: &str) -> Out {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}[cart.transport]\n{transport}\n",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", ""),
        r#"
[[cart]]
id = "shop"
merchant = "m1"
format = "csv"
mapping = "feed"
schedule = "every 1m"
"#
    ));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    ws.run(&["check"])
}

#[test]
fn the_shipped_examples_pass_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["ftp.toml", "ftps.toml", "sftp.toml"] {
        let o = run_bin(
            &[
                "--config".into(),
                root.join(name).display().to_string(),
                "check".into(),
            ],
            &root,
        );
        assert_eq!(o.code, 0, "{name}: {}{}", o.stdout, o.stderr);
        assert!(o.stdout.starts_with("ok: "), "{name}: {}", o.stdout);
    }
}

#[test]
fn each_kind_names_its_missing_and_foreign_keys() {
    let o = check_with("type = \"ftp\"\npath = \"x\"\nknown_hosts = \"k\"\n");
    assert_eq!(o.code, 2);
    for want in [
        "key `cart[0].transport.host`: required for type = \"ftp\"",
        "key `cart[0].transport.user`: required for type = \"ftp\"",
        "key `cart[0].transport.password_env`: required for type = \"ftp\"",
        "key `cart[0].transport.path`: does not apply to type = \"ftp\"",
        "key `cart[0].transport.known_hosts`: does not apply to type = \"ftp\"",
    ] {
        assert!(o.stdout.contains(want), "missing {want:?} in\n{}", o.stdout);
    }
    assert!(!o.stdout.contains("not available"), "{}", o.stdout);

    let o = check_with(
        "type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"P\"\ntls = \"implicit\"\n",
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stdout.contains(
            "key `cart[0].transport.known_hosts`: sftp needs known_hosts or host_key_sha256"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("key `cart[0].transport.tls`: does not apply to type = \"sftp\""),
        "{}",
        o.stdout
    );

    let o = check_with(
        "type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"P\"\nhost_key_sha256 = \"abc\"\n",
    );
    assert!(
        o.stdout
            .contains("must be an OpenSSH fingerprint like \"SHA256:"),
        "{}",
        o.stdout
    );

    let o = check_with(
        "type = \"ftps\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"P\"\ntls = \"sometimes\"\nca_file = \"nope.pem\"\n",
    );
    assert!(
        o.stdout
            .contains("key `cart[0].transport.tls`: must be \"explicit\" or \"implicit\""),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("key `cart[0].transport.ca_file`: no such file"),
        "{}",
        o.stdout
    );

    let o = check_with(
        "type = \"ftp\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"P\"\nafter = \"delete\"\n",
    );
    assert!(
        o.stdout
            .contains("key `cart[0].transport.after`: applies to inbound sources"),
        "{}",
        o.stdout
    );
}

#[test]
fn an_inline_password_is_a_warning_and_never_shown() {
    let secret = "hunter2-Very-Secret";
    let o = check_with(&format!(
        "type = \"ftp\"\nhost = \"h\"\nuser = \"u\"\npassword = \"{secret}\"\n"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("warning: "), "{}", o.stdout);
    assert!(o.stdout.contains("prefer password_env"), "{}", o.stdout);
    assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret));
}

#[test]
fn a_password_never_reaches_a_message_when_the_server_refuses() {
    // Nothing listens on this port: the error names host and port, not the secret.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "s3cr3t-Pass-Word";
    let ws = Workspace::standard("");
    let cfg = ws.read("stockgate.toml").replace(
        "[cart.transport]\ntype = \"dir\"\npath = \"out/shop\"",
        &format!("[cart.transport]\ntype = \"ftp\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\npassword = \"{secret}\"\ntimeout = \"2s\""),
    );
    ws.config(&cfg);
    ws.apply(
        "wms",
        "s.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,1,2025-06-01T10:00:00Z,,\n",
    );
    let o = ws.run(&["sync", "shop", "--json"]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    let v = o.json();
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret));
    let h = ws.run(&["history", "--json"]);
    assert!(!h.stdout.contains(secret));
}

/// A pattern globset cannot compile is named by `check` (it was matched as
/// text by a hand-written matcher before).
#[test]
fn a_broken_pattern_is_named_by_check() {
    let ws = Workspace::standard("");
    let cfg = ws
        .read("stockgate.toml")
        .replacen("pattern = \"*\"", "pattern = \"[abc\"", 1);
    ws.config(&cfg);
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout.contains("`inbound[0].transport.pattern`: is not a file-name pattern (unclosed character class; missing ']')"),
        "{}",
        o.stdout
    );
}

#[test]
fn a_cert_authority_line_in_known_hosts_is_a_warning() {
    let ws = Workspace::standard("");
    ws.write(
        "kh",
        "# partner\n@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\nexample.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    );
    let cfg = ws.read("stockgate.toml").replace(
        "[cart.transport]\ntype = \"dir\"\npath = \"out/shop\"",
        "[cart.transport]\ntype = \"sftp\"\nhost = \"example.org\"\nuser = \"u\"\npassword_env = \"P\"\nknown_hosts = \"kh\"",
    );
    ws.config(&cfg);
    let o = ws.run_env(&["check"], &[("P".into(), "x".into())]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let want = format!(
        "key `cart[0].transport.known_hosts`: {} line 2: @cert-authority is not supported (host certificates are not checked); list the server's own host key",
        ws.path("kh").display()
    );
    assert!(o.stdout.contains(&want), "{want}\n{}", o.stdout);
    assert!(o.stdout.contains("warning: "), "{}", o.stdout);
}
