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

/// The shipped examples pass `check`: clean once their password variables
/// are set, and with each unset variable named in a warning (rule 40).
#[test]
fn the_shipped_examples_pass_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["ftp.toml", "ftps.toml", "sftp.toml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let vars: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("password_env = \""))
            .filter_map(|r| r.split_once('"'))
            .map(|(v, _)| v.to_string())
            .collect();
        assert!(!vars.is_empty(), "{name}");
        let args = [
            "--config".into(),
            root.join(name).display().to_string(),
            "check".into(),
        ];
        let set: Vec<_> = vars.iter().map(|v| (v.clone(), "x".to_string())).collect();
        let o = run_bin_env(&args, &root, &set);
        assert_eq!(o.code, 0, "{name}: {}{}", o.stdout, o.stderr);
        assert!(o.stdout.starts_with("ok: "), "{name}: {}", o.stdout);
        let o = run_bin(&args, &root);
        assert_eq!(o.code, 0, "{name}: {}{}", o.stdout, o.stderr);
        for v in &vars {
            let want = format!(
                "password_env`: environment variable \"{v}\" is not set (it is read at each connection)"
            );
            assert_eq!(
                o.stdout.matches(&want).count(),
                1,
                "{name}: {want}\n{}",
                o.stdout
            );
        }
        assert!(
            o.stdout.lines().last().unwrap().starts_with("ok: "),
            "{}",
            o.stdout
        );
    }
}

/// Rule 40: every `password_env` and `key_passphrase_env` naming a variable
/// that is not set (or empty) is a warning naming the key and the variable;
/// `check` still passes.
#[test]
fn an_unset_secret_variable_is_a_warning_naming_key_and_variable() {
    let ws = connect_ws(&format!(
        "{}type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\nkey_file = \"id\"\nkey_passphrase_env = \"SG_TEST_R40_PASS\"\nhost_key_sha256 = \"SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8\"\n{}type = \"ftp\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"SG_TEST_R40_PW\"\n{}type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"SG_TEST_R40_PW\"\nhost_key_sha256 = \"SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8\"\n",
        source("wms", "inventory", "inv"),
        feed_cart("shop"),
        feed_cart("other"),
    ));
    ws.write("id", "not really a key\n");
    let c = ws.config_path().display().to_string();
    let want = [
        format!(
            "warning: {c}:19: key `inbound[0].transport.key_passphrase_env`: environment variable \"SG_TEST_R40_PASS\" is not set (it is read at each connection)"
        ),
        format!(
            "warning: {c}:32: key `cart[0].transport.password_env`: environment variable \"SG_TEST_R40_PW\" is not set (it is read at each connection)"
        ),
        format!(
            "warning: {c}:44: key `cart[1].transport.password_env`: environment variable \"SG_TEST_R40_PW\" is not set (it is read at each connection)"
        ),
    ];
    for env in [vec![], vec![("SG_TEST_R40_PW".to_string(), String::new())]] {
        let o = ws.run_env(&["check"], &env);
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[..3], want, "\n{}", o.stdout);
        assert!(lines[3].starts_with("ok: "), "{}", o.stdout);
        assert_eq!(lines.len(), 4, "{}", o.stdout);
    }
    let set = |v: &str| (v.to_string(), "set".to_string());
    let o = ws.run_env(
        &["check"],
        &[set("SG_TEST_R40_PW"), set("SG_TEST_R40_PASS")],
    );
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("ok: "), "{}", o.stdout);
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
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
    // A bad config is a bad config with --connect too: nothing is tried.
    let c = ws.run_ok(&["check", "--connect"], 2);
    assert_eq!((c.stdout, c.stderr), (o.stdout, o.stderr));
    assert!(!ws.path("in").exists());
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

// ----- check --connect (issue 16.3, rule 40) -----

use common::ftpd::{Ftpd, make_ca};
use common::sshd::Sshd;

/// The `[[inbound]]` head of source `id` (its transport table follows).
fn source(id: &str, kind: &str, mapping: &str) -> String {
    format!(
        "\n[[inbound]]\nid = \"{id}\"\nmerchant = \"m1\"\nkind = \"{kind}\"\nmapping = \"{mapping}\"\n[inbound.transport]\n"
    )
}

/// The `[[cart]]` head of cart `id` (its transport table follows).
fn feed_cart(id: &str) -> String {
    format!(
        "\n[[cart]]\nid = \"{id}\"\nmerchant = \"m1\"\nformat = \"csv\"\nmapping = \"feed\"\nschedule = \"every 1m\"\n[cart.transport]\n"
    )
}

fn connect_ws(body: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!("{}{body}", header(&["m1"])));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("ord", ORD_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    ws
}

/// The lines of `check --connect` after the config's `ok:` line, which must
/// come first.
fn endpoint_lines(o: &Out, ws: &Workspace) -> Vec<String> {
    let mut lines = o.stdout.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("ok: {} (", ws.config_path().display())),
        "{}",
        o.stdout
    );
    lines.map(str::to_string).collect()
}

