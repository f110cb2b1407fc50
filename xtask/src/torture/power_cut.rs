//! R10, power cuts: R1's operations on a store on the kit's test filesystem in power-cut mode
//! (`testkit::testfs`, docs/development.md), each stopped by a cut at a random instant of its
//! run: what was not fsynced (data, or a directory's entries) is lost, the process dies, the
//! filesystem is mounted again from what was durable. Then, as in R1, the invariants must hold
//! ([`super::check`]), and the same operation must succeed and hold them again; and an
//! operation that had succeeded before the cut must not have been lost by it (a pulled or
//! added name still recorded with its bytes, a removed one still gone).
//! All trials share one store and one filesystem, so each starts from what earlier cuts left.

use anyhow::{Context, Result};
use testkit::testfs::{available, Options, TestFs};
use testkit::users::{root_decision, RootOnly};

use super::kill::{trials, world};
use super::{Ctx, Outcome};

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R10 power cuts");
    match root_decision() {
        RootOnly::Run => available()?,
        RootOnly::NotRun => {
            out.figure("not run", "mounting the test filesystem needs root");
            return Ok(out);
        }
        RootOnly::Fail => {
            out.violations.push(
                "R10 needs root (a FUSE mount) and BEAKER_TEST_REQUIRE_ROOT=1 demands it".into(),
            );
            return Ok(out);
        }
    }
    let mut fs = TestFs::new(&Options::profile("power-cut")?)
        .context("mount the test filesystem in power-cut mode")?;
    let mut w = world(ctx, "power")?;
    w.lab.store = fs.path().join("store");
    trials(ctx, ctx.trials, out, &w, Some(&mut fs))
}
