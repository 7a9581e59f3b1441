//! X12 997 functional acknowledgments, both ways: a 997 sent back for each
//! X12 file a source receives (when it asks for them), and 997s received for
//! the 846s stockgate sent, matched to the sync history by group control number.

use crate::config::{Config, Inbound};
use crate::formats::x12::{self, Event};
use crate::ledger::Ledger;
use crate::mapping::OutFormat;
use crate::util::{Millis, now_ms, to_datetime};
use std::io::BufReader;
use std::path::Path;

/// The first group's functional id and the ISA parties of an X12 file, or
/// None when it does not even start like one.
pub struct Peek {
    pub functional_id: String,
    pub isa: x12::Isa,
    pub version: String,
}

pub fn peek(path: &Path) -> Option<Peek> {
    let f = std::fs::File::open(path).ok()?;
    let mut env = x12::Envelope::tolerant(BufReader::new(f));
    let mut isa = None;
    for _ in 0..4 {
        match env.next_event().ok()?? {
            Event::InterchangeStart(i) => isa = Some(i),
            Event::GroupStart(g) => {
                return Some(Peek {
                    functional_id: g.functional_id,
                    isa: isa?,
                    version: g.version,
                });
            }
            _ => {}
        }
    }
    None
}

/// False when no group of an X12 file can be a functional acknowledgment
/// (GS01 `FA`): the bytes `GS`, one separator, `FA` appear nowhere in it. A
/// byte scan, far cheaper than [`group_ids`]' reading of every segment,
/// which it saves for the files that may hold 997s (whatever their
/// separators: a GS01 of `FA` is always those five bytes in a row). True
/// when the file cannot be read (let [`group_ids`] decide).
pub fn may_hold_fa_group(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return true;
    };
    let finder = memchr::memmem::Finder::new(b"FA");
    // The last 4 bytes of a chunk are kept before the next one, so a
    // pattern across the boundary is still seen.
    const KEEP: usize = 4;
    let mut buf = vec![0u8; 64 * 1024 + KEEP];
    let mut have = 0;
    loop {
        let n = match f.read(&mut buf[have..]) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        let end = have + n;
        let hay = &buf[..end];
        if finder
            .find_iter(hay)
            .any(|i| i >= 3 && &hay[i - 3..i - 1] == b"GS")
        {
            return true;
        }
        let keep = end.min(KEEP);
        buf.copy_within(end - keep..end, 0);
        have = keep;
    }
}

/// The functional ids (GS01) of every group of an X12 file, in order, or
/// an empty list when it cannot be read that far.
pub fn group_ids(path: &Path) -> Vec<String> {
    let Ok(f) = std::fs::File::open(path) else {
        return vec![];
    };
    let mut out = vec![];
    let mut env = x12::Envelope::tolerant(BufReader::new(f));
    while let Ok(Some(ev)) = env.next_event() {
        if let Event::GroupStart(g) = ev {
            out.push(g.functional_id);
        }
    }
    out
}

/// Records the 997s in `path` against the 846s they acknowledge; returns
/// how many groups were matched to a sent feed.
pub fn receive_997(
    cfg: &Config,
    ledger: &Ledger,
    path: &Path,
    peek: &Peek,
) -> Result<(u64, u64), String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let acks = x12::read_997(BufReader::new(f)).map_err(|e| e.to_string())?;
    // The 997 comes from the partner: its ISA sender is our feed's
    // receiver. Which feeds, by the group they acknowledge: an 846 (IB),
    // a 940 (OW) or an 856 (SH) of the order loop.
    let ours = |sender: &str, receiver: &str| {
        receiver == peek.isa.sender_id() && sender == peek.isa.field(8)
    };
    let feeds_of = |set: &str| -> Vec<String> {
        cfg.carts
            .iter()
            .filter(|c| match (&c.mapping.format, c.kind.doc()) {
                (_, Some(d)) => match &d.format {
                    crate::docmap::DocFormat::X12 { envelope: e, .. } => {
                        d.kind.x12_format().ends_with(set) && ours(&e.sender_id, &e.receiver_id)
                    }
                    _ => false,
                },
                (OutFormat::X12_846(p), None) => set == "846" && ours(&p.sender_id, &p.receiver_id),
                _ => false,
            })
            .map(|c| c.id.clone())
            .collect()
    };
    let mut matched = 0;
    for a in &acks {
        // Only an acknowledgment of a group we send (846 IB, 940 OW, 856
        // SH) whose sets, when named, include that set can be about a feed.
        let set = match a.functional_id.as_str() {
            "IB" => "846",
            "OW" => "940",
            "SH" => "856",
            _ => continue,
        };
        if !a.set_acks.is_empty() && !a.set_acks.iter().any(|s| s.id == set) {
            continue;
        }
        let carts = feeds_of(set);
        let Ok(group) = a.group_control.trim().parse::<i64>() else {
            continue;
        };
        let mut codes: Vec<String> = vec![];
        for s in a.set_acks.iter().filter(|s| s.id == set) {
            if s.status != 'A' || !s.codes.is_empty() {
                let c: Vec<String> = s.codes.iter().map(u8::to_string).collect();
                codes.push(
                    format!("set {}: AK5 {} {}", s.control, s.status, c.join(","))
                        .trim_end()
                        .to_string(),
                );
            }
        }
        if !a.codes.is_empty() {
            let c: Vec<String> = a.codes.iter().map(u8::to_string).collect();
            codes.push(format!("AK9 {}", c.join(",")));
        }
        let status = match a.status {
            'A' => "accepted",
            'E' => "accepted with errors",
            'P' => "partially accepted",
            _ => "rejected",
        };
        matched += ledger
            .record_ack(&carts, group, status, &codes.join("; "))
            .map_err(|e| e.to_string())?;
    }
    Ok((acks.len() as u64, matched))
}