/// A wrong FTP password, a wrong SFTP host key, a missing remote folder
/// (inbound), an unwritable one (outbound), an untrusted FTPS certificate
/// and a local folder under a file: one line each, naming the endpoint,
/// beside the ok lines of the good ones; exit 1; no secret shown.
#[test]
fn check_connect_lists_every_failing_endpoint_once() {
    let Some(s) = Sshd::start() else { return };
    let f = Ftpd::start();
    let tls = Ftpd::start_tls();
    f.remote().mkdir("in");
    f.remote().mkdir("out");
    // The server's user may not write here (owned by root, and read-only).
    let ro = f.root.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let sr = s.remote();
    sr.mkdir("out");
    let other_ca = make_ca(tls.scratch(), "other", false);
    let wrong_pw = "Wr0ng-Pa55-xyzzy-check";
    let ftp = |dir: &str, var: &str| {
        format!(
            "type = \"ftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"bob\"\npassword_env = \"{var}\"\nremote_dir = \"{dir}\"\ntimeout = \"10s\"\n",
            f.port
        )
    };
    let sftp_auth = match &s.password {
        Some(_) => "password_env = \"SG_SFTP_PASSWORD\"\n".to_string(),
        None => format!("key_file = \"{}\"\n", s.key.display()),
    };
    let sftp = |dir: &str, fingerprint: &str| {
        format!(
            "type = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n{sftp_auth}host_key_sha256 = \"{fingerprint}\"\nremote_dir = \"{}/{dir}\"\ntimeout = \"10s\"\n",
            s.port,
            s.user,
            s.data.display()
        )
    };
    let not_the_key = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8";
    let ftps = format!(
        "type = \"ftps\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"bob\"\npassword_env = \"SG_FTPS_PASSWORD\"\nca_file = \"{}\"\ntimeout = \"10s\"\n",
        tls.port,
        other_ca.display()
    );
    let ws = connect_ws(&format!(
        "{}{}{}{}{}type = \"dir\"\npath = \"in/local\"\n{}{}{}{}{}{}{}type = \"dir\"\npath = \"afile/out\"\n",
        source("wms", "inventory", "inv"),
        ftp("in", "SG_FTP_WRONG"),
        source("orders", "orders", "ord"),
        sftp("nope", &s.fingerprint),
        source("local", "inventory", "inv"),
        source("portal", "inventory", "inv"),
        ftps,
        feed_cart("shop") + &sftp("out", not_the_key),
        feed_cart("ro") + &ftp("ro", "SG_FTP_PASSWORD"),
        feed_cart("good") + &ftp("out", "SG_FTP_PASSWORD"),
        feed_cart("sout") + &sftp("out", &s.fingerprint),
        feed_cart("blocked"),
    ));
    ws.write("afile", "not a folder\n");
    let mut env = vec![
        ("SG_FTP_WRONG".to_string(), wrong_pw.to_string()),
        ("SG_FTP_PASSWORD".to_string(), f.password.clone()),
        ("SG_FTPS_PASSWORD".to_string(), tls.password.clone()),
    ];
    if let Some(p) = &s.password {
        env.push(("SG_SFTP_PASSWORD".into(), p.clone()));
    }
    let started = std::time::Instant::now();
    let o = ws.run_env(&["check", "--connect"], &env);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let lines = endpoint_lines(&o, &ws);
    let sftp_at = |dir: &str| {
        format!(
            "sftp://{}@127.0.0.1:{}{}/{dir}",
            s.user,
            s.port,
            s.data.display()
        )
    };
    let pid_line = &lines[5];
    let probe = pid_line
        .split(".stockgate-check-")
        .nth(1)
        .and_then(|r| r.split_once(".tmp"))
        .map(|(pid, _)| pid.to_string())
        .unwrap_or_default();
    assert!(
        !probe.is_empty() && probe.chars().all(|c| c.is_ascii_digit()),
        "{pid_line}"
    );
    let want = vec![
        format!(
            "inbound wms: ftp://bob@127.0.0.1:{}/in: cannot log in as bob: 530 Login authentication failed",
            f.port
        ),
        format!(
            "inbound orders: {}: remote folder {}/nope does not exist on 127.0.0.1:{}",
            sftp_at("nope"),
            s.data.display(),
            s.port
        ),
        format!(
            "ok  inbound local: {} (not there yet; it can be made)",
            ws.path("in/local").display()
        ),
        format!(
            "inbound portal: ftps://bob@127.0.0.1:{}/: cannot start TLS (AUTH TLS, PROT P): certificate not trusted (unknown issuer): ca_file {} does not hold the CA that signed it",
            tls.port,
            other_ca.display()
        ),
        format!(
            "cart shop: {}: host key of 127.0.0.1:{} does not match host_key_sha256 \"{not_the_key}\": the server offers ssh-ed25519 {fp}; if an administrator of the server confirms it, set host_key_sha256 = \"{fp}\"",
            sftp_at("out"),
            s.port,
            fp = s.fingerprint
        ),
        format!(
            "cart ro: ftp://bob@127.0.0.1:{}/ro: cannot put .stockgate-check-{probe}.tmp: 553 Can't open that file: Permission denied",
            f.port
        ),
        format!(
            "ok  cart good: ftp://bob@127.0.0.1:{}/out (writable)",
            f.port
        ),
        format!("ok  cart sout: {} (writable)", sftp_at("out")),
        format!(
            "cart blocked: {p}: cannot create {p}: Not a directory (os error 20)",
            p = ws.path("afile/out").display()
        ),
    ];
    assert_eq!(lines, want, "\n{}", o.stdout);
    assert_eq!(o.stderr, "6 of 9 endpoints failed\n");
    for (_, secret) in &env {
        assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret));
    }
    // Nothing left behind, nothing recorded.
    assert_eq!(f.remote().files(""), Vec::<String>::new());
    assert_eq!(sr.files(""), Vec::<String>::new());
    assert!(!ws.path("in/local").exists());
    assert!(!ws.path("var").exists(), "the ledger is not even opened");
}

