//! The architecture of a binary from its header: the PE machine field (Windows kernel, EFI
//! loaders) or the ELF e_machine (Linux binaries and modules).

use super::io::{le_u16, le_u32};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Arm64,
    I386,
    Arm32,
    Other(u16),
}

impl Machine {
    pub fn name(self) -> String {
        match self {
            Machine::X86_64 => "x86_64".into(),
            Machine::Arm64 => "arm64".into(),
            Machine::I386 => "i386 (32-bit)".into(),
            Machine::Arm32 => "arm (32-bit)".into(),
            Machine::Other(m) => format!("machine {m:#x}"),
        }
    }
}

/// The machine of a PE image (`MZ` header, then `PE\0\0` at e_lfanew); `head` must hold the
/// first few KiB.
pub fn pe_machine(head: &[u8]) -> Option<Machine> {
    if head.len() < 64 || &head[..2] != b"MZ" {
        return None;
    }
    let pe = le_u32(head, 0x3C) as usize;
    if head.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    Some(match le_u16(head, pe + 4) {
        0x8664 => Machine::X86_64,
        0xAA64 => Machine::Arm64,
        0x014C => Machine::I386,
        0x01C0 | 0x01C2 | 0x01C4 => Machine::Arm32,
        other => Machine::Other(other),
    })
}

/// The machine of an ELF file.
pub fn elf_machine(head: &[u8]) -> Option<Machine> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let m = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        le_u16(head, 18)
    };
    Some(match m {
        62 => Machine::X86_64,
        183 => Machine::Arm64,
        3 => Machine::I386,
        40 => Machine::Arm32,
        other => Machine::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_and_elf_machines() {
        let mut pe = vec![0u8; 256];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x84..0x86].copy_from_slice(&0xAA64u16.to_le_bytes());
        assert_eq!(pe_machine(&pe), Some(Machine::Arm64));
        pe[0x3C] = 0xFF; // e_lfanew past the buffer
        assert_eq!(pe_machine(&pe), None);

        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 62;
        assert_eq!(elf_machine(&elf), Some(Machine::X86_64));
        elf[18] = 183;
        assert_eq!(elf_machine(&elf), Some(Machine::Arm64));
        assert_eq!(elf_machine(b"\x7fELF"), None);
    }
}
