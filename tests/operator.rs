//! Issue 10, "An operator's first day": real spreadsheets, one-pass
//! `check`, a command line that explains itself. One test (or more) per point.

mod common;
use common::*;
use std::process::Command;

const H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";
const T0: &str = "2025-06-01T10:00:00Z";

/// The standard workspace, its `wms` source with a default warehouse (for
/// mappings without a warehouse column).
fn ws_wh() -> Workspace {
    let ws = Workspace::standard("");
    let cfg = ws.read("stockgate.toml").replacen(
        "mapping = \"inv\"\n",
        "mapping = \"inv\"\nwarehouse = \"MAIN\"\n",
        1,
    );
    ws.config(&cfg);
    ws
}

// ----- 1. Excel's trailing delimiter-only rows -----

#[test]
fn p01_delimiter_only_rows_are_skipped_and_counted() {
    let ws = ws_wh();
    ws.mapping(
        "inv",
        "format = \"csv\"\nrecord = \"inventory\"\ndelimiter = \";\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\n",
    );
    let p = ws.write("in/wms/x.csv", "SKU;Qty\nA;5\nB;7\n;\n ; \n;;\n\n");
    let v = ws.ingest("wms", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 2, "{v}");
    assert_eq!(v["skipped"], 3, "{v}");
    let p = ws.write("in/wms/y.csv", "SKU;Qty\nA;6\n;\n");
    let o = ws.run_ok(&["ingest", "--source", "wms", &p.display().to_string()], 0);
    assert_eq!(
        o.stdout,
        format!("applied   {}  rows=1 stale=0 skipped=1\n", p.display())
    );
}

// ----- 2. encodings -----

#[test]
fn p02_windows_1252_and_utf16_files_are_read_with_encoding() {
    let ws = ws_wh();
    let m = |enc: &str| {
        format!(
            "format = \"csv\"\nrecord = \"inventory\"\n{enc}[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\ndescription = \"Title\"\n"
        )
    };
    // 0xE9 is é in windows-1252, and invalid UTF-8.
    let cp1252 = b"SKU,Qty,Title\nA,5,Caf\xe9\n".to_vec();
    ws.mapping("inv", &m(""));
    let p = ws.write("in/wms/c.csv", &cp1252);
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(
        v["errors"][0],
        "line 2, column \"Title\" (description), value \"Caf\u{fffd}\": invalid UTF-8; the file looks like windows-1252 (an Excel export): set encoding = \"windows-1252\" in mappings/inv.toml"
    );
    ws.mapping("inv", &m("encoding = \"windows-1252\"\n"));
    let p = ws.write("in/wms/c2.csv", &cp1252);
    assert_eq!(ws.ingest("wms", &p, 0)["outcome"], "applied");
    let e = ws
        .run_ok(&["explain", "--merchant", "m1", "--sku", "A", "--json"], 0)
        .json();
    assert_eq!(e["available"], 5);
    let desc = ws.count_where("products", |r| r.text("description") == Some("Café"));
    assert_eq!(desc, 1);

    // UTF-16 LE with a BOM, as Excel's "Unicode text" saves it.
    let text = "SKU,Qty,Title\r\nB,9,Crème\r\n";
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    ws.mapping("inv", &m(""));
    let p = ws.write("in/wms/u.csv", &utf16);
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(
        v["errors"][0],
        "line 1: the file looks like UTF-16, not UTF-8: set encoding = \"utf-16\" in mappings/inv.toml"
    );
    ws.mapping("inv", &m("encoding = \"utf-16\"\n"));
    let p = ws.write("in/wms/u2.csv", &utf16);
    assert_eq!(ws.ingest("wms", &p, 0)["outcome"], "applied");
    assert_eq!(
        ws.count_where("products", |r| r.text("description") == Some("Crème")),
        1
    );
    // A typo in the key's value is named, with the closest.
    ws.mapping("inv", &m("encoding = \"windows1252\"\n"));
    let o = ws.run_ok(&["check"], 2);
    assert!(o.stdout.contains("key `encoding`: must be \"utf-8\", \"windows-1252\" or \"utf-16\", got \"windows1252\"; did you mean \"windows-1252\"?"), "{}", o.stdout);
}

