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

// ---------------------------------------------------------------------
// The order loop (CONTRACT §6): orders out to each warehouse, shipments
// back, confirmations out to the cart.

const LOOP_ORDERS: &str = r#"format = "csv"
record = "orders"
cancelled = ["cancelled"]
[columns]
order_id = "Order"
line = "Line"
sku = "SKU"
quantity = "Qty"
warehouse = "Whse"
status = "Status"
ship_to_name = "Name"
ship_to_address1 = "Street"
ship_to_city = "City"
ship_to_postal_code = "Zip"
ship_to_country = "Country"
ship_method = "Method"
po_number = "PO"
"#;

const LOOP_SHIPMENTS: &str = r#"format = "csv"
record = "shipments"
cancelled = ["cancelled"]
[columns]
order_id = "Order"
line = "Line"
sku = "SKU"
quantity = "Shipped"
shipment_id = "Shipment"
package = "Box"
tracking = "Tracking"
carrier = "Carrier"
status = "Status"
"#;

const LOOP_ORDER_FEED: &str = r#"format = "csv"
columns = [
  { header = "Order", field = "order_id" },
  { header = "Line", field = "line" },
  { header = "SKU", field = "sku" },
  { header = "Qty", field = "quantity" },
  { header = "Name", field = "ship_to_name", required = true },
  { header = "City", field = "ship_to_city" },
  { header = "Method", field = "ship_method" },
  { header = "PO", field = "po_number" },
]
"#;

const LOOP_CONFIRM_FEED: &str = r#"format = "csv"
columns = [
  { header = "Order", field = "order_id" },
  { header = "Line", field = "line" },
  { header = "SKU", field = "sku" },
  { header = "Shipped", field = "quantity" },
  { header = "Ordered", field = "ordered" },
  { header = "Shipment", field = "shipment_id" },
  { header = "Package", field = "package" },
  { header = "Tracking", field = "tracking" },
  { header = "Carrier", field = "carrier" },
]
"#;

fn feed_section(table: &str, id: &str, extra: &str, mapping: &str) -> String {
    format!(
        r#"
[[{table}]]
id = "{id}"
merchant = "acme"
format = "csv"
mapping = "{mapping}"
schedule = "every 1m"
{extra}
[{table}.transport]
type = "dir"
path = "out/{id}"
file_name = "{{cart}}-{{seq}}.{{ext}}"
"#
    )
}

fn loop_workspace() -> Workspace {
    let ws = Workspace::new();
    let cfg = format!(
        "{}{}{}{}{}{}",
        header(&["acme"]),
        inbound("shop-orders", "acme", "orders", "loop-orders", ""),
        inbound(
            "east-ship",
            "acme",
            "shipments",
            "loop-ship",
            "warehouse = \"EAST\""
        ),
        feed_section(
            "order_feed",
            "east-orders",
            "warehouse = \"EAST\"",
            "loop-order-feed"
        ),
        feed_section(
            "order_feed",
            "west-orders",
            "warehouse = \"WEST\"",
            "loop-order-feed"
        ),
        feed_section(
            "confirm_feed",
            "shop-confirms",
            "orders_from = [\"shop-orders\"]",
            "loop-confirm-feed"
        ),
    );
    ws.config(&cfg);
    ws.mapping("loop-orders", LOOP_ORDERS);
    ws.mapping("loop-ship", LOOP_SHIPMENTS);
    ws.mapping("loop-order-feed", LOOP_ORDER_FEED);
    ws.mapping("loop-confirm-feed", LOOP_CONFIRM_FEED);
    ws
}

const LOOP_ORDERS_CSV: &str = "Order,Line,SKU,Qty,Whse,Status,Name,Street,City,Zip,Country,Method,PO\n\
1001,1,A,2,EAST,,Ann Lee,1 Main St,Springfield,12345,US,UPS Ground,PO-1\n\
1001,2,B,1,WEST,,Ann Lee,1 Main St,Springfield,12345,US,UPS Ground,PO-1\n\
1002,1,C,3,EAST,,Bo Chan,2 Oak Ave,Portland,97201,US,,\n\
1003,1,A,1,EAST,,,,,,,,\n";

