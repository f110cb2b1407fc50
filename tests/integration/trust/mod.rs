//! [trust]: what the store must withstand, through the real binary — files a member of a shared
//! store plants in it (`planted`), and the holes closed in the publish protocol: resume into a
//! published blob, the link fallback, durability order, `ulimit -f`, a full disk (`publish`); and
//! the small ones: init's path, a catalogue size against a healthy blob, untrusted config files
//! (`small`).

mod planted;
mod publish;
mod small;
