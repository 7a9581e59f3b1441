//! The whole EDI round trip through the real binary: a warehouse's X12 846
//! in (answered with a 997), feeds out in every format, and the retailer's
//! 997s for our 846 matched back into `history`.

mod common;
use common::*;
use serde_json::Value;

const RETAIL_846: &str = r#"format = "x12-846"
version = "004010"
sender_qualifier = "ZZ"
sender_id = "ACMEWHSE"
receiver_qualifier = "08"
receiver_id = "925485US00"
usage = "P"
item_ids = [ ["VN", "sku"] ]
quantity_qualifier = "33"
unit = "EA"
"#;

const XML_FEED: &str = r#"format = "xml"
root = "Inventory"
item = "Item"
fields = [ { element = "SKU", field = "sku" }, { element = "Quantity", field = "quantity" } ]
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    let cfg = format!(
        "{}{}{}{}{}{}",
        header(&["m1"]),
        inbound(
            "wh-edi",
            "m1",
            "inventory",
            "x12-in",
            "warehouse = \"EDI\"\nacknowledge = true\n[inbound.ack_transport]\ntype = \"dir\"\npath = \"out/acks\"\n"
        ),
        inbound(
            "retailer",
            "m1",
            "inventory",
            "x12-in",
            "warehouse = \"UNUSED\"\n"
        ),
        cart("shop", "m1", ""),
        cart("portal", "m1", "").replace(
            "format = \"csv\"\nmapping = \"feed\"",
            "format = \"xml\"\nmapping = \"xml-feed\""
        ),
        cart("retail", "m1", "").replace(
            "format = \"csv\"\nmapping = \"feed\"",
            "format = \"x12-846\"\nmapping = \"retail-846\""
        ),
    );
    ws.config(&cfg);
    ws.mapping("x12-in", "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifier = \"VN\"\nquantity_qualifier = \"33\"\n");
    ws.mapping("feed", FEED_MAPPING);
    ws.mapping("xml-feed", XML_FEED);
    ws.mapping("retail-846", RETAIL_846);
    ws
}

/// A 997 from the retailer (ISA sender 925485US00) for our group `group`.
fn retailer_997(group: u32, set_status: &str, codes: &str, ak9: &str) -> String {
    let ak5 = if codes.is_empty() {
        format!("AK5*{set_status}~")
    } else {
        format!("AK5*{set_status}*{codes}~")
    };
    format!(
        "ISA*00*          *00*          *08*925485US00     *ZZ*ACMEWHSE       *261126*1200*U*00401*000000{group:03}*0*P*>~\
GS*FA*925485US00*ACMEWHSE*20261126*1200*{group}*X*004010~\
ST*997*0001~AK1*IB*{group}~AK2*846*0001~{ak5}AK9*{ak9}~SE*6*0001~GE*1*{group}~IEA*1*000000{group:03}~"
    )
}

fn retail_history(ws: &Workspace) -> Vec<Value> {
    ws.history("retail")
        .into_iter()
        .filter(|h| h["outcome"] == "sent")
        .collect()
}

#[test]
fn x12_in_997_back_feeds_out_in_every_format_and_997s_matched_to_history() {
    let ws = workspace();
    // 1. The warehouse's 846 (a real third-party 5010 sample): applied, answered.
    let sample = std::fs::read(x12_sample(
        "crate_x12-types-0.12.0_v005010_846_full_transmission.edi",
    ))
    .unwrap();
    ws.write("in/wh-edi/stock.edi", &sample);
    let out = ws.run_ok(&["run", "--once"], 0);
    assert!(out.stdout.contains("applied"), "{}", out.stdout);
    let acks = ws.files_under("out/acks");
    assert_eq!(acks.len(), 1, "{acks:?}");
    let ack = ws.read(&format!("out/acks/{}", acks[0]));
    assert!(ack.contains("AK1*IB*1*005010~"), "{ack}");
    assert!(ack.contains("AK5*A~"), "{ack}");
    assert!(ack.contains("AK9*A*1*1*1~"), "{ack}");
    assert!(
        ack.contains("*ZZ*RECEIVER       *ZZ*SENDER         *"),
        "the 997 goes back to the sender: {ack}"
    );
    x12_validate(&[&ws.path(&format!("out/acks/{}", acks[0]))]);

    // 2. Feeds in every format, from the X12 inventory.
    assert_eq!(
        ws.read("out/shop/shop-000001.csv"),
        "SKU,Quantity\nABC123,100\n"
    );
    assert_eq!(
        ws.read("out/portal/portal-000001.csv"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventory>\n  <Item><SKU>ABC123</SKU><Quantity>100</Quantity></Item>\n</Inventory>\n"
    );
    let feed = ws.path("out/retail/retail-000001.csv");
    let edi = std::fs::read_to_string(&feed).unwrap();
    assert!(
        edi.contains("LIN*1*VN*ABC123~QTY*33*100*EA~CTT*1~SE*6*0001~GE*1*1~IEA*1*000000001~"),
        "{edi}"
    );
    x12_validate(&[&feed]);
    let h = retail_history(&ws);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["group_control"], 1);
    assert_eq!(h[0]["ack"], "unacknowledged", "{}", h[0]);

    // 3. The retailer accepts 846 #1.
    ws.write("in/retailer/997-1.x12", retailer_997(1, "A", "", "A*1*1*1"));
    let v = ws.ingest("retailer", &ws.path("in/retailer/997-1.x12"), 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    assert_eq!(retail_history(&ws)[0]["ack"], "accepted");

    // 4. A second 846 (always full), rejected by the retailer with AK5 R 5.
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["group_control"], 2, "{v}");
    ws.write(
        "in/retailer/997-2.x12",
        retailer_997(2, "R", "5", "R*1*1*0"),
    );
    ws.ingest("retailer", &ws.path("in/retailer/997-2.x12"), 0);
    let h = retail_history(&ws);
    assert_eq!(h[0]["ack"], "rejected (set 0001: AK5 R 5)", "{}", h[0]);
    assert_eq!(h[1]["ack"], "accepted", "{}", h[1]);

    // 5. The 997s changed no stock: the shop still has its one number.
    assert_eq!(ws.value("ABC123", "shop"), 100);
}
