//! 997 functional acknowledgments: build one for received groups, read the
//! ones partners send for our 846s, and judge a received interchange
//! (`validate_for_ack`) into per-group / per-set AK codes.
//!
//! Envelope problem -> 997 code (see also [`X12Error::ack_code`]):
//!
//! | problem                                   | where | code |
//! |-------------------------------------------|-------|------|
//! | SE missing (next ST/GS/GE/IEA or EOF)      | AK5 R | AK502 2 trailer missing |
//! | SE02 != ST02                              | AK5 R | AK502 3 control numbers do not match |
//! | SE01 != segments ST..SE                   | AK5 R | AK502 4 included segments count wrong |
//! | ST01 empty                                | AK5 R | AK502 6 missing/invalid set identifier |
//! | ST02 empty                                | AK5 R | AK502 7 missing/invalid set control number |
//! | ST02 repeated in the group                | AK5 R | AK502 23 control number not unique |
//! | segment defect inside a set               | AK5 R | AK502 5 one or more segments in error |
//! | GE missing (next GS/IEA or EOF)           | AK9 R | AK905 3 group trailer missing |
//! | GE02 != GS06                              | AK9 R | AK905 4 control numbers do not agree |
//! | GE01 != number of sets                    | AK9 R | AK905 5 included sets count wrong |
//! | GS06 empty / invalid                      | AK9 R | AK905 6 control number violates syntax |
//! | GS06 repeated in the interchange          | AK9 R | AK905 19 control number not unique |
//! | IEA02 != ISA13                            | TA1   | 001 |
//! | IEA01 != number of groups                 | TA1   | 021 |
//! | IEA missing / empty input                 | TA1   | 023 premature end of file |
//! | bad ISA / not X12                         | TA1   | 022 invalid control structure |
//! | segments outside ST/SE, data after IEA    | TA1   | 024 invalid interchange content |
//!
//! AK9 status: A when every set is accepted and the group has no error; R
//! when the group has an error or no set is accepted; P (partially
//! accepted) otherwise. AK5 status: A, or R with its codes.

use std::io::{BufRead, Write};

use chrono::NaiveDateTime;

use super::envelope::{Envelope, Event, Isa};
use super::error::{AckCode, X12Error};
use super::writer::{ControlNumbers, EnvelopeProfile, begin_interchange, end_interchange};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAck {
    pub id: String,
    pub control: String,
    /// AK501: 'A' accepted, 'E' accepted with errors, 'R' rejected.
    pub status: char,
    /// AK502..AK506 (at most 5 are written).
    pub codes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAck {
    /// AK101 (GS01 of the acknowledged group).
    pub functional_id: String,
    /// AK102 (GS06).
    pub group_control: String,
    /// GS08 of the acknowledged group; written as AK103 in 005010 when set.
    pub version: String,
    /// One AK2/AK5 loop each.
    pub sets: Vec<SetAck>,
    /// AK901: 'A', 'E', 'P' or 'R'.
    pub status: char,
    /// AK905..AK909 (at most 5 are written).
    pub codes: Vec<u8>,
    /// AK902: sets included (GE01 as declared, else as counted).
    pub sets_included: u64,
    /// AK903.
    pub sets_received: u64,
    /// AK904.
    pub sets_accepted: u64,
}

/// A 997 received from a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack997 {
    pub functional_id: String,
    pub group_control: String,
    pub status: char,
    pub set_acks: Vec<SetAck>,
    pub codes: Vec<u8>,
    pub sets_included: u64,
    pub sets_received: u64,
    pub sets_accepted: u64,
    /// Position of the AK1.
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written997 {
    pub sets: u32,
    pub bytes: u64,
}

/// Write an interchange holding one 997 (in one FA group) per entry of
/// `acks`, with GS02/GS03 = the profile's ISA ids. See [`build_997_to`].
pub fn build_997<W: Write>(
    w: W,
    profile: &EnvelopeProfile,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    acks: &[GroupAck],
) -> Result<Written997, X12Error> {
    build_997_to(w, profile, None, ctl, now, acks)
}

/// AK202 (a set control number, 4 to 9 characters): a shorter all-digit
/// ST02 (a 003040 sender's "1") is zero-padded to 4, which names the same
/// number; a longer one is cut to its last 9 characters (characters, not
/// bytes: a partner's ST02 may hold anything).
fn ak202(st02: &str) -> String {
    let v = st02.trim();
    let chars = v.chars().count();
    if v.len() < 4 && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        format!("{v:0>4}")
    } else if chars > 9 {
        v.chars().skip(chars - 9).collect()
    } else {
        v.to_owned()
    }
}

