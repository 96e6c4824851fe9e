//! LVM2: physical volume labels, the text metadata in their metadata areas, and linear logical
//! volumes mapped onto the physical volumes' data. Other segment types (striped over several
//! devices, thin, RAID, mirrors, snapshots, caches) are reported, not followed.

use std::collections::BTreeMap;

use super::io::{ReadAt, le_u32, le_u64};

const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const MDA_HEADER_SIZE: u64 = 512;

/// A physical volume label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// 32 characters, no dashes.
    pub uuid: String,
    /// Metadata areas: (offset, size) in bytes from the start of the PV.
    pub metadata_areas: Vec<(u64, u64)>,
}

/// Finds and parses the label in the first four sectors.
pub fn read_label(pv: &dyn ReadAt) -> Option<PvLabel> {
    let mut head = vec![0u8; 2048];
    pv.read_exact_at(0, &mut head).ok()?;
    for s in 0..4usize {
        let sec = &head[s * 512..(s + 1) * 512];
        if &sec[..8] != b"LABELONE" || &sec[24..32] != b"LVM2 001" || le_u64(sec, 8) != s as u64 {
            continue;
        }
        let off = le_u32(sec, 20) as usize;
        if !(32..=512 - 40).contains(&off) {
            return None;
        }
        // The PV header may run past this sector: read what follows.
        let mut hdr = vec![0u8; 4096];
        pv.read_exact_at((s * 512 + off) as u64, &mut hdr).ok()?;
        let uuid: String = hdr[..32].iter().map(|&b| b as char).collect();
        if !uuid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let mut pos = 40;
        let mut lists: Vec<Vec<(u64, u64)>> = vec![Vec::new(), Vec::new()];
        for list in lists.iter_mut() {
            loop {
                if pos + 16 > hdr.len() || list.len() > 8 {
                    return None;
                }
                let (o, l) = (le_u64(&hdr, pos), le_u64(&hdr, pos + 8));
                pos += 16;
                if o == 0 && l == 0 {
                    break;
                }
                list.push((o, l));
            }
        }
        return Some(PvLabel {
            uuid,
            metadata_areas: lists.pop().unwrap_or_default(),
        });
    }
    None
}

/// The current metadata text of the first readable metadata area.
pub fn read_metadata(pv: &dyn ReadAt, label: &PvLabel, max: u64) -> Result<String, String> {
    let mut last = "no metadata area".to_string();
    for &(start, size) in &label.metadata_areas {
        match read_area(pv, start, size, max) {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn read_area(pv: &dyn ReadAt, start: u64, size: u64, max: u64) -> Result<String, String> {
    let mut h = vec![0u8; MDA_HEADER_SIZE as usize];
    pv.read_exact_at(start, &mut h)
        .map_err(|e| format!("metadata area header unreadable: {e}"))?;
    if &h[4..20] != MDA_MAGIC {
        return Err("metadata area header has no LVM2 magic".into());
    }
    let (loc, len) = (le_u64(&h, 40), le_u64(&h, 48));
    if len == 0 {
        return Err("metadata area is empty".into());
    }
    if len > max || loc >= size || loc < MDA_HEADER_SIZE || size <= MDA_HEADER_SIZE {
        return Err(format!("metadata of {len} bytes at {loc} is out of bounds"));
    }
    let mut text = vec![0u8; len as usize];
    let first = (size - loc).min(len) as usize;
    pv.read_exact_at(start + loc, &mut text[..first])
        .map_err(|e| e.to_string())?;
    if first < text.len() {
        // The circular buffer wraps to just after the header.
        if (text.len() - first) as u64 > size - MDA_HEADER_SIZE {
            return Err("metadata larger than its area".into());
        }
        pv.read_exact_at(start + MDA_HEADER_SIZE, &mut text[first..])
            .map_err(|e| e.to_string())?;
    }
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    Ok(String::from_utf8_lossy(&text[..end]).into_owned())
}

/// A value of the LVM text format.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Str(String),
    List(Vec<Val>),
    Section(Vec<(String, Val)>),
}

impl Val {
    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Section(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses LVM metadata text into its top-level items, bounded in depth and item count.
pub fn parse(text: &str, max_depth: usize) -> Result<Vec<(String, Val)>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        items: 0,
        max_depth,
    };
    p.section_body(0, true)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    items: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                c if c.is_ascii_whitespace() => self.i += 1,
                _ => break,
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_.+-".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn err(&self, what: &str) -> String {
        format!("LVM metadata: {what} at byte {}", self.i)
    }

    fn section_body(&mut self, depth: usize, top: bool) -> Result<Vec<(String, Val)>, String> {
        if depth > self.max_depth {
            return Err(self.err("nesting too deep"));
        }
        let mut items = Vec::new();
        loop {
            self.skip();
            match self.s.get(self.i) {
                None if top => return Ok(items),
                None => return Err(self.err("unterminated section")),
                Some(b'}') if !top => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => {}
            }
            self.items += 1;
            if self.items > 100_000 {
                return Err(self.err("too many items"));
            }
            let key = self.ident().ok_or_else(|| self.err("expected a name"))?;
            self.skip();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let body = self.section_body(depth + 1, false)?;
                    items.push((key, Val::Section(body)));
                }
                Some(b'=') => {
                    self.i += 1;
                    self.skip();
                    let v = self.value(depth + 1)?;
                    items.push((key, v));
                }
                _ => return Err(self.err("expected '{' or '='")),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Val, String> {
        match self.s.get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'"') => {
                            self.i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            if let Some(&c) = self.s.get(self.i + 1) {
                                out.push(c);
                            }
                            self.i += 2;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
                Ok(Val::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(b'[') => {
                if depth > self.max_depth {
                    return Err(self.err("nesting too deep"));
                }
                self.i += 1;
                let mut list = Vec::new();
                loop {
                    self.skip();
                    match self.s.get(self.i) {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Val::List(list));
                        }
                        Some(b',') => self.i += 1,
                        None => return Err(self.err("unterminated list")),
                        _ => {
                            if list.len() > 100_000 {
                                return Err(self.err("list too long"));
                            }
                            list.push(self.value(depth + 1)?);
                        }
                    }
                }
            }
            _ => {
                let word = self.ident().ok_or_else(|| self.err("expected a value"))?;
                Ok(word.parse().map_or(Val::Str(word), Val::Int))
            }
        }
    }
}