// ----- 3. physical line numbers -----

#[test]
fn p03_line_numbers_are_physical_lines_for_lf_crlf_cr_and_quoted_newlines() {
    for (eol, name) in [("\n", "lf"), ("\r\n", "crlf"), ("\r", "cr")] {
        let ws = Workspace::standard("");
        let body = [
            H.trim_end(),
            &format!("A,W1,1,{T0},,\"two{eol}lines\""),
            &format!("B,W1,x,{T0},,"),
            "",
        ]
        .join(eol);
        let p = ws.write("in/wms/s.csv", body);
        let v = ws.ingest("wms", &p, 1);
        assert_eq!(
            v["errors"][0], "line 4, column \"Qty\" (quantity), value \"x\": not a whole number",
            "{name}: {v}"
        );
        let txt = ws.read("var/quarantine/wms/s.csv.error.txt");
        assert!(txt.contains("\nline 4, column \"Qty\""), "{name}: {txt}");
    }
}

// ----- 4. wrong delimiter -----

#[test]
fn p04_a_semicolon_file_read_as_commas_says_which_delimiter_to_set() {
    let ws = Workspace::standard("");
    ws.mapping(
        "inv",
        "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"Item Number\"\nquantity = \"On Hand\"\nwarehouse = \"Location\"\n",
    );
    let p = ws.write("in/wms/s.csv", "Item Number;On Hand;Location\nA;1;W1\n");
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(
        v["errors"][0],
        "line 1: header lacks column \"On Hand\" (quantity), \"Item Number\" (sku), \"Location\" (warehouse); header has: Item Number;On Hand;Location; the file looks \";\"-delimited: set delimiter = \";\" in mappings/inv.toml"
    );
    assert_eq!(v["mapping"], "mappings/inv.toml");
    let txt = ws.read("var/quarantine/wms/s.csv.error.txt");
    assert!(txt.contains("\nmapping: mappings/inv.toml\n"), "{txt}");
    // A row error names the mapping too, in the human output.
    let p = ws.write("in/wms/t.csv", "Item Number,On Hand,Location\nA,x,W1\n");
    let o = ws.run_ok(&["ingest", "--source", "wms", &p.display().to_string()], 1);
    assert!(
        o.stdout.contains("\n    mapping: mappings/inv.toml\n"),
        "{}",
        o.stdout
    );
}

// ----- 5. retry after a fix -----

#[test]
fn p05_a_fixed_file_ingested_again_leaves_quarantine_and_status() {
    let ws = Workspace::standard("");
    let p = ws.write("in/wms/s.csv", format!("{H}A,W1,x,{T0},,\n"));
    ws.run_ok(&["run", "--once"], 1);
    assert!(!p.exists());
    let q = ws.path("var/quarantine/wms/s.csv");
    let txt = ws.read("var/quarantine/wms/s.csv.error.txt");
    let cmd = format!(
        "  stockgate --config {} ingest --source wms {}\n",
        ws.config_path().display(),
        q.display()
    );
    assert!(
        txt.contains("to retry: fix this file here (or mappings/inv.toml), then run:\n"),
        "{txt}"
    );
    assert!(txt.contains(&cmd), "{txt}");
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 1, "{st}");
    std::fs::write(&q, format!("{H}A,W1,4,{T0},,\n")).unwrap();
    let v = ws.ingest("wms", &q, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert!(ws.files_under("var/quarantine/wms").is_empty());
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 0, "{st}");
    assert!(st["inbound"][0]["last_error"].is_null(), "{st}");
}

// ----- 6. check: every problem, once, with file:line and key -----

#[test]
fn p06_check_reports_the_config_and_every_mapping_in_one_pass() {
    let ws = Workspace::new();
    let cfg = format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", ""),
        inbound("wms2", "m1", "inventory", "inv", ""),
        inbound("orders", "m1", "orders", "ord", ""),
    ) + "