/// Every endpoint good: one ok line each, exit 0, no file fetched or left
/// on any server, the ledger never made.
#[test]
fn check_connect_passes_a_good_config_and_leaves_nothing() {
    let Some(s) = Sshd::start() else { return };
    let f = Ftpd::start();
    let (fr, sr) = (f.remote(), s.remote());
    fr.put("in/waiting.csv", STOCK_LINE);
    sr.put("in/waiting.csv", STOCK_LINE);
    let edi = format!(
        "\n[[inbound]]\nid = \"edi\"\nmerchant = \"m1\"\nkind = \"inventory\"\nmapping = \"x12in\"\nwarehouse = \"EDI\"\nacknowledge = true\n[inbound.ack_transport]\n{}[inbound.transport]\ntype = \"dir\"\npath = \"in/edi\"\n",
        sr.transport("acks", "")
    );
    let ws = connect_ws(&format!(
        "{}{}{}{}{}type = \"dir\"\npath = \"in/local\"\n{}{}{}{}type = \"dir\"\npath = \"out/local\"\n",
        source("fin", "inventory", "inv"),
        fr.transport("in", ""),
        source("sin", "inventory", "inv"),
        sr.transport("in", ""),
        source("local", "inventory", "inv"),
        edi,
        feed_cart("fout") + &fr.transport("out", ""),
        feed_cart("sout") + &sr.transport("out", ""),
        feed_cart("local"),
    ));
    ws.write("in/local/a.csv", STOCK_LINE);
    ws.mapping(
        "x12in",
        "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifier = \"BP\"\nquantity_qualifier = \"34\"\n",
    );
    std::fs::create_dir_all(ws.path("out/local")).unwrap();
    let env: Vec<_> = fr.env.iter().chain(&sr.env).cloned().collect();
    let o = ws.run_env(&["check", "--connect"], &env);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let at = |kind: &str| match kind {
        "ftp" => format!("ftp://bob@127.0.0.1:{}", f.port),
        _ => format!("sftp://{}@127.0.0.1:{}{}", s.user, s.port, s.data.display()),
    };
    assert_eq!(
        endpoint_lines(&o, &ws),
        vec![
            format!("ok  inbound fin: {}/in (listed, 1 entry)", at("ftp")),
            format!("ok  inbound sin: {}/in (listed, 1 entry)", at("sftp")),
            format!(
                "ok  inbound local: {} (listed, 1 entry)",
                ws.path("in/local").display()
            ),
            format!(
                "ok  inbound edi: {} (not there yet; it can be made)",
                ws.path("in/edi").display()
            ),
            format!(
                "ok  inbound edi ack_transport: {}/acks (writable)",
                at("sftp")
            ),
            format!("ok  cart fout: {}/out (writable)", at("ftp")),
            format!("ok  cart sout: {}/out (writable)", at("sftp")),
            format!(
                "ok  cart local: {} (writable)",
                ws.path("out/local").display()
            ),
        ],
        "\n{}",
        o.stdout
    );
    assert_eq!(o.stderr, "");
    assert!(!o.stdout.contains(&f.password));
    assert_eq!(fr.files(""), vec!["in/waiting.csv".to_string()]);
    assert_eq!(sr.files(""), vec!["in/waiting.csv".to_string()]);
    assert_eq!(ws.files_under("out"), Vec::<String>::new());
    assert_eq!(ws.files_under("in"), vec!["local/a.csv".to_string()]);
    assert!(!ws.path("var").exists(), "the ledger is not even opened");
}

const STOCK_LINE: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,1,2025-06-01T10:00:00Z,,\n";