/// [`build_997`] with GS02/GS03 given: a 997 answers the partner's GS, so
/// GS02 is their GS03 and GS03 their GS02 (`app_ids` = (our GS02, our GS03)).
pub fn build_997_to<W: Write>(
    w: W,
    profile: &EnvelopeProfile,
    app_ids: Option<(&str, &str)>,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    acks: &[GroupAck],
) -> Result<Written997, X12Error> {
    if acks.is_empty() {
        return Err(X12Error::InvalidValue {
            field: "acks".into(),
            value: String::new(),
            reason: "a 997 interchange needs at least one group to acknowledge".into(),
        });
    }
    let mut sw = begin_interchange(w, profile, ctl, now, "FA", app_ids)?;
    let five_ten = profile.version.as_str() >= "005010";
    let mut sets: u32 = 0;
    for g in acks {
        sets += 1;
        let st02 = format!("{sets:04}");
        sw.set_segments = 0;
        sw.segment("ST", &["997", &st02])?;
        // AK103 (5010 on) is 1 to 12 characters.
        let version = if five_ten && g.version.len() <= 12 {
            g.version.as_str()
        } else {
            ""
        };
        sw.segment("AK1", &[&g.functional_id, &g.group_control, version])?;
        for s in &g.sets {
            sw.segment("AK2", &[&s.id, &ak202(&s.control)])?;
            let mut els = vec![s.status.to_string()];
            els.extend(s.codes.iter().take(5).map(u8::to_string));
            let els: Vec<&str> = els.iter().map(String::as_str).collect();
            sw.segment("AK5", &els)?;
        }
        let mut els = vec![
            g.status.to_string(),
            g.sets_included.to_string(),
            g.sets_received.to_string(),
            g.sets_accepted.to_string(),
        ];
        els.extend(g.codes.iter().take(5).map(u8::to_string));
        let els: Vec<&str> = els.iter().map(String::as_str).collect();
        sw.segment("AK9", &els)?;
        let count = (sw.set_segments + 1).to_string();
        sw.segment("SE", &[&count, &st02])?;
    }
    end_interchange(&mut sw, ctl, sets)?;
    Ok(Written997 {
        sets,
        bytes: sw.bytes,
    })
}

fn codes_from(seg: &super::reader::Segment, first: usize, last: usize) -> Vec<u8> {
    (first..=last)
        .filter_map(|n| seg.element(n).trim().parse::<u8>().ok())
        .collect()
}

fn status_of(s: &str) -> char {
    s.chars().next().unwrap_or(' ')
}

/// Read the 997s of every FA group of `input` (e.g. acks for 846s we
/// sent); groups with another functional id are skipped. A set other than
/// 997 inside an FA group is an error naming its ST.
pub fn read_997<R: BufRead>(input: R) -> Result<Vec<Ack997>, X12Error> {
    let mut env = Envelope::new(input);
    let mut out = Vec::new();
    let mut cur: Option<Ack997> = None;
    let mut in_fa = false;
    while let Some(ev) = env.next_event()? {
        match ev {
            Event::GroupStart(g) => in_fa = g.functional_id == "FA",
            Event::SetStart(_) | Event::Segment(_) | Event::SetEnd { .. } if !in_fa => {}
            Event::SetStart(h) if h.id != "997" => {
                return Err(X12Error::Unexpected {
                    id: "ST".into(),
                    position: h.position,
                    reason: format!("transaction set {} where a 997 was expected", h.id),
                });
            }
            Event::Segment(seg) => match seg.id() {
                "AK1" => {
                    cur = Some(Ack997 {
                        functional_id: seg.element(1).to_owned(),
                        group_control: seg.element(2).to_owned(),
                        status: ' ',
                        set_acks: Vec::new(),
                        codes: Vec::new(),
                        sets_included: 0,
                        sets_received: 0,
                        sets_accepted: 0,
                        position: seg.position,
                    });
                }
                "AK2" | "AK5" | "AK9" => {
                    let Some(a) = cur.as_mut() else {
                        return Err(X12Error::Unexpected {
                            id: seg.id().to_owned(),
                            position: seg.position,
                            reason: "before the AK1 of its 997".into(),
                        });
                    };
                    match seg.id() {
                        "AK2" => a.set_acks.push(SetAck {
                            id: seg.element(1).to_owned(),
                            control: seg.element(2).to_owned(),
                            status: ' ',
                            codes: Vec::new(),
                        }),
                        "AK5" => {
                            let Some(s) = a.set_acks.last_mut() else {
                                return Err(X12Error::Unexpected {
                                    id: seg.id().to_owned(),
                                    position: seg.position,
                                    reason: "AK5 without an AK2 before it".into(),
                                });
                            };
                            s.status = status_of(seg.element(1));
                            s.codes = codes_from(&seg, 2, 6);
                        }
                        _ => {
                            let num = |n: usize| seg.element(n).trim().parse::<u64>().unwrap_or(0);
                            a.status = status_of(seg.element(1));
                            a.sets_included = num(2);
                            a.sets_received = num(3);
                            a.sets_accepted = num(4);
                            a.codes = codes_from(&seg, 5, 9);
                        }
                    }
                }
                _ => {}
            },
            Event::SetEnd { .. } => out.extend(cur.take()),
            _ => {}
        }
    }
    Ok(out)
}