[[cart]]
id = \"shop\"
merchant = \"m1\"
format = \"csv\"
mapping = \"feed\"
min_level = \"5\"
[cart.transport]
type = \"dir\"
path = \"out/shop\"
";
    ws.config(&cfg);
    // inv (shared by two sources), ord and feed each have one error.
    ws.mapping("inv", "format = \"csv\"\nrecord = \"inventory\"\nheader = \"yes\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\n");
    ws.mapping("ord", "format = \"csv\"\nrecord = \"orders\"\n[columns]\norder_id = \"O\"\nsku = \"S\"\nquantity = \"Q\"\nstatuss = \"St\"\n");
    ws.mapping(
        "feed",
        "format = \"csv\"\nheadr = true\ncolumns = [ { header = \"SKU\", field = \"sku\" } ]\n",
    );
    let o = ws.run_ok(&["check"], 2);
    let c = ws.config_path().display().to_string();
    let m = |n: &str| ws.path(&format!("mappings/{n}.toml")).display().to_string();
    let mut got: Vec<&str> = o.stdout.lines().collect();
    got.sort();
    let mut want = vec![
        format!(
            "{c}:47: key `cart[0].min_level`: min_level must be a whole number, like min_level = 5"
        ),
        format!("{c}:42: key `cart[0].schedule`: required key \"schedule\" is missing"),
        format!(
            "{}:3: key `header`: header must be true or false, like header = true",
            m("inv")
        ),
        format!(
            "{}:7: key `columns.statuss`: unknown field \"statuss\"; orders fields are: sku, quantity, warehouse, order_id, line, ordered_at, status, unit, ship_to_name, ship_to_company, ship_to_address1, ship_to_address2, ship_to_city, ship_to_state, ship_to_postal_code, ship_to_country, ship_to_phone, ship_to_email, ship_method, po_number",
            m("ord")
        ),
        format!(
            "{}:2: key `headr`: unknown key; did you mean \"header\"?; known keys of a \"csv\" mapping: format, delimiter, header, columns, as_of, line_ending, quote",
            m("feed")
        ),
    ];
    want.sort();
    assert_eq!(got, want, "\n{}", o.stdout);
    assert_eq!(o.stderr, "5 problems found\n");
}

/// Ids used twice, a merchant declared twice, two carts writing one file and
/// a bad `keep`: every one reported, entry by entry, in the file's order.
#[test]
fn p06_check_reports_repeated_ids_and_colliding_outboxes_in_order() {
    let ws = Workspace::standard("");
    let cfg = ws
        .read("stockgate.toml")
        .replacen("archive = ", "keep = \"soon\"\narchive = ", 1)
        + "\n[[merchant]]\nid = \"m1\"\n"
        + &inbound("wms", "m1", "inventory", "inv", "")
        + &cart("shop", "m1", "")
        + &cart("web", "m1", "")
            .replace("{cart}-{seq}.csv", "feed.csv")
            .replace("out/web", "out/shop")
        + &cart("web2", "m1", "")
            .replace("{cart}-{seq}.csv", "feed.csv")
            .replace("out/web2", "out/shop");
    ws.config(&cfg);
    let o = ws.run_ok(&["check"], 2);
    let lines: Vec<String> = o
        .stdout
        .lines()
        .map(|l| l.split_once(": key ").map_or(l, |(_, k)| k).to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "`merchant[1].id`: merchant \"m1\" is declared twice",
            "`inbound[2].id`: id \"wms\" is used twice",
            "`cart[1].id`: cart id \"shop\" is used twice",
            "`cart[3].transport.file_name`: carts \"web\" and \"web2\" deliver to the same place with the same file_name \"feed.csv\": one would overwrite the other (put {cart} in file_name)",
            "`ledger.keep`: must be like \"90d\", \"12h\" or \"forever\", got \"soon\"",
        ],
        "{}",
        o.stdout
    );
    assert_eq!(o.stderr, "5 problems found\n");
}

// ----- 7. did you mean -----

