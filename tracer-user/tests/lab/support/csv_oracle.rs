//! An independent answer to "what does this CSV say for this address": rows are applied in
//! file order (a later row overrides what it covers) by a sweep over the rows' boundaries with
//! the set of open rows, not by the agent's range map.

use std::{collections::BTreeSet, io::Read as _, net::IpAddr, path::Path};

/// The CSV's answer for every address, as sorted segments per family.
pub(crate) struct Oracle {
    v4: Vec<(u128, Option<[u8; 2]>)>,
    v6: Vec<(u128, Option<[u8; 2]>)>,
    /// Every row's (first, last) per family, for boundary probes.
    pub rows_v4: Vec<(u128, u128)>,
    /// Same for IPv6.
    pub rows_v6: Vec<(u128, u128)>,
}

fn read(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s).expect("gunzip");
        s
    } else {
        String::from_utf8(bytes).expect("utf-8")
    }
}

impl Oracle {
    /// Reads CSV files (`first,last,CC`, optionally gzipped), rows applied in order.
    pub(crate) fn from_files(paths: &[&Path]) -> Oracle {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut index = 0usize;
        for path in paths {
            for line in read(path).lines().filter(|l| !l.trim().is_empty()) {
                let mut f = line.split(',');
                let (a, b, cc) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
                let cc: [u8; 2] = cc.trim().as_bytes().try_into().expect("two-letter code");
                index += 1;
                match (a, b) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        v4.push((u32::from(a).into(), u32::from(b).into(), index, cc))
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) => {
                        v6.push((u128::from(a), u128::from(b), index, cc))
                    }
                    _ => panic!("mixed row {line}"),
                }
            }
        }
        // The sweep looks rows up by file index; keep it fast with rows sorted by index.
        let rows_v4 = v4.iter().map(|r| (r.0, r.1)).collect();
        let rows_v6 = v6.iter().map(|r| (r.0, r.1)).collect();
        Oracle { v4: sweep_indexed(&v4), v6: sweep_indexed(&v6), rows_v4, rows_v6 }
    }

    /// The code the CSV gives `addr`, `None` if no row covers it.
    pub(crate) fn answer(&self, addr: IpAddr) -> Option<[u8; 2]> {
        let (segments, a) = match addr {
            IpAddr::V4(a) => (&self.v4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let i = segments.partition_point(|(start, _)| *start <= a);
        segments[i.saturating_sub(1)].1
    }
}

/// [`sweep`] with rows indexed by position (row.2 is the file index, increasing).
fn sweep_indexed(rows: &[(u128, u128, usize, [u8; 2])]) -> Vec<(u128, Option<[u8; 2]>)> {
    let mut events: Vec<(u128, bool, usize)> = Vec::with_capacity(rows.len() * 2);
    for (i, (first, last, _, _)) in rows.iter().enumerate() {
        events.push((*first, true, i));
        if let Some(end) = last.checked_add(1) {
            events.push((end, false, i));
        }
    }
    events.sort();
    let mut open: BTreeSet<usize> = BTreeSet::new();
    let mut out: Vec<(u128, Option<[u8; 2]>)> = vec![(0, None)];
    let mut k = 0;
    while k < events.len() {
        let pos = events[k].0;
        while k < events.len() && events[k].0 == pos {
            let (_, start, i) = events[k];
            if start {
                open.insert(i);
            } else {
                open.remove(&i);
            }
            k += 1;
        }
        // Rows are in file order, so the open row with the highest position wins.
        out.push((pos, open.last().map(|i| rows[*i].3)));
    }
    out
}