/// Result of judging a received interchange for acknowledgment.
#[derive(Debug)]
pub struct AckReport {
    pub interchange: Isa,
    /// One per GS, ready for [`build_997`].
    pub groups: Vec<GroupAck>,
    /// Problems no 997 can carry: (TA1 note code, message).
    pub interchange_problems: Vec<(&'static str, String)>,
    /// Every problem found, in file order, for logs and quarantine notes.
    pub problems: Vec<X12Error>,
    /// GS02 and GS03 of the interchange's first group (the partner's
    /// application sender and receiver), to be swapped in our 997's GS.
    pub app_ids: Option<(String, String)>,
}

/// Read a whole interchange in tolerant mode and decide the AK5/AK9 result
/// of each group and set. Errors the reader cannot recover from (bad ISA,
/// invalid UTF-8, I/O, overlong segment) are returned as `Err`; the caller
/// cannot acknowledge such a file with a 997. When the input holds several
/// interchanges, this is the first; see [`validate_interchanges_for_ack`].
pub fn validate_for_ack<R: BufRead>(input: R) -> Result<AckReport, X12Error> {
    validate_interchanges_for_ack(input)?
        .into_iter()
        .next()
        .ok_or(X12Error::Empty)
}

/// [`validate_for_ack`] for every interchange of the input, in order: each
/// is answered by its own 997.
pub fn validate_interchanges_for_ack<R: BufRead>(input: R) -> Result<Vec<AckReport>, X12Error> {
    let mut env = Envelope::tolerant(input);
    let mut reports: Vec<AckReport> = Vec::new();
    let mut in_group = false;
    let mut in_set = false;
    while let Some(ev) = env.next_event()? {
        if let Event::InterchangeStart(i) = ev {
            reports.push(AckReport {
                interchange: i,
                groups: Vec::new(),
                interchange_problems: Vec::new(),
                problems: Vec::new(),
                app_ids: None,
            });
            in_group = false;
            in_set = false;
            continue;
        }
        let Some(rep) = reports.last_mut() else {
            continue;
        };
        let groups = &mut rep.groups;
        match ev {
            Event::GroupStart(h) => {
                in_group = true;
                if rep.app_ids.is_none() {
                    rep.app_ids = Some((h.sender.clone(), h.receiver.clone()));
                }
                groups.push(GroupAck {
                    functional_id: h.functional_id,
                    group_control: h.control_number,
                    version: h.version,
                    sets: Vec::new(),
                    status: 'A',
                    codes: Vec::new(),
                    sets_included: 0,
                    sets_received: 0,
                    sets_accepted: 0,
                });
            }
            Event::SetStart(h) => {
                in_set = true;
                if let Some(g) = groups.last_mut() {
                    g.sets.push(SetAck {
                        id: h.id,
                        control: h.control_number,
                        status: 'A',
                        codes: Vec::new(),
                    });
                }
            }
            Event::SetEnd { .. } => in_set = false,
            Event::GroupEnd { sets, declared, .. } => {
                in_group = false;
                if let Some(g) = groups.last_mut() {
                    g.sets_received = sets;
                    g.sets_included = declared.trim().parse().unwrap_or(sets);
                }
            }
            Event::Problem(e) => {
                let code = e.ack_code();
                let group = groups.last_mut().filter(|_| in_group);
                match (code, group) {
                    (AckCode::Set(c), Some(g)) if in_set => {
                        if let Some(s) = g.sets.last_mut() {
                            s.status = 'R';
                            if !s.codes.contains(&c) {
                                s.codes.push(c);
                            }
                        }
                    }
                    (AckCode::Group(c), Some(g)) => {
                        if !g.codes.contains(&c) {
                            g.codes.push(c);
                        }
                    }
                    (AckCode::Interchange(c), _) => {
                        rep.interchange_problems.push((c, e.to_string()))
                    }
                    // A set/group code with no set/group open: the file's
                    // structure is what is wrong.
                    _ => rep.interchange_problems.push(("024", e.to_string())),
                }
                rep.problems.push(e);
            }
            _ => {}
        }
    }
    for rep in &mut reports {
        for g in &mut rep.groups {
            g.sets_accepted = g.sets.iter().filter(|s| s.status != 'R').count() as u64;
            g.status = if !g.codes.is_empty() || (g.sets_accepted == 0 && !g.sets.is_empty()) {
                'R'
            } else if g.sets_accepted as usize == g.sets.len() {
                'A'
            } else {
                'P'
            };
        }
    }
    if reports.is_empty() {
        return Err(X12Error::Empty);
    }
    Ok(reports)
}

#[cfg(test)]
mod ak202_tests {
    use super::ak202;

    #[test]
    fn a_long_st02_keeps_its_last_nine_characters_whatever_their_bytes() {
        assert_eq!(ak202("1"), "0001");
        assert_eq!(ak202("0001"), "0001");
        assert_eq!(ak202("1234567890AB"), "4567890AB");
        // Found by the fuzzer: 11 bytes, 10 characters, the second one two bytes long.
        assert_eq!(ak202("0\u{406} 2240001"), "\u{406} 2240001");
        assert_eq!(ak202("ÅÅÅÅÅÅÅÅÅÅ"), "ÅÅÅÅÅÅÅÅÅ");
    }
}