#[test]
fn p07_did_you_mean_for_keys_carts_sources_merchants_and_time_zones() {
    let ws = Workspace::standard(&cart(
        "web",
        "m1",
        "timezone = \"Europe/Berln\"\nshedule_x = 1",
    ));
    let o = ws.run_ok(&["check"], 2);
    assert!(o.stdout.contains("key `cart[1].timezone`: unknown time zone \"Europe/Berln\"; did you mean \"Europe/Berlin\"?"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("key `cart[1].shedule_x`: unknown key; did you mean \"schedule\"?"),
        "{}",
        o.stdout
    );
    let ws = Workspace::standard(&cart("web", "m2", ""));
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout
            .contains("unknown merchant \"m2\"; did you mean \"m1\"?"),
        "{}",
        o.stdout
    );
    let ws = Workspace::standard("");
    let o = ws.run_ok(&["sync", "shpo"], 2);
    assert_eq!(
        o.stderr,
        format!(
            "error: no cart \"shpo\" in {}; did you mean \"shop\"?; carts: shop\n",
            ws.config_path().display()
        )
    );
    let o = ws.run_ok(&["ingest", "--source", "wsm", "x.csv"], 2);
    assert!(
        o.stderr.contains("no inbound source \"wsm\"")
            && o.stderr
                .contains("did you mean \"wms\"?; sources: wms, orders"),
        "{}",
        o.stderr
    );
    // An X12 mapping's known keys are the X12 ones, not all of them.
    ws.mapping(
        "inv",
        "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifer = \"VN\"\n",
    );
    let o = ws.run_ok(&["check"], 2);
    let line = o
        .stdout
        .lines()
        .find(|l| l.contains("sku_qualifer"))
        .unwrap();
    assert!(line.contains("did you mean \"sku_qualifier\"?"), "{line}");
    assert!(
        !line.contains("sender_id") && !line.contains("delimiter"),
        "{line}"
    );
}

// ----- 8. typed keys -----

#[test]
fn p08_typed_keys_say_what_they_want() {
    let ws = Workspace::standard(&cart(
        "web",
        "m1",
        "full_sync = \"yes\"\nwarehouses = \"W1\"",
    ));
    let o = ws.run_ok(&["check"], 2);
    for w in [
        "key `cart[1].full_sync`: full_sync must be true or false, like full_sync = true",
        "key `cart[1].warehouses`: warehouses must be a list, like warehouses = [\"...\"]",
    ] {
        assert!(o.stdout.contains(w), "{w}\n{}", o.stdout);
    }
}

// ----- 9. unknown ids exit 2 listing the valid ones -----

#[test]
fn p09_unknown_ids_are_usage_errors_listing_the_valid_ones() {
    let ws = Workspace::standard(&cart("web", "m1", ""));
    let c = ws.config_path().display().to_string();
    for (args, want) in [
        (
            vec!["history", "--cart", "nope"],
            format!("error: no cart \"nope\" in {c}; carts: shop, web\n"),
        ),
        (
            vec!["sync", "nope"],
            format!("error: no cart \"nope\" in {c}; carts: shop, web\n"),
        ),
        (
            vec!["explain", "--merchant", "M1", "--sku", "A"],
            format!("error: no merchant \"M1\" in {c}; did you mean \"m1\"?; merchants: m1\n"),
        ),
        (
            vec![
                "explain",
                "--merchant",
                "m1",
                "--sku",
                "A",
                "--cart",
                "nope",
            ],
            format!("error: no cart \"nope\" of merchant \"m1\" in {c}; carts: shop, web\n"),
        ),
        (
            vec!["ingest", "--source", "nope", "f.csv"],
            format!("error: no inbound source \"nope\" in {c}; sources: wms, orders\n"),
        ),
    ] {
        let o = ws.run_ok(&args, 2);
        assert_eq!(o.stderr, want, "{args:?}");
        assert_eq!(o.stdout, "", "{args:?}");
    }
}

// ----- 10. mapping as a path or a name -----

