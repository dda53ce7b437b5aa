//! What one instance's store holds: its WASI context, its capability views, and the limiter
//! that enforces `limits.memory`.

use crate::capabilities::{Caller, InstanceCaps, InstanceStore};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The most one set of HTTP headers or trailers an agent builds may hold, in bytes.
pub const MAX_HTTP_FIELDS: usize = 64 * 1024;
/// The fewest resources (streams, bodies, header sets, descriptors) an instance may hold at
/// once; a larger `limits.memory` allows more (see [`resource_table`]).
pub const MIN_RESOURCES: usize = 256;

/// The resource table of an instance whose linear memory may grow to `memory` bytes. The
/// resources an agent creates live in host memory, outside `limits.memory`: each may hold up to
/// [`MAX_HTTP_FIELDS`] (a header set), so the table admits about `memory` bytes' worth of them
/// (at least [`MIN_RESOURCES`]), and a guest creating more gets an error instead of growing the
/// host without bound (wasmtime's default is a million entries).
pub fn resource_table(memory: usize) -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity((memory / MAX_HTTP_FIELDS).max(MIN_RESOURCES));
    table
}

/// The wasi:http context of an instance: header sets capped at [`MAX_HTTP_FIELDS`].
pub fn http_ctx() -> WasiHttpCtx {
    let mut ctx = WasiHttpCtx::new();
    ctx.set_field_size_limit(MAX_HTTP_FIELDS);
    ctx
}

pub struct StoreData {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    /// Shared by WASI and wasi:http: their resources (streams, bodies) refer to each other.
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub caps: InstanceCaps,
    pub stderr_tail: crate::capabilities::wasi::StderrTail,
    /// Shared with every capability of this instance.
    pub caller: Caller,
}

impl InstanceStore for StoreData {
    fn caps(&mut self) -> &mut InstanceCaps {
        &mut self.caps
    }

    fn caller(&mut self) -> &mut Caller {
        &mut self.caller
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.caps.http,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Enforces an agent's memory and table limits and remembers that it did, so a failure can be
/// reported as "memory limit reached" rather than as whatever the guest did when `memory.grow`
/// returned -1.
pub struct Limiter {
    pub memory: usize,
    pub table_elements: usize,
    pub memory_hit: bool,
    pub table_hit: bool,
    /// The largest linear memory granted so far, in bytes.
    pub memory_peak: usize,
}

impl Limiter {
    pub fn new(memory: usize, table_elements: usize) -> Self {
        Self {
            memory,
            table_elements,
            memory_hit: false,
            table_hit: false,
            memory_peak: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_hit = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}