fn orders_json(ws: &Workspace) -> Vec<Value> {
    let o = ws.run_ok(&["orders", "--json"], 0);
    o.json().as_array().unwrap().clone()
}

fn order<'a>(orders: &'a [Value], id: &str) -> &'a Value {
    orders
        .iter()
        .find(|o| o["order_id"] == id)
        .unwrap_or_else(|| panic!("no order {id} in {orders:?}"))
}

#[test]
fn the_order_loop_end_to_end_in_csv() {
    let ws = loop_workspace();
    let v = ws.apply("shop-orders", "orders-1.csv", LOOP_ORDERS_CSV);
    assert_eq!(v["outcome"], "applied", "{v}");

    // Orders out: each line to its warehouse's feed, once; 1003 lacks the
    // required ship-to name and is held back with the reason.
    let east = ws.sync("east-orders", &[], 0);
    assert_eq!(east["outcome"], "sent", "{east}");
    assert_eq!(east["orders"], 2);
    assert_eq!(
        std::fs::read_to_string(east["file"].as_str().unwrap()).unwrap(),
        "Order,Line,SKU,Qty,Name,City,Method,PO\n\
         1001,1,A,2,Ann Lee,Springfield,UPS Ground,PO-1\n\
         1002,1,C,3,Bo Chan,Portland,,\n"
    );
    let west = ws.sync("west-orders", &[], 0);
    assert_eq!(west["orders"], 1);
    assert_eq!(
        std::fs::read_to_string(west["file"].as_str().unwrap()).unwrap(),
        "Order,Line,SKU,Qty,Name,City,Method,PO\n1001,2,B,1,Ann Lee,Springfield,UPS Ground,PO-1\n"
    );
    // Never again, even forced.
    let again = ws.sync("east-orders", &["--force"], 0);
    assert_eq!(again["outcome"], "skipped");
    assert_eq!(again["reason"], "nothing new");
    assert_eq!(
        ws.files_under("out/east-orders"),
        vec!["east-orders-000001.csv"]
    );
    let orders = orders_json(&ws);
    assert_eq!(order(&orders, "1001")["status"], "sent");
    assert_eq!(order(&orders, "1003")["status"], "open");
    assert_eq!(order(&orders, "1003")["held"], "missing ship_to_name");
    let status = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(status["orders"]["held"][0]["order_id"], "1003");
    assert_eq!(status["order_feeds"].as_array().unwrap().len(), 2);
    assert_eq!(status["confirm_feeds"][0]["cart"], "shop-confirms");

    // Shipments back: two packages of one line, a partial line, an
    // unknown order left out and named.
    let ship = "Order,Line,SKU,Shipped,Shipment,Box,Tracking,Carrier,Status\n\
                1001,1,A,1,S1,P1,1Z001,UPSN,\n\
                1001,1,A,1,S1,P2,1Z002,UPSN,\n\
                1002,,C,2,S2,P3,,FDEG,\n\
                9999,1,A,1,S9,P9,1Z999,UPSN,\n";
    let v = ws.apply("east-ship", "ship-1.csv", ship);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["left_out"][0]["reason"], "unknown order");
    assert_eq!(v["left_out"][0]["items"], 1);
    assert!(v["warnings"].to_string().contains("9999"), "{v}");
    let orders = orders_json(&ws);
    let o1 = order(&orders, "1001");
    assert_eq!(o1["status"], "partial", "{o1}");
    assert_eq!(o1["lines"][0]["shipped"], 2);
    assert_eq!(o1["lines"][1]["shipped"], 0);
    assert_eq!(o1["shipments"][0]["shipment_id"], "S1");
    assert_eq!(o1["shipments"][0]["carrier"], "UPSN");
    assert_eq!(
        o1["shipments"][0]["packages"],
        serde_json::json!([{"package": "P1", "tracking": "1Z001"}, {"package": "P2", "tracking": "1Z002"}])
    );
    assert_eq!(order(&orders, "1002")["status"], "partial");

    // The same shipment again (another file): a duplicate, nothing changes.
    let v = ws.apply(
        "east-ship",
        "ship-1-again.csv",
        &ship.replace("9999", "9998"),
    );
    assert_eq!(v["outcome"], "applied", "{v}");
    assert!(v["warnings"].to_string().contains("applied before"), "{v}");
    assert_eq!(order(&orders_json(&ws), "1001")["lines"][0]["shipped"], 2);

    // Over-shipping rejects the whole file (nothing of it applied).
    let over = "Order,Line,SKU,Shipped,Shipment,Box,Tracking,Carrier,Status\n\
                1001,2,B,1,S4,P4,1Z004,UPSN,\n\
                1002,1,C,2,S5,P5,1Z005,UPSN,\n";
    let v = ws.ingest("east-ship", &ws.write("in/east-ship/over.csv", over), 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("1 left to ship"),
        "{v}"
    );
    assert!(
        ws.path("var/quarantine/east-ship/over.csv.error.txt")
            .is_file()
    );
    assert_eq!(order(&orders_json(&ws), "1001")["lines"][1]["shipped"], 0);
    // A SKU the order does not hold rejects it too.
    let wrong = "Order,Line,SKU,Shipped,Shipment,Box,Tracking,Carrier,Status\n1002,,Z,1,S6,,,,\n";
    let v = ws.ingest(
        "east-ship",
        &ws.write("in/east-ship/wrong-sku.csv", wrong),
        1,
    );
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("holds no SKU"),
        "{v}"
    );

    // Confirmations out: one row per shipped line and package, once.
    let c = ws.sync("shop-confirms", &[], 0);
    assert_eq!(c["outcome"], "sent", "{c}");
    assert_eq!(c["shipments"], 2);
    assert_eq!(
        std::fs::read_to_string(c["file"].as_str().unwrap()).unwrap(),
        "Order,Line,SKU,Shipped,Ordered,Shipment,Package,Tracking,Carrier\n\
         1001,1,A,1,2,S1,P1,1Z001,UPSN\n\
         1001,1,A,1,2,S1,P2,1Z002,UPSN\n\
         1002,1,C,2,3,S2,P3,,FDEG\n"
    );
    assert_eq!(
        ws.sync("shop-confirms", &["--force"], 0)["reason"],
        "nothing new"
    );
    let o1 = order(&orders_json(&ws), "1001").clone();
    assert_eq!(
        o1["shipments"][0]["confirmed_to"],
        serde_json::json!(["shop-confirms"])
    );

    // The rest ships: 1001 is shipped, then confirmed once delivered.
    let v = ws.apply(
        "east-ship",
        "ship-2.csv",
        "Order,Line,SKU,Shipped,Shipment,Box,Tracking,Carrier,Status\n1001,2,B,1,S7,P7,1Z007,UPSN,\n",
    );
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(order(&orders_json(&ws), "1001")["status"], "shipped");
    assert_eq!(ws.sync("shop-confirms", &[], 0)["shipments"], 1);
    assert_eq!(order(&orders_json(&ws), "1001")["status"], "confirmed");
    let st = ws.run_ok(&["orders", "--status", "confirmed"], 0);
    assert!(
        st.stdout.contains("1001") && !st.stdout.contains("1002"),
        "{}",
        st.stdout
    );

    // Rule 26: an order changed after it was sent is flagged, not resent.
    let v = ws.apply(
        "shop-orders",
        "orders-2.csv",
        "Order,Line,SKU,Qty,Whse,Status,Name,Street,City,Zip,Country,Method,PO\n\
         1002,1,C,4,EAST,,Bo Chan,2 Oak Ave,Portland,97201,US,,\n\
         1002,2,D,1,EAST,,Bo Chan,2 Oak Ave,Portland,97201,US,,\n",
    );
    assert!(
        v["warnings"].to_string().contains("changed after sending"),
        "{v}"
    );
    let o2 = order(&orders_json(&ws), "1002").clone();
    assert_eq!(o2["changed_after_sending"], true);
    assert_eq!(ws.sync("east-orders", &[], 0)["reason"], "nothing new");

    // Rule 31: a line the warehouse cancels stops subtracting at once.
    let v = ws.apply(
        "east-ship",
        "cancel.csv",
        "Order,Line,SKU,Shipped,Shipment,Box,Tracking,Carrier,Status\n1002,1,C,0,S8,,,,cancelled\n",
    );
    assert_eq!(v["outcome"], "applied", "{v}");
    let o2 = order(&orders_json(&ws), "1002").clone();
    assert_eq!(o2["lines"][0]["cancelled"], true, "{o2}");
    let h = ws.history("east-orders");
    assert_eq!(h.len(), 3, "{h:?}");
}