#[test]
fn p10_mapping_is_a_name_or_a_path() {
    let ws = Workspace::standard("");
    let cfg = ws.read("stockgate.toml").replacen(
        "mapping = \"inv\"",
        "mapping = \"mappings/inv.toml\"",
        1,
    );
    ws.config(&cfg);
    ws.run_ok(&["check"], 0);
    ws.apply("wms", "a.csv", &format!("{H}A,W1,1,{T0},,\n"));
    let cfg = cfg.replacen(
        "mapping = \"mappings/inv.toml\"",
        "mapping = \"mappings/nv.toml\"",
        1,
    );
    ws.config(&cfg);
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout
            .contains("key `inbound[0].mapping`: no mapping file ")
            && o.stdout.contains("did you mean \"inv\"?"),
        "{}",
        o.stdout
    );
}

// ----- 11. help, man page, completions -----

#[test]
fn p11_help_describes_every_argument_with_examples_exit_codes_and_environment() {
    let ws = Workspace::new();
    let help = |args: &[&str]| {
        let o = run_bin(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ws.dir(),
        );
        assert_eq!(o.code, 0, "{o:?}");
        o.stdout
    };
    let top = help(&["--help"]);
    for w in [
        "Examples:",
        "Exit status:",
        "STOCKGATE_CONFIG",
        "STOCKGATE_LOG",
        "STOCKGATE_CLOCK_OFFSET",
        "NO_COLOR",
        "completions",
        "man",
    ] {
        assert!(top.contains(w), "{w} not in --help:\n{top}");
    }
    for (cmd, args) in [
        ("run", &["--once", "--http"][..]),
        ("ingest", &["--source", "--force", "--json", "<FILE>"]),
        (
            "sync",
            &["<CART>", "--force", "--dry-run", "--output", "--json"],
        ),
        ("status", &["--json"]),
        ("explain", &["--merchant", "--sku", "--cart", "--json"]),
        ("history", &["--cart", "--limit", "--json"]),
        ("init", &["[DIR]", "--list-presets"]),
        ("demo", &["[DIR]"]),
    ] {
        let h = help(&[cmd, "--help"]);
        for a in args {
            // Every argument line has a description after it.
            let line = h
                .lines()
                .find(|l| {
                    l.trim_start().starts_with(a)
                        || l.contains(&format!(" {a} "))
                        || l.contains(&format!("{a} <"))
                })
                .unwrap_or_else(|| panic!("{a} not in {cmd} --help:\n{h}"));
            assert!(
                line.trim().len() > a.len() + 12,
                "{cmd} {a} undescribed: {line:?}"
            );
        }
        assert_eq!(
            h.contains("--config"),
            !["init", "demo"].contains(&cmd),
            "{cmd}:\n{h}"
        );
    }
    let man = help(&["man"]);
    assert!(
        man.starts_with(".ie \\n(.g .ds Aq") || man.contains(".TH stockgate"),
        "{man}"
    );
    for sh in ["bash", "zsh", "fish"] {
        let c = help(&["completions", sh]);
        assert!(
            c.contains("stockgate") && c.contains("ingest") && c.len() > 500,
            "{sh}"
        );
    }
}

// ----- 12. one line per result, colour, -q/-v -----

