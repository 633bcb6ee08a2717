//! The three checksums the supported formats use, table driven, tables built at compile time.
//!
//! - CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): GPT headers and entry arrays
//!   (standard pre- and post-inversion), and LVM2 labels and metadata (LVM starts from its own
//!   initial value and does not invert).
//! - CRC-32C (Castagnoli, reflected 0x82F63B78): ext4 `metadata_csum` (raw update from a seed, no
//!   final inversion) and XFS v5 (standard inversions, stored little-endian).
//! - CRC-16 (ANSI, reflected 0xA001): ext4 `uninit_bg`/`gdt_csum` group descriptors.

const fn table32(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

const fn table16(poly: u16) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static IEEE: [u32; 256] = table32(0xEDB8_8320);
static CASTAGNOLI: [u32; 256] = table32(0x82F6_3B78);
static ANSI16: [u16; 256] = table16(0xA001);

fn update32(table: &[u32; 256], mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = (crc >> 8) ^ table[((crc ^ u32::from(b)) & 0xff) as usize];
    }
    crc
}

/// Standard CRC-32 (as zlib and the UEFI spec compute it).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    !update32(&IEEE, !0, data)
}

/// LVM2's `calc_crc`: the IEEE table, caller's initial value, no inversion.
pub(crate) fn lvm_crc(initial: u32, data: &[u8]) -> u32 {
    update32(&IEEE, initial, data)
}

/// Raw CRC-32C update from `seed` without inversions, as ext4's `ext4_chksum` computes it.
pub(crate) fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    update32(&CASTAGNOLI, seed, data)
}

/// Standard CRC-32C, which is what XFS stores (over the buffer with its CRC field zeroed).
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !crc32c_raw(!0, data)
}

/// CRC-16/ANSI update, as e2fsprogs' `ext2fs_crc16` computes it.
pub(crate) fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc = (crc >> 8) ^ ANSI16[((crc ^ u16::from(b)) & 0xff) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    // Check values of the catalogue of parametrised CRC algorithms, input "123456789".
    #[test]
    fn check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // CRC-16/ARC (init 0) and CRC-16/MODBUS-like init 0xFFFF use the same table.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
        assert_eq!(crc16(0xFFFF, b"123456789"), 0x4B37);
    }
}