/// A logical volume segment mapped onto one physical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearSegment {
    /// Bytes from the start of the logical volume.
    pub lv_offset: u64,
    pub len: u64,
    /// The physical volume (its label UUID, no dashes).
    pub pv_uuid: String,
    /// Bytes from the start of the physical volume.
    pub pv_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalVolume {
    pub vg: String,
    pub name: String,
    /// The linear map, or why it cannot be followed.
    pub map: Result<Vec<LinearSegment>, String>,
}

impl LogicalVolume {
    /// The names a guest uses for it: `/dev/mapper/vg-lv` (dashes doubled) and `/dev/vg/lv`.
    pub fn device_names(&self) -> [String; 2] {
        [
            format!(
                "/dev/mapper/{}-{}",
                self.vg.replace('-', "--"),
                self.name.replace('-', "--")
            ),
            format!("/dev/{}/{}", self.vg, self.name),
        ]
    }
}

/// The visible logical volumes of the volume groups described by `metadata`.
pub fn logical_volumes(items: &[(String, Val)]) -> Vec<LogicalVolume> {
    let mut out = Vec::new();
    for (vg_name, vg) in items {
        let Val::Section(_) = vg else { continue };
        let Some(extent_sectors) = vg.int("extent_size").filter(|&e| e > 0) else {
            continue;
        };
        let extent = extent_sectors as u64 * 512;
        let mut pvs = BTreeMap::new();
        if let Some(Val::Section(list)) = vg.get("physical_volumes") {
            for (pv_name, pv) in list {
                if let (Some(id), Some(pe_start)) = (pv.str("id"), pv.int("pe_start")) {
                    pvs.insert(
                        pv_name.clone(),
                        (id.replace('-', ""), pe_start.max(0) as u64 * 512),
                    );
                }
            }
        }
        let Some(Val::Section(lvs)) = vg.get("logical_volumes") else {
            continue;
        };
        for (lv_name, lv) in lvs {
            let visible = matches!(lv.get("status"), Some(Val::List(l)) if l.contains(&Val::Str("VISIBLE".into())));
            if !visible {
                continue;
            }
            out.push(LogicalVolume {
                vg: vg_name.clone(),
                name: lv_name.clone(),
                map: linear_map(lv, extent, &pvs),
            });
        }
    }
    out
}

fn linear_map(
    lv: &Val,
    extent: u64,
    pvs: &BTreeMap<String, (String, u64)>,
) -> Result<Vec<LinearSegment>, String> {
    let Val::Section(items) = lv else {
        return Err("malformed logical volume".into());
    };
    let mut segs = Vec::new();
    for (key, seg) in items {
        if !key.starts_with("segment") || !matches!(seg, Val::Section(_)) {
            continue;
        }
        let kind = seg.str("type").unwrap_or("?");
        let stripes = seg.int("stripe_count").unwrap_or(0);
        if kind != "striped" || stripes != 1 {
            return Err(format!(
                "segment type {kind}{} is not supported (only linear volumes are followed)",
                if kind == "striped" {
                    format!(" over {stripes} devices")
                } else {
                    String::new()
                }
            ));
        }
        let (Some(start), Some(count)) = (seg.int("start_extent"), seg.int("extent_count")) else {
            return Err("segment without start_extent or extent_count".into());
        };
        let Some(Val::List(st)) = seg.get("stripes") else {
            return Err("segment without stripes".into());
        };
        let (Some(Val::Str(pv)), Some(Val::Int(pe))) = (st.first(), st.get(1)) else {
            return Err("malformed stripes".into());
        };
        let (uuid, pe_start) = pvs
            .get(pv)
            .ok_or_else(|| format!("segment on unknown physical volume {pv}"))?;
        let bytes = |e: i64| (e.max(0) as u64).checked_mul(extent);
        let (Some(lv_offset), Some(len), Some(pe_off)) = (bytes(start), bytes(count), bytes(*pe))
        else {
            return Err("segment bounds overflow".into());
        };
        segs.push(LinearSegment {
            lv_offset,
            len,
            pv_uuid: uuid.clone(),
            pv_offset: pe_start.saturating_add(pe_off),
        });
    }
    segs.sort_by_key(|s| s.lv_offset);
    let mut expected = 0;
    for s in &segs {
        if s.lv_offset != expected {
            return Err("segments leave a gap".into());
        }
        expected = s.lv_offset + s.len;
    }
    if segs.is_empty() {
        return Err("no segments".into());
    }
    Ok(segs)
}