fn bare(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(ws.config_path())
        .args(args)
        .current_dir(ws.dir());
    c.env_remove("STOCKGATE_LOG")
        .env_remove("NO_COLOR")
        .env_remove("STOCKGATE_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn p12_one_line_per_result_and_colour_on_request() {
    let ws = Workspace::standard("");
    ws.write("in/wms/a.csv", format!("{H}A,W1,1,{T0},,\n"));
    let o = bare(&ws, &["run", "--once"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stderr, "", "no log line repeats a printed result");
    assert_eq!(o.stdout.lines().count(), 3, "{}", o.stdout);
    let p = ws.write("b.csv", format!("{H}A,W1,2,{T0},,\n"));
    let f = p.display().to_string();
    let o = bare(
        &ws,
        &["--color", "always", "ingest", "--source", "wms", &f],
        &[("NO_COLOR", "1")],
    );
    assert!(
        o.stdout.starts_with("\x1b[32mapplied  \x1b[0m "),
        "{:?}",
        o.stdout
    );
    let o = bare(
        &ws,
        &["--color", "never", "ingest", "--source", "wms", &f],
        &[],
    );
    assert!(!o.stdout.contains('\x1b'), "{:?}", o.stdout);
    // -v logs what the results do not say; -q only errors.
    let o = bare(&ws, &["-v", "sync", "shop"], &[]);
    assert!(
        o.stderr.contains("INFO") || o.stderr.is_empty(),
        "{}",
        o.stderr
    );
    let o = bare(&ws, &["-vv", "ingest", "--source", "wms", &f], &[]);
    assert!(o.stderr.contains("DEBUG"), "{}", o.stderr);
    let o = bare(
        &ws,
        &["-q", "ingest", "--source", "wms", &f],
        &[("STOCKGATE_LOG", "debug")],
    );
    assert_eq!(o.stderr, "");
    // Issue 16.6: a source that cannot look is one result line, with and
    // without -q, not also an ERROR log line.
    let cfg = ws.read("stockgate.toml")
        + "\n[[inbound]]\nid = \"far\"\nmerchant = \"m1\"\nkind = \"inventory\"\nmapping = \"inv\"\n[inbound.transport]\ntype = \"ftp\"\nhost = \"127.0.0.1\"\nuser = \"u\"\npassword_env = \"STOCKGATE_TEST_UNSET\"\nremote_dir = \"/\"\n";
    ws.config(&cfg);
    for q in [&[][..], &["-q"][..]] {
        let o = bare(&ws, &[q, &["run", "--once"]].concat(), &[]);
        assert_eq!(o.code, 1, "{o:?}");
        let all = format!("{}{}", o.stdout, o.stderr);
        assert_eq!(
            all.matches("STOCKGATE_TEST_UNSET is not set").count(),
            1,
            "{all}"
        );
    }
}

// ----- 13. progress: never on a pipe -----

#[test]
fn p13_no_progress_bar_on_a_pipe() {
    let ws = Workspace::standard("");
    let mut body = String::from(H);
    for i in 0..200_000 {
        body.push_str(&format!("S{i},W1,{},{T0},,\n", i % 100));
    }
    let p = ws.write("big.csv", body);
    let o = bare(
        &ws,
        &["ingest", "--source", "wms", &p.display().to_string()],
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stderr, "", "a pipe shows no progress");
    assert!(o.stdout.starts_with("applied "), "{}", o.stdout);
}

#[test]
fn p13_a_terminal_gets_a_progress_bar() {
    // `script` gives the command a terminal; skipped where it is missing.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no script(1): skipped");
        return;
    }
    let ws = Workspace::standard("");
    let mut body = String::from(H);
    for i in 0..400_000 {
        body.push_str(&format!("S{i},W1,{},{T0},,\n", i % 100));
    }
    let p = ws.write("big.csv", body);
    let cmd = format!(
        "'{BIN}' --config '{}' ingest --source wms '{}'",
        ws.config_path().display(),
        p.display()
    );
    let o = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env_remove("STOCKGATE_LOG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("big.csv [") && out.contains("rows"), "{out}");
    assert!(out.contains("applied"), "{out}");
}

// ----- 14. status table -----

#[test]
fn p14_status_is_an_aligned_table_in_local_time_with_long_errors_cut() {
    let ws = Workspace::standard("");
    let long = "x".repeat(300);
    let p = ws.write("in/wms/bad.csv", format!("{H}A,W1,{long},{T0},,\n"));
    ws.ingest("wms", &p, 1);
    ws.apply("wms", "good.csv", &format!("{H}A,W1,3,{T0},,\n"));
    ws.sync("shop", &[], 0);
    let o = bare(&ws, &["status"], &[("TZ", "EST5")]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("cart  format  schedule  last  last success"),
        "{}",
        o.stdout
    );
    assert!(
        lines[1].starts_with("shop  csv     every 1m  sent  "),
        "{}",
        o.stdout
    );
    assert!(lines[1].contains(" -05:00"), "local time: {}", o.stdout);
    let src = lines.iter().find(|l| l.starts_with("wms ")).unwrap();
    assert!(src.ends_with('…'), "{src}");
    assert!(src.chars().count() < 160, "{src}");
    // Columns line up: every row of the first table starts "last" at one place.
    let at = lines[0].find("last ").unwrap();
    assert_eq!(&lines[1][at..at + 4], "sent");
    // JSON keeps RFC 3339.
    let v = bare(&ws, &["status", "--json"], &[("TZ", "EST5")]).stdout;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let t = v["carts"][0]["last_success"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
}

// ----- 15. init and demo print commands that work as printed -----

#[test]
fn p15_init_prints_a_command_that_works_as_printed() {
    let ws = Workspace::new();
    let o = run_bin(&["init".into(), "my shop".into()], ws.dir());
    assert_eq!(o.code, 0, "{o:?}");
    let next = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .expect("a next: line");
    assert!(
        next.ends_with(" --config 'my shop/stockgate.toml' run --once"),
        "{next}"
    );
    let r = Command::new("sh")
        .arg("-c")
        .arg(next)
        .current_dir(ws.dir())
        .env_remove("STOCKGATE_LOG")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{r:?}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains("cargo install --path ."),
        "README says how to install"
    );
}

// ----- 16. a skipped manual sync leaves the schedule alone -----

#[test]
fn p16_a_skipped_manual_sync_keeps_next_due() {
    let ws = Workspace::standard("");
    ws.apply("wms", "a.csv", &format!("{H}A,W1,1,{T0},,\n"));
    ws.sync("shop", &[], 0);
    let due =
        |ws: &Workspace| ws.run_ok(&["status", "--json"], 0).json()["carts"][0]["next_due"].clone();
    let before = due(&ws);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["outcome"], "skipped", "{v}");
    assert_eq!(due(&ws), before);
    // The attempt is still in history.
    assert_eq!(ws.history("shop").len(), 2);
}

// ----- 16. a source that cannot look is visible (CONTRACT rule 37) -----

#[test]
fn p16_a_source_that_cannot_look_shows_in_status_until_a_good_look() {
    let ws = Workspace::standard("");
    let good = ws.read("stockgate.toml");
    let far = "\n[[inbound]]\nid = \"far\"\nmerchant = \"m1\"\nkind = \"inventory\"\nmapping = \"inv\"\n[inbound.transport]\n";
    let failing = format!(
        "{good}{far}type = \"ftp\"\nhost = \"127.0.0.1\"\nuser = \"u\"\npassword_env = \"STOCKGATE_TEST_UNSET\"\nremote_dir = \"/\"\n"
    );
    ws.config(&failing);
    for _ in 0..3 {
        assert_eq!(bare(&ws, &["run", "--once"], &[]).code, 1);
    }
    let v: serde_json::Value =
        serde_json::from_str(&bare(&ws, &["status", "--json"], &[]).stdout).unwrap();
    let far_st = v["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "far")
        .unwrap()
        .clone();
    assert_eq!(far_st["failures"], 3, "{far_st}");
    assert_eq!(far_st["last_look"], serde_json::Value::Null);
    assert_eq!(
        far_st["last_error"],
        "ftp://u@127.0.0.1:21/: cannot log in: environment variable STOCKGATE_TEST_UNSET is not set"
    );
    let at = far_st["last_error_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    let o = bare(&ws, &["status"], &[]);
    let line = o.stdout.lines().find(|l| l.starts_with("far ")).unwrap();
    assert!(
        line.contains("3 failed looks: ftp://u@127.0.0.1:21/"),
        "{line}"
    );
    // The source fixed (its folder is local now, and missing: it is made):
    // the next good look clears it.
    ws.config(&format!("{good}{far}type = \"dir\"\npath = \"in/far\"\n"));
    assert_eq!(bare(&ws, &["run", "--once"], &[]).code, 0);
    assert!(ws.path("in/far").is_dir());
    let v: serde_json::Value =
        serde_json::from_str(&bare(&ws, &["status", "--json"], &[]).stdout).unwrap();
    let far_st = &v["inbound"][2];
    assert_eq!(far_st["source"], "far");
    assert_eq!(far_st["failures"], 0, "{far_st}");
    assert_eq!(far_st["last_error"], serde_json::Value::Null);
    assert!(far_st["last_look"].is_string(), "{far_st}");
}
