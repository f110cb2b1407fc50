//! [trust]: what the store must withstand, through the real binary — files a member of a shared
//! store plants in it (`planted`), and the holes closed in the publish protocol: resume into a
//! published blob, the link fallback, durability order, `ulimit -f`, a full disk (`publish`).

mod planted;
mod publish;
