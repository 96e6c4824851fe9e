//! A small writer of real Windows registry hive files (regf): one hive bin holding key nodes
//! (nk), fast-leaf subkey lists (lf), value lists and values (vk) with their data. Enough for the
//! keys inspection reads; `hivexsh` reads what it writes.

/// A registry key to write.
#[derive(Debug, Clone, Default)]
pub struct RegKey {
    pub name: String,
    pub values: Vec<(String, RegValue)>,
    pub subkeys: Vec<RegKey>,
}

#[derive(Debug, Clone)]
pub enum RegValue {
    Sz(String),
    Dword(u32),
}

impl RegKey {
    pub fn new(name: &str) -> RegKey {
        RegKey {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The key at a backslash path below this one, created as needed.
    pub fn key(&mut self, path: &str) -> &mut RegKey {
        let mut k = self;
        for comp in path.split('\\').filter(|c| !c.is_empty()) {
            let i = match k
                .subkeys
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(comp))
            {
                Some(i) => i,
                None => {
                    k.subkeys.push(RegKey::new(comp));
                    k.subkeys.len() - 1
                }
            };
            k = &mut k.subkeys[i];
        }
        k
    }

    pub fn sz(&mut self, name: &str, v: &str) -> &mut RegKey {
        self.values.push((name.into(), RegValue::Sz(v.into())));
        self
    }

    pub fn dword(&mut self, name: &str, v: u32) -> &mut RegKey {
        self.values.push((name.into(), RegValue::Dword(v)));
        self
    }
}

struct Bin {
    data: Vec<u8>,
}

impl Bin {
    /// Appends a cell holding `body`; returns its offset from the first bin.
    fn cell(&mut self, body: &[u8]) -> u32 {
        let off = self.data.len() as u32;
        let size = (4 + body.len()).div_ceil(8) * 8;
        self.data.extend_from_slice(&(-(size as i32)).to_le_bytes());
        self.data.extend_from_slice(body);
        self.data.resize(off as usize + size, 0);
        off
    }
}

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn write_key(bin: &mut Bin, key: &RegKey, parent: u32, root: bool) -> u32 {
    // The node first (its offset is the children's parent), patched once they exist.
    let name = key.name.as_bytes();
    let mut nk = vec![0u8; 76];
    nk.extend_from_slice(name);
    let nk_off = bin.cell(&nk);
    let mut subkeys: Vec<&RegKey> = key.subkeys.iter().collect();
    subkeys.sort_by_key(|k| k.name.to_uppercase());
    let child_offs: Vec<u32> = subkeys
        .iter()
        .map(|k| write_key(bin, k, nk_off, false))
        .collect();
    let list_off = if child_offs.is_empty() {
        u32::MAX
    } else {
        let mut lf = b"lf".to_vec();
        u16le(&mut lf, child_offs.len() as u16);
        for (o, k) in child_offs.iter().zip(&subkeys) {
            u32le(&mut lf, *o);
            let mut hint = [0u8; 4];
            for (h, b) in hint.iter_mut().zip(k.name.bytes()) {
                *h = b;
            }
            lf.extend_from_slice(&hint);
        }
        bin.cell(&lf)
    };
    let mut vk_offs = Vec::new();
    for (vname, value) in &key.values {
        let (kind, data): (u32, Vec<u8>) = match value {
            RegValue::Sz(s) => (
                1,
                s.encode_utf16()
                    .chain([0])
                    .flat_map(|u| u.to_le_bytes())
                    .collect(),
            ),
            RegValue::Dword(d) => (4, d.to_le_bytes().to_vec()),
        };
        let (size_field, data_field) = if data.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..data.len()].copy_from_slice(&data);
            (data.len() as u32 | 0x8000_0000, u32::from_le_bytes(inline))
        } else {
            (data.len() as u32, bin.cell(&data))
        };
        let mut vk = b"vk".to_vec();
        u16le(&mut vk, vname.len() as u16);
        u32le(&mut vk, size_field);
        u32le(&mut vk, data_field);
        u32le(&mut vk, kind);
        u16le(&mut vk, 1); // name stored as ASCII
        u16le(&mut vk, 0);
        vk.extend_from_slice(vname.as_bytes());
        vk_offs.push(bin.cell(&vk));
    }
    let values_off = if vk_offs.is_empty() {
        u32::MAX
    } else {
        let mut list = Vec::new();
        for o in &vk_offs {
            u32le(&mut list, *o);
        }
        bin.cell(&list)
    };
    let max_sub = key
        .subkeys
        .iter()
        .map(|k| k.name.len() * 2)
        .max()
        .unwrap_or(0) as u32;
    let max_vname = key
        .values
        .iter()
        .map(|(n, _)| n.len() * 2)
        .max()
        .unwrap_or(0) as u32;
    let mut nk = b"nk".to_vec();
    u16le(&mut nk, if root { 0x2C } else { 0x20 });
    nk.extend_from_slice(&[0u8; 8]); // last written
    u32le(&mut nk, 0); // access bits
    u32le(&mut nk, if root { 0 } else { parent });
    u32le(&mut nk, child_offs.len() as u32);
    u32le(&mut nk, 0); // volatile subkeys
    u32le(&mut nk, list_off);
    u32le(&mut nk, u32::MAX);
    u32le(&mut nk, vk_offs.len() as u32);
    u32le(&mut nk, values_off);
    u32le(&mut nk, u32::MAX); // security
    u32le(&mut nk, u32::MAX); // class name
    u32le(&mut nk, max_sub);
    u32le(&mut nk, 0);
    u32le(&mut nk, max_vname);
    u32le(&mut nk, 64);
    u32le(&mut nk, 0); // work var
    u16le(&mut nk, name.len() as u16);
    u16le(&mut nk, 0);
    nk.extend_from_slice(name);
    let at = nk_off as usize + 4;
    bin.data[at..at + nk.len()].copy_from_slice(&nk);
    nk_off
}

/// The bytes of a hive file whose root key is `root`.
pub fn write_hive(root: &RegKey) -> Vec<u8> {
    let mut bin = Bin {
        data: vec![0u8; 32],
    };
    let root_off = write_key(&mut bin, root, 0, true);
    // Close the bin with one free cell and round it to 4 KiB.
    let used = bin.data.len();
    let size = (used + 8).div_ceil(4096) * 4096;
    let free = (size - used) as i32;
    bin.data.extend_from_slice(&free.to_le_bytes());
    bin.data.resize(size, 0);
    bin.data[..4].copy_from_slice(b"hbin");
    bin.data[4..8].copy_from_slice(&0u32.to_le_bytes());
    bin.data[8..12].copy_from_slice(&(size as u32).to_le_bytes());

    let mut base = vec![0u8; 4096];
    base[..4].copy_from_slice(b"regf");
    base[4..8].copy_from_slice(&1u32.to_le_bytes());
    base[8..12].copy_from_slice(&1u32.to_le_bytes());
    base[20..24].copy_from_slice(&1u32.to_le_bytes());
    base[24..28].copy_from_slice(&5u32.to_le_bytes());
    base[32..36].copy_from_slice(&1u32.to_le_bytes());
    base[36..40].copy_from_slice(&root_off.to_le_bytes());
    base[40..44].copy_from_slice(&(size as u32).to_le_bytes());
    base[44..48].copy_from_slice(&1u32.to_le_bytes());
    let sum = (0..127).fold(0u32, |x, i| {
        x ^ u32::from_le_bytes(base[i * 4..i * 4 + 4].try_into().unwrap())
    });
    base[508..512].copy_from_slice(&sum.to_le_bytes());
    base.extend_from_slice(&bin.data);
    base
}
