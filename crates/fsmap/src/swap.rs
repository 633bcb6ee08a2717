//! Linux swap areas (`mkswap`, version 1).
//!
//! On-disk structure: the first page is the header. Its last ten bytes hold the signature
//! `SWAPSPACE2`; at byte 1024 sits `struct swap_header.info`: `version` (u32, 1), `last_page`
//! (u32, index of the last usable page), `nr_badpages` (u32), `uuid[16]`, `volume_name[16]`, and from
//! byte 1536 the bad-page list. Page size is the creating machine's (4 KiB on x86, up to 64 KiB
//! elsewhere), found by where the signature sits. Integers are in the creating machine's byte order.
//!
//! Pages `1..=last_page` hold nothing once the guest is shut off (swap does not survive a reboot;
//! bad pages are never used at all), so all of them are free and only the header page is data.
//! A hibernation image replaces the signature (`S1SUSPEND`, `S2SUSPEND`, `ULSUSPEND`,
//! `LINHIB0001`); resume needs it, so such an area is copied whole.

use crate::bytes::{be32, has, le32};
use crate::error::{bail, ensure, Result};
use crate::view::View;
use crate::walk::Leaf;

const PAGE_SIZES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
const SWAP_MAGIC: &[u8] = b"SWAPSPACE2";
const HIBERNATION: [&[u8]; 4] = [b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"LINHIB0001"];

fn hibernation_at(head: &[u8], ps: usize) -> bool {
    HIBERNATION.iter().any(|m| has(head, ps - 10, m))
}

/// Page sizes at which a swap or hibernation signature sits.
fn pages(head: &[u8]) -> Vec<usize> {
    PAGE_SIZES
        .iter()
        .copied()
        .filter(|&ps| has(head, ps - 10, SWAP_MAGIC) || hibernation_at(head, ps))
        .collect()
}

pub(crate) fn probe(head: &[u8]) -> bool {
    !pages(head).is_empty()
}

pub(crate) fn scan(view: &View, head: &[u8]) -> Result<Leaf> {
    let ps = match pages(head).as_slice() {
        [ps] => *ps,
        [] => bail!("no swap signature"),
        _ => bail!("swap signatures for several page sizes"),
    };
    ensure!(
        !hibernation_at(head, ps),
        "swap area holds a hibernation image (resume needs it)"
    );
    let version_le = le32(head, 1024)?;
    let big_endian = match version_le {
        1 => false,
        0x0100_0000 => true,
        v => bail!("swap header version {v} is not 1"),
    };
    let rd = |off| {
        if big_endian {
            be32(head, off)
        } else {
            le32(head, off)
        }
    };
    let last_page = u64::from(rd(1028)?);
    let nr_bad = rd(1032)?;
    // The kernel refuses more bad pages than fit in the header page; so do we.
    ensure!(
        nr_bad as usize <= (ps - 10 - 1536) / 4,
        "swap header lists {nr_bad} bad pages, more than fit"
    );
    ensure!(last_page >= 1, "swap area has no usable page");
    let ps = ps as u64;
    let end = (last_page + 1) * ps;
    ensure!(
        end <= view.len(),
        "swap area claims {} bytes but its region has {}",
        end,
        view.len()
    );
    let mut detail = format!("swap, {} KiB pages, {} pages", ps / 1024, last_page + 1);
    if nr_bad > 0 {
        detail.push_str(&format!(", {nr_bad} bad pages"));
    }
    if big_endian {
        detail.push_str(", big-endian");
    }
    // One range: the whole area after the header page.
    #[allow(clippy::single_range_in_vec_init)]
    let free = vec![ps..end];
    Ok(Leaf {
        kind: "swap",
        detail,
        free,
    })
}