const EDI_940: &str = r#"format = "x12-940"
version = "004010"
sender_qualifier = "ZZ"
sender_id = "ACMEGATE"
receiver_qualifier = "ZZ"
receiver_id = "EASTWHSE"
usage = "P"
item_ids = [ ["VN", "sku"] ]
"#;

const EDI_856: &str = r#"format = "x12-856"
version = "005010"
sender_qualifier = "ZZ"
sender_id = "ACMEGATE"
receiver_qualifier = "08"
receiver_id = "925485US00"
usage = "P"
item_ids = [ ["VN", "sku"] ]
"#;

const PO_850: &str = "\
ISA*00*          *00*          *ZZ*RETAILER       *ZZ*ACMEGATE       *261201*0930*U*00401*000000005*0*P*>~
GS*PO*RETAILER*ACMEGATE*20261201*0930*5*X*004010~
ST*850*0001~
BEG*00*SA*PO-778**20261201~
TD5**2*UPSN**UPS 2ND DAY~
N1*ST*Ada Lovelace~
N2*Analytical Ltd~
N3*12 Engine St*Unit 3~
N4*London*LN*N1 9GU*GB~
PO1*1*3*EA*9.99**VN*SKU-1~
PO1*2*1*EA*1.00**VN*SKU-2~
CTT*2~
SE*11*0001~
GE*1*5~
IEA*1*000000005~
";

