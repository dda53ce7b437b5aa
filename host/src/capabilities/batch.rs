//! `batch.handling`: inside an `on-events` batch, names the event the agent works on, so what
//! it sends, logs and is audited for is attributed to that event. Always granted: it reaches
//! nothing outside the instance.

use crate::runtime::StoreData;
use crate::wit::batch as wit;
use wasmtime::component::{HasSelf, Linker};

impl wit::Host for StoreData {
    fn handling(&mut self, index: u32) -> wasmtime::Result<()> {
        // A wrong index is a bug in the agent: trapping fails the batch loudly rather than
        // attributing its records to the wrong event.
        self.caller.handling(index).map_err(wasmtime::Error::msg)
    }
}

pub fn add_to_linker(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    wit::add_to_linker::<StoreData, HasSelf<StoreData>>(linker, |s| s)?;
    Ok(())
}
