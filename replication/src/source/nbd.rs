//! A minimal synchronous NBD client (fixed newstyle handshake, NBD_OPT_GO, NBD_CMD_READ,
//! NBD_CMD_DISC) for reading an image that qemu-nbd serves on a Unix socket.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const INFO_EXPORT: u16 = 0;
const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;

pub struct NbdClient {
    stream: UnixStream,
    size: u64,
    cookie: u64,
}

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl NbdClient {
    /// Negotiates the default export ("") on a connected stream.
    pub fn handshake(mut stream: UnixStream) -> io::Result<NbdClient> {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
        if read_u64(&mut stream)? != NBDMAGIC || read_u64(&mut stream)? != IHAVEOPT {
            return Err(protocol("not a newstyle NBD server"));
        }
        let flags = read_u16(&mut stream)?;
        if flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(protocol("server does not speak fixed newstyle"));
        }
        let client_flags = u32::from(flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
        stream.write_all(&client_flags.to_be_bytes())?;

        // NBD_OPT_GO: export name length + name (empty) + zero information requests.
        let mut opt = Vec::with_capacity(22);
        opt.extend_from_slice(&IHAVEOPT.to_be_bytes());
        opt.extend_from_slice(&OPT_GO.to_be_bytes());
        opt.extend_from_slice(&6u32.to_be_bytes());
        opt.extend_from_slice(&0u32.to_be_bytes());
        opt.extend_from_slice(&0u16.to_be_bytes());
        stream.write_all(&opt)?;

        let mut size = None;
        loop {
            if read_u64(&mut stream)? != OPT_REPLY_MAGIC {
                return Err(protocol("bad option reply magic"));
            }
            let _option = read_u32(&mut stream)?;
            let reply = read_u32(&mut stream)?;
            let len = read_u32(&mut stream)? as usize;
            if len > 1 << 20 {
                return Err(protocol("oversized option reply"));
            }
            let mut data = vec![0u8; len];
            stream.read_exact(&mut data)?;
            match reply {
                REP_ACK => break,
                REP_INFO
                    if data.len() >= 12
                        && u16::from_be_bytes([data[0], data[1]]) == INFO_EXPORT =>
                {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&data[2..10]);
                    size = Some(u64::from_be_bytes(s));
                }
                REP_INFO => {}
                r if r & 0x8000_0000 != 0 => {
                    return Err(protocol(format!(
                        "server refused the export (reply {r:#x}): {}",
                        String::from_utf8_lossy(&data)
                    )));
                }
                _ => {}
            }
        }
        let size = size.ok_or_else(|| protocol("server sent no export size"))?;
        Ok(NbdClient {
            stream,
            size,
            cookie: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.cookie += 1;
        let len = u32::try_from(buf.len()).map_err(|_| protocol("read too large"))?;
        self.request(CMD_READ, offset, len)?;
        if read_u32(&mut self.stream)? != SIMPLE_REPLY_MAGIC {
            return Err(protocol("bad reply magic"));
        }
        let error = read_u32(&mut self.stream)?;
        let cookie = read_u64(&mut self.stream)?;
        if cookie != self.cookie {
            return Err(protocol("reply to another request"));
        }
        if error != 0 {
            return Err(io::Error::other(format!(
                "NBD read of {len} bytes at {offset} failed with error {error}"
            )));
        }
        self.stream.read_exact(buf)
    }

    fn request(&mut self, kind: u16, offset: u64, len: u32) -> io::Result<()> {
        let mut req = [0u8; 28];
        req[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        req[6..8].copy_from_slice(&kind.to_be_bytes());
        req[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        req[16..24].copy_from_slice(&offset.to_be_bytes());
        req[24..28].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&req)
    }
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        let _ = self.request(CMD_DISC, 0, 0);
    }
}

fn read_u16(r: &mut impl Read) -> io::Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}