fn ship_945(lines: &str, segments: usize, control: u32) -> String {
    format!(
        "ISA*00*          *00*          *ZZ*EASTWHSE       *ZZ*ACMEGATE       *261202*1600*U*00401*{control:09}*0*P*>~\
GS*SW*EASTWHSE*ACMEGATE*20261202*1600*{control}*X*004010~\
ST*945*0001~\
W06*N*PO-778*20261202*SH-945**PO-778~\
G62*11*20261202*8*1405~\
W27*M*UPSN*UPS 2ND DAY~\
{lines}\
SE*{segments}*0001~\
GE*1*{control}~\
IEA*1*{control:09}~"
    )
}

#[test]
fn an_850_goes_out_as_a_940_and_its_945_comes_back_as_an_856() {
    let ws = Workspace::new();
    let cfg = format!(
        "{}{}{}{}{}",
        header(&["acme"]),
        inbound(
            "retail-850",
            "acme",
            "orders",
            "in-850",
            "warehouse = \"EAST\""
        ),
        inbound(
            "east-945",
            "acme",
            "shipments",
            "in-945",
            "warehouse = \"EAST\"\nacknowledge = true\n[inbound.ack_transport]\ntype = \"dir\"\npath = \"out/acks\"\n"
        ),
        feed_section("order_feed", "east-940", "warehouse = \"EAST\"", "edi-940")
            .replace("format = \"csv\"", "format = \"x12-940\""),
        feed_section(
            "confirm_feed",
            "retail-856",
            "orders_from = [\"retail-850\"]",
            "edi-856"
        )
        .replace("format = \"csv\"", "format = \"x12-856\""),
    );
    ws.config(&cfg);
    ws.mapping(
        "in-850",
        "format = \"x12\"\nrecord = \"orders\"\nsku_qualifier = \"VN\"\n",
    );
    ws.mapping(
        "in-945",
        "format = \"x12\"\nrecord = \"shipments\"\nsku_qualifier = \"VN\"\ncancelled = [\"CL\"]\n",
    );
    ws.mapping("edi-940", EDI_940);
    ws.mapping("edi-856", EDI_856);
    assert_eq!(
        ws.apply("retail-850", "po.x12", PO_850)["outcome"],
        "applied"
    );
    let o = order(&orders_json(&ws), "PO-778").clone();
    assert_eq!(o["status"], "open");

    // The 940: W05 order and PO, the 850's ship-to and TD5, LX/W01 lines.
    let v = ws.sync("east-940", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["orders"], 1);
    let f940 = std::path::PathBuf::from(v["file"].as_str().unwrap());
    let body = std::fs::read_to_string(&f940).unwrap();
    for seg in [
        "ST*940*0001~",
        "W05*N*PO-778*PO-778~",
        "N1*ST*Ada Lovelace~",
        "N2*Analytical Ltd~",
        "N3*12 Engine St*Unit 3~",
        "N4*London*LN*N1 9GU*GB~",
        "W66*PP*M***UPS 2ND DAY~",
        "LX*1~W01*3*EA**VN*SKU-1~",
        "LX*2~W01*1*EA**VN*SKU-2~",
        "W76*4~",
    ] {
        assert!(body.contains(seg), "no {seg} in {body}");
    }
    x12_validate(&[&f940]);
    assert_eq!(order(&orders_json(&ws), "PO-778")["status"], "sent");

    // An over-shipping 945 is rejected whole and answered with a 997 AK9*R.
    let over = ship_945("LX*1~MAN*GM*P1~MAN*CP*1Z1~W12*CC*3*4**EA**VN*SKU-1~", 9, 40);
    let v = ws.ingest("east-945", &ws.write("in/east-945/over.x12", &over), 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("3 left to ship"),
        "{v}"
    );
    let acks = ws.files_under("out/acks");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert!(
        ws.read(&format!("out/acks/{}", acks[0])).contains("AK9*R"),
        "{acks:?}"
    );

    // The 945: two packages, the second line shipped in the second.
    let good = ship_945(
        "LX*1~MAN*GM*P1~MAN*CP*1Z1~W12*CC*3*3**EA**VN*SKU-1~LX*2~MAN*GM*P2~MAN*CP*1Z2~W12*CC*1*1**EA**VN*SKU-2~",
        13,
        41,
    );
    let v = ws.apply("east-945", "ship.x12", &good);
    assert_eq!(v["outcome"], "applied", "{v}");
    let o = order(&orders_json(&ws), "PO-778").clone();
    assert_eq!(o["status"], "shipped", "{o}");
    assert_eq!(o["shipments"][0]["shipment_id"], "SH-945");
    assert_eq!(o["shipments"][0]["carrier"], "UPSN");
    assert_eq!(
        o["shipments"][0]["packages"],
        serde_json::json!([{"package": "P1", "tracking": "1Z1"}, {"package": "P2", "tracking": "1Z2"}])
    );
    // The same 945 again: a duplicate file, nothing changes.
    let again = ws.ingest(
        "east-945",
        &ws.write("in/east-945/ship-again.x12", &good),
        0,
    );
    assert_eq!(again["outcome"], "duplicate", "{again}");

    // The 856 (005010): shipment, order (PRF), a pack per package with its
    // tracking, items with shipped and ordered quantities.
    let v = ws.sync("retail-856", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["shipments"], 1);
    let f856 = std::path::PathBuf::from(v["file"].as_str().unwrap());
    let body = std::fs::read_to_string(&f856).unwrap();
    for seg in [
        "ST*856*0001",
        "BSN*00*SH-945*",
        "HL*1**S~",
        "TD5**2*UPSN",
        "HL*2*1*O~",
        "PRF*PO-778~",
        "MAN*GM*P1~",
        "MAN*CP*1Z1~",
        "MAN*CP*1Z2~",
        "SN1**3*EA**3*EA~",
        "SN1**1*EA**1*EA~",
        "CTT*6~",
    ] {
        assert!(body.contains(seg), "no {seg} in {body}");
    }
    x12_validate(&[&f856]);
    assert_eq!(order(&orders_json(&ws), "PO-778")["status"], "confirmed");
    // The retailer's 997 for our 856 (group SH) lands in the feed's history.
    let g = v["group_control"].as_i64().unwrap();
    let ack = format!(
        "ISA*00*          *00*          *08*925485US00     *ZZ*ACMEGATE       *261202*1700*U*00501*{g:09}*0*P*>~\
GS*FA*925485US00*ACMEGATE*20261202*1700*{g}*X*005010~\
ST*997*0001~AK1*SH*{g}~AK2*856*0001~AK5*A~AK9*A*1*1*1~SE*6*0001~GE*1*{g}~IEA*1*{g:09}~"
    );
    let v = ws.ingest("retail-850", &ws.write("in/retail-850/997.x12", &ack), 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(ws.history("retail-856")[0]["ack"], "accepted");
    assert_eq!(
        ws.sync("retail-856", &["--force"], 0)["reason"],
        "nothing new"
    );
}

#[test]
fn xml_shipments_in_and_xml_order_and_confirm_feeds_out() {
    let ws = Workspace::new();
    let cfg = format!(
        "{}{}{}{}{}",
        header(&["acme"]),
        inbound("shop-orders", "acme", "orders", "loop-orders", ""),
        inbound(
            "east-ship",
            "acme",
            "shipments",
            "xml-ship",
            "warehouse = \"EAST\""
        ),
        feed_section(
            "order_feed",
            "east-xml",
            "warehouse = \"EAST\"",
            "xml-orders"
        )
        .replace("format = \"csv\"", "format = \"xml\""),
        feed_section(
            "confirm_feed",
            "confirm-xml",
            "orders_from = [\"shop-orders\"]",
            "xml-confirms"
        )
        .replace("format = \"csv\"", "format = \"xml\""),
    );
    ws.config(&cfg);
    ws.mapping("loop-orders", LOOP_ORDERS);
    ws.mapping(
        "xml-ship",
        "format = \"xml\"\nrecord = \"shipments\"\nitem = \"Shipments/Shipment/Line\"\n[fields]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"@shipped\"\nshipment_id = \"Id\"\ntracking = \"Tracking\"\n",
    );
    ws.mapping(
        "xml-orders",
        "format = \"xml\"\nroot = \"Orders\"\nitem = \"OrderLine\"\nfields = [ { element = \"OrderId\", field = \"order_id\" }, { element = \"Sku\", field = \"sku\" }, { element = \"Qty\", field = \"quantity\" }, { element = \"ShipTo\", field = \"ship_to_name\" } ]\n",
    );
    ws.mapping(
        "xml-confirms",
        "format = \"xml\"\nroot = \"Confirmations\"\nitem = \"Shipped\"\nfields = [ { element = \"OrderId\", field = \"order_id\" }, { element = \"Qty\", field = \"quantity\" }, { element = \"Tracking\", field = \"tracking\" } ]\n",
    );
    ws.apply(
        "shop-orders",
        "o.csv",
        "Order,Line,SKU,Qty,Whse,Status,Name,Street,City,Zip,Country,Method,PO\n\
         9001,1,A,2,EAST,,Ann & Co <West>,1 Main St,Springfield,12345,US,,\n",
    );
    let v = ws.sync("east-xml", &[], 0);
    assert_eq!(
        std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Orders>\n  <OrderLine><OrderId>9001</OrderId><Sku>A</Sku><Qty>2</Qty><ShipTo>Ann &amp; Co &lt;West&gt;</ShipTo></OrderLine>\n</Orders>\n"
    );
    let v = ws.apply(
        "east-ship",
        "s.xml",
        "<Shipments><Shipment><Line shipped=\"2\"><Order>9001</Order><SKU>A</SKU><Id>X1</Id><Tracking>1ZX</Tracking></Line></Shipment></Shipments>",
    );
    assert_eq!(v["rows"], 1, "{v}");
    let v = ws.sync("confirm-xml", &[], 0);
    assert_eq!(
        std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Confirmations>\n  <Shipped><OrderId>9001</OrderId><Qty>2</Qty><Tracking>1ZX</Tracking></Shipped>\n</Confirmations>\n"
    );
    assert_eq!(order(&orders_json(&ws), "9001")["status"], "confirmed");
}
