//! Real-image tests: images made with mkfs.ext4, mkfs.xfs, mkswap, sfdisk, sgdisk and LVM, free
//! space full of garbage, then every free range zeroed (or overwritten) in a copy, which must pass
//! the filesystem's own checker and give back every file byte for byte.

mod util;

mod ext;
mod lvm;
mod parts;
mod robust;
mod swap;
mod xfs;