/// Sends a 997 for every group of an X12 file received by `src`. A file the
/// ledger rejected for its content (a bad quantity, say) is acknowledged as
/// rejected (AK5 R 5, one or more segments in error) even when its syntax is fine.
pub fn send_997(
    cfg: &Config,
    ledger: &Ledger,
    src: &Inbound,
    path: &Path,
    content_rejected: bool,
) -> Result<Option<String>, String> {
    let Some(spec) = &src.ack_transport else {
        return Ok(None);
    };
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reports = match x12::validate_interchanges_for_ack(BufReader::new(f)) {
        Ok(r) => r,
        // Not an interchange we can answer with a 997 (no readable ISA).
        Err(e) => return Err(format!("no 997 sent: {e}")),
    };
    // One 997 per interchange; acknowledgments (FA groups) are never acknowledged.
    let mut sent = vec![];
    let mut failed = vec![];
    for mut report in reports {
        report.groups.retain(|g| g.functional_id != "FA");
        if report.groups.is_empty() {
            continue;
        }
        match send_one(cfg, ledger, src, spec, report, content_rejected) {
            Ok(dest) => sent.push(dest),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    if sent.is_empty() {
        return Err("no 997 sent: the interchange has no functional group to acknowledge".into());
    }
    Ok(Some(sent.join(", ")))
}

/// Builds, delivers and archives the 997 for one interchange.
fn send_one(
    cfg: &Config,
    ledger: &Ledger,
    src: &Inbound,
    spec: &crate::config::TransportSpec,
    mut report: x12::AckReport,
    content_rejected: bool,
) -> Result<String, String> {
    if content_rejected {
        for g in &mut report.groups {
            for s in &mut g.sets {
                if s.status == 'A' {
                    s.status = 'R';
                    s.codes = vec![5];
                }
            }
            g.sets_accepted = 0;
            g.status = 'R';
        }
    }
    let isa = &report.interchange;
    // Answer in the partner's own release when we can write it.
    let version = x12::ack_version(&report.groups[0].version);
    let profile = x12::EnvelopeProfile {
        version: version.into(),
        sender_qualifier: isa.receiver_qualifier().into(),
        sender_id: isa.field(8).into(),
        receiver_qualifier: isa.sender_qualifier().into(),
        receiver_id: isa.sender_id().into(),
        usage: isa.field(15).chars().next().unwrap_or('P'),
        element_separator: '*',
        segment_terminator: '~',
        component_separator: '>',
        line_break: true,
    };
    let n = ledger
        .next_control(&profile.sender_id, &profile.receiver_id)
        .map_err(|e| e.to_string())?;
    let now: Millis = now_ms();
    // Partner id, their ISA13 and our control number for that partner make
    // the name unique: two partners' 997s never overwrite each other.
    // Every part is sanitized, whatever its source: a name never leaves its folder.
    let name = format!(
        "997-{}-{}-{}-{}-{n:09}.x12",
        crate::util::safe_name_part(&src.id),
        crate::util::safe_name_part(isa.sender_id()),
        crate::util::safe_name_part(isa.field(13)),
        to_datetime(now).format("%Y%m%d%H%M%S")
    );
    let work = cfg.scratch_dir("outgoing", &src.id);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let local = work.join(&name);
    let file = std::fs::File::create(&local)
        .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
    let ctl = x12::ControlNumbers {
        interchange: n as u32,
        group: n as u32,
    };
    // Our GS02/GS03 are the partner's GS03/GS02: partners route on the GS.
    let app_ids = report
        .app_ids
        .as_ref()
        .map(|(their_sender, their_receiver)| (their_receiver.as_str(), their_sender.as_str()));
    let written = x12::build_997_to(
        std::io::BufWriter::new(file),
        &profile,
        app_ids,
        ctl,
        to_datetime(now).naive_utc(),
        &report.groups,
    );
    if let Err(e) = written {
        let _ = std::fs::remove_file(&local);
        return Err(format!("cannot build 997: {e}"));
    }
    let dest = crate::transport::deliver_to(spec, &local, &name, &format!("997-{}", src.id), false);
    let archived = crate::store::archive(cfg, &src.id, &local, &name, now);
    let _ = std::fs::remove_file(&local);
    let dest = dest.map_err(|e| format!("997 not delivered: {}", e.message))?;
    if let Err(e) = archived {
        tracing::warn!(source = %src.id, error = %e, "997 delivered but not archived");
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::may_hold_fa_group;

    #[test]
    fn fa_scan_sees_a_gs01_of_fa_anywhere_even_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.x12");
        let chunk = 64 * 1024;
        for pad in [
            0,
            1,
            chunk - 5,
            chunk - 4,
            chunk - 3,
            chunk - 2,
            chunk - 1,
            chunk,
            2 * chunk - 2,
        ] {
            for sep in ["*", "|"] {
                let mut body = vec![b'x'; pad];
                body.extend_from_slice(format!("GS{sep}FA{sep}S~").as_bytes());
                std::fs::write(&p, &body).unwrap();
                assert!(may_hold_fa_group(&p), "pad {pad}");
                let mut other = vec![b'x'; pad];
                other.extend_from_slice(format!("GS{sep}IB{sep}FA~ISFA*GSFA~FA").as_bytes());
                std::fs::write(&p, &other).unwrap();
                assert!(!may_hold_fa_group(&p), "pad {pad}");
            }
        }
        assert!(may_hold_fa_group(&dir.path().join("missing")));
    }
}
