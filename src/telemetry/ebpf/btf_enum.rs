//! Reads one enum's variants out of raw BTF (`/sys/kernel/btf/vmlinux`): the
//! kernel's own names for drop reasons, so a kernel that adds or renumbers
//! `SKB_DROP_REASON_*` values is named right without tracefs or a table here.
//! Pure: bytes in, variants out.

use thiserror::Error;

/// Why the BTF bytes could not be read.
#[derive(Debug, Error, PartialEq)]
pub enum BtfEnumError {
    /// Not BTF, or cut short.
    #[error("not a BTF blob ({0}); expected the contents of /sys/kernel/btf/vmlinux")]
    Malformed(&'static str),
    /// A type of a kind this reader does not know (newer BTF): its size is unknown, so the walk stops.
    #[error("BTF type kind {0} is unknown to this reader; the enum cannot be found past it")]
    UnknownKind(u32),
}

/// The variants (value, name) of the enum named `name`, or `Ok(None)` when the BTF has no such enum.
pub fn enum_variants(btf: &[u8], name: &str) -> Result<Option<Vec<(i64, String)>>, BtfEnumError> {
    let u32_at = |off: usize| -> Result<u32, BtfEnumError> {
        btf.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfEnumError::Malformed("cut short"))
    };
    if btf.len() < 24 || btf[0..2] != [0x9f, 0xeb] {
        return Err(BtfEnumError::Malformed("no 0xeB9F little-endian magic"));
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len, str_off, str_len) = (u32_at(8)? as usize, u32_at(12)? as usize, u32_at(16)? as usize, u32_at(20)? as usize);
    let types = hdr_len + type_off;
    let strings = btf.get(hdr_len + str_off..hdr_len + str_off + str_len).ok_or(BtfEnumError::Malformed("string section out of bounds"))?;
    let string_at = |off: u32| -> String {
        let tail = strings.get(off as usize..).unwrap_or(&[]);
        String::from_utf8_lossy(&tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())]).into_owned()
    };
    let mut at = types;
    while at < types + type_len {
        let (name_off, info) = (u32_at(at)?, u32_at(at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        at += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
            k => return Err(BtfEnumError::UnknownKind(k)),
        };
        if (kind == 6 || kind == 19) && string_at(name_off) == name {
            let signed = info & (1 << 31) != 0;
            let mut out = Vec::with_capacity(vlen);
            for i in 0..vlen {
                let (v_name, value) = if kind == 6 {
                    let raw = u32_at(at + 8 * i + 4)?;
                    (u32_at(at + 8 * i)?, if signed { raw as i32 as i64 } else { raw as i64 })
                } else {
                    let (lo, hi) = (u32_at(at + 12 * i + 4)? as u64, u32_at(at + 12 * i + 8)? as u64);
                    (u32_at(at + 12 * i)?, ((hi << 32) | lo) as i64)
                };
                out.push((value, string_at(v_name)));
            }
            return Ok(Some(out));
        }
        at += extra;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with an INT, a STRUCT of one member, then the enum `e` {A=6, B=40}.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0m\0e\0A\0B\0";
        let mut t: Vec<u32> = vec![1, 1 << 24, 4, 32]; // "int": INT, size 4, 32 bits
        t.extend([5, (4 << 24) | 1, 4, 7, 1, 0]); // "s": STRUCT, one member "m" of type 1
        t.extend([9, (6 << 24) | 2, 4, 11, 6, 13, 40]); // "e": ENUM, A=6, B=40
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            b.extend(w.to_le_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_an_enum_after_other_kinds() {
        assert_eq!(enum_variants(&blob(), "e").unwrap(), Some(vec![(6, "A".to_string()), (40, "B".to_string())]));
        assert_eq!(enum_variants(&blob(), "absent").unwrap(), None);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_an_error_not_a_panic() {
        let b = blob();
        assert!(matches!(enum_variants(&b[..30], "e"), Err(BtfEnumError::Malformed(_))));
        assert!(matches!(enum_variants(b"\x7fELF and more bytes than a header", "e"), Err(BtfEnumError::Malformed(_))));
        let mut unknown = b.clone();
        unknown[24 + 7] = 31; // first type's kind byte
        assert_eq!(enum_variants(&unknown, "e"), Err(BtfEnumError::UnknownKind(31)));
    }

    #[test]
    fn live_kernel_names_the_receive_buffer_drop() {
        let Ok(btf) = std::fs::read("/sys/kernel/btf/vmlinux") else { return };
        let v = enum_variants(&btf, "skb_drop_reason").unwrap().expect("vmlinux BTF has enum skb_drop_reason");
        assert!(v.iter().any(|(_, n)| n == "SKB_DROP_REASON_SOCKET_RCVBUFF"), "{v:?}");
    }
}
