//! A built network: XNNPACK's operators with their weights packed, and the buffers they run on.
//!
//! Invariants (what XNNPACK's operator API asks of its caller, upheld here and nowhere else):
//! * an operator keeps the input and output pointers it was set up with and reads or writes them
//!   on every run, so no buffer is reallocated, moved or freed between [`Network::prepare`]
//!   (which sets every operator up again after resizing) and the runs that follow it;
//! * operators are deleted before the buffers are freed (`Drop`); the thread pools they run on
//!   are never destroyed ([`shared_pool`]), so no operator outlives its pool;
//! * every network of a process with the same thread count runs on one pthreadpool: pthreadpool
//!   serializes the calls of several threads on one pool (`pthreadpool.h`), and a pool's workers
//!   spin for a while after each call, so two pools taking turns would each find the other's
//!   workers still spinning on the cores (measured: a second network's phone half at 24–29 ms
//!   against 14–16 ms on its own pool, docs/engines.md);
//! * a network runs through `&mut self` only, so no two runs share its buffers.
#![allow(unsafe_code)]

use crate::builder::{Extent, NetworkBuilder, ValueId};
#[cfg(xnnpack_linked)]
use crate::builder::Layer;
#[cfg(xnnpack_linked)]
use crate::ffi;
use crate::{Error, Result};

/// How one operator is set up for a batch: which buffers it reads and writes, and what else its
/// setup call takes.
#[cfg(xnnpack_linked)]
#[derive(Debug, Clone, Copy)]
enum Setup {
    Convolution { input: ValueId, output: ValueId },
    Deconvolution { input: ValueId, output: ValueId, adjustment: [usize; 2] },
    MaxPool { input: ValueId, output: ValueId },
    Add { a: ValueId, b: ValueId, output: ValueId },
    Relu { input: ValueId, output: ValueId },
    GlobalAveragePool { input: ValueId, output: ValueId },
    FullyConnected { input: ValueId, output: ValueId },
}

#[cfg(xnnpack_linked)]
#[derive(Debug)]
struct Operator {
    handle: ffi::Operator,
    setup: Setup,
}

/// A network ready to run: [`NetworkBuilder::build`].
#[derive(Debug)]
pub struct Network {
    values: Vec<Extent>,
    output: ValueId,
    /// The buffer each value lives in: values whose lives do not overlap share one.
    slot_of: Vec<usize>,
    /// Values per sample each buffer must hold (its largest value).
    slot_len: Vec<usize>,
    buffers: Vec<Vec<f32>>,
    /// The batch every operator is set up for (0: none yet).
    prepared: usize,
    multiply_adds: f64,
    threads: usize,
    #[cfg(xnnpack_linked)]
    operators: Vec<Operator>,
    #[cfg(xnnpack_linked)]
    pool: ffi::ThreadPool,
}

// SAFETY: XNNPACK's operators and pthreadpool's pool are plain heap objects, not bound to the
// thread that made them; a `Network` runs its operators only through `&mut self`, never from two
// threads at once, and the pool it shares with other networks serializes their calls.
unsafe impl Send for Network {}

/// Assigns each value a buffer: a value's buffer is free again after its last reader ran, and
/// a layer's output never shares a buffer with its inputs. The input and `output` keep theirs.
fn assign_slots(builder: &NetworkBuilder, output: ValueId) -> (Vec<usize>, Vec<usize>) {
    let mut last_read = vec![0usize; builder.values.len()];
    for (i, layer) in builder.layers.iter().enumerate() {
        for v in layer.inputs() {
            last_read[v.0] = i;
        }
    }
    let mut slot_of = vec![0usize; builder.values.len()];
    let mut slot_len = vec![builder.values[0].len()];
    let mut free: Vec<usize> = Vec::new();
    for (i, layer) in builder.layers.iter().enumerate() {
        let value = i + 1;
        let slot = free.pop().unwrap_or_else(|| {
            slot_len.push(0);
            slot_len.len() - 1
        });
        slot_of[value] = slot;
        slot_len[slot] = slot_len[slot].max(builder.values[value].len());
        for v in layer.inputs() {
            if last_read[v.0] == i && v.0 != 0 && v != output && !free.contains(&slot_of[v.0]) {
                free.push(slot_of[v.0]);
            }
        }
    }
    (slot_of, slot_len)
}

impl NetworkBuilder {
    /// Creates XNNPACK's operators (each packs its weights now; the builder's copies are
    /// dropped) with `output` as the network's result, run on `threads` threads (1: the calling
    /// thread; more: a pthreadpool of that many).
    pub fn build(self, output: ValueId, threads: usize) -> Result<Network> {
        self.extent(output)?;
        let (slot_of, slot_len) = assign_slots(&self, output);
        let buffers: Vec<Vec<f32>> = vec![Vec::new(); slot_len.len()];
        #[cfg(not(xnnpack_linked))]
        {
            let _ = (slot_of, slot_len, buffers, threads);
            Err(Error::NotLinked)
        }
        #[cfg(xnnpack_linked)]
        {
            initialize()?;
            let pool = if threads > 1 { shared_pool(threads)? } else { std::ptr::null_mut() };
            let mut network = Network { values: self.values.clone(), output, slot_of, slot_len, buffers, prepared: 0, multiply_adds: self.multiply_adds, threads: threads.max(1), operators: Vec::new(), pool };
            for (i, layer) in self.layers.into_iter().enumerate() {
                let made = ValueId(i + 1);
                let operator = create(&network.values, layer, made)?;
                network.operators.push(operator);
            }
            Ok(network)
        }
    }
}

impl Network {
    /// One sample's input extent (NHWC).
    pub fn input_extent(&self) -> Extent {
        self.values[0]
    }

    /// One sample's output extent (NHWC; a vector is `1×1×c`).
    pub fn output_extent(&self) -> Extent {
        self.values[self.output.0]
    }

    /// Multiply-adds per sample.
    pub fn multiply_adds(&self) -> f64 {
        self.multiply_adds
    }

    /// Threads a run uses.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `batch` samples laid end to end in `input` (NHWC); the outputs, laid end to end.
    pub fn run(&mut self, batch: usize, input: &[f32]) -> Result<&[f32]> {
        let per_sample = self.values[0].len();
        if batch == 0 || input.len() != batch * per_sample {
            return Err(Error::Invalid(format!("the network takes batches of {:?} samples ({per_sample} values each); got {} values for {batch}", self.values[0], input.len())));
        }
        self.run_with(batch, |buffer| buffer.copy_from_slice(input))
    }

    /// [`run`](Self::run) where `fill` writes the `batch` samples (NHWC) straight into the
    /// network's input buffer, whose length it is given: a caller that converts its input (from
    /// NCHW) writes it once, not into a copy first.
    pub fn run_with(&mut self, batch: usize, fill: impl FnOnce(&mut [f32])) -> Result<&[f32]> {
        if batch == 0 {
            return Err(Error::Invalid("the network takes batches of at least one sample".into()));
        }
        self.prepare(batch)?;
        let len = batch * self.values[0].len();
        fill(&mut self.buffers[self.slot_of[0]][..len]);
        self.run_operators()?;
        let len = batch * self.values[self.output.0].len();
        Ok(&self.buffers[self.slot_of[self.output.0]][..len])
    }

    /// Sizes every buffer for `batch` and sets every operator up on them (only when the batch
    /// changes: the pointers stay valid until the next resize).
    fn prepare(&mut self, batch: usize) -> Result<()> {
        if self.prepared == batch {
            return Ok(());
        }
        self.prepared = 0;
        for (buffer, &len) in self.buffers.iter_mut().zip(&self.slot_len) {
            *buffer = vec![0.0; len * batch];
        }
        #[cfg(xnnpack_linked)]
        {
            let pointers: Vec<*mut f32> = self.buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
            let at = |v: ValueId| pointers[self.slot_of[v.0]];
            for operator in &self.operators {
                setup(operator, &self.values, batch, &at, self.pool)?;
            }
        }
        self.prepared = batch;
        Ok(())
    }

    fn run_operators(&mut self) -> Result<()> {
        #[cfg(xnnpack_linked)]
        for operator in &self.operators {
            // SAFETY: every operator was set up by `prepare` on the buffers as they are now.
            check("run", unsafe { ffi::xnn_run_operator(operator.handle, self.pool) })?;
        }
        Ok(())
    }
}

#[cfg(xnnpack_linked)]
impl Drop for Network {
    fn drop(&mut self) {
        for operator in self.operators.drain(..) {
            // SAFETY: each handle came from a successful create and is deleted once.
            unsafe { ffi::xnn_delete_operator(operator.handle) };
        }
        // The pool is shared and outlives every network ([`shared_pool`]).
    }
}

/// A pool's address, kept in [`POOLS`].
#[cfg(xnnpack_linked)]
struct PoolHandle(ffi::ThreadPool);

// SAFETY: a pthreadpool is a heap object usable from any thread; calls from several threads on
// one pool are serialized by pthreadpool itself (`pthreadpool.h`).
#[cfg(xnnpack_linked)]
unsafe impl Send for PoolHandle {}

/// The process's pools, one per thread count, created on first use and never destroyed.
#[cfg(xnnpack_linked)]
static POOLS: std::sync::Mutex<Vec<(usize, PoolHandle)>> = std::sync::Mutex::new(Vec::new());

/// The process's pool of `threads` workers (see the module's invariants).
#[cfg(xnnpack_linked)]
fn shared_pool(threads: usize) -> Result<ffi::ThreadPool> {
    let mut pools = POOLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(pool.0);
    }
    // SAFETY: creates a pool of `threads` workers; null on failure (checked).
    let pool = unsafe { ffi::pthreadpool_create(threads) };
    if pool.is_null() {
        return Err(Error::Invalid(format!("could not start a thread pool of {threads} threads")));
    }
    pools.push((threads, PoolHandle(pool)));
    Ok(pool)
}

#[cfg(xnnpack_linked)]
fn status_name(status: ffi::Status) -> &'static str {
    match status {
        1 => "uninitialized",
        2 => "invalid parameter",
        3 => "invalid state",
        4 => "unsupported parameter",
        5 => "unsupported hardware",
        6 => "out of memory",
        _ => "unknown status",
    }
}

#[cfg(xnnpack_linked)]
fn check(call: &'static str, status: ffi::Status) -> Result<()> {
    if status == 0 { Ok(()) } else { Err(Error::Call { call, status: status_name(status) }) }
}

/// `xnn_initialize`, once per process.
#[cfg(xnnpack_linked)]
fn initialize() -> Result<()> {
    static STATUS: std::sync::OnceLock<ffi::Status> = std::sync::OnceLock::new();
    // SAFETY: null selects XNNPACK's default allocator; the call is made once.
    let status = *STATUS.get_or_init(|| unsafe { ffi::xnn_initialize(std::ptr::null()) });
    check("initialize", status)
}

/// The output clamp of a layer: `[0, ∞)` with a fused ReLU, else unbounded.
#[cfg(xnnpack_linked)]
fn clamp(relu: bool) -> (f32, f32) {
    (if relu { 0.0 } else { f32::NEG_INFINITY }, f32::INFINITY)
}

#[cfg(xnnpack_linked)]
fn create(values: &[Extent], layer: Layer, output: ValueId) -> Result<Operator> {
    let u = |v: usize| u32::try_from(v).map_err(|_| Error::Invalid(format!("{v} does not fit XNNPACK's 32-bit parameters")));
    let mut handle: ffi::Operator = std::ptr::null_mut();
    let setup = match layer {
        Layer::Convolution { input, window, groups, output_channels, kernel, bias, relu } => {
            let (min, max) = clamp(relu);
            let (c_in, p) = (values[input.0].channels, window.padding);
            // SAFETY: the kernel and bias hold the lengths the builder checked; XNNPACK packs
            // them into its own memory during the call and keeps no pointer to them.
            check("convolution create", unsafe {
                ffi::xnn_create_convolution2d_nhwc_f32(
                    u(p.top)?, u(p.right)?, u(p.bottom)?, u(p.left)?, u(window.kernel[0])?, u(window.kernel[1])?,
                    u(window.stride[0])?, u(window.stride[1])?, u(window.dilation[0])?, u(window.dilation[1])?, u(groups)?,
                    c_in / groups, output_channels / groups, c_in, output_channels,
                    kernel.as_ptr(), bias.as_ptr(), min, max, 0, &mut handle,
                )
            })?;
            Setup::Convolution { input, output }
        }
        Layer::Deconvolution { input, window, adjustment, groups, output_channels, kernel, bias, relu } => {
            let (min, max) = clamp(relu);
            let (c_in, p) = (values[input.0].channels, window.padding);
            // SAFETY: as for the convolution.
            check("deconvolution create", unsafe {
                ffi::xnn_create_deconvolution2d_nhwc_f32(
                    u(p.top)?, u(p.right)?, u(p.bottom)?, u(p.left)?, u(window.kernel[0])?, u(window.kernel[1])?,
                    u(window.stride[0])?, u(window.stride[1])?, u(window.dilation[0])?, u(window.dilation[1])?, u(groups)?,
                    c_in / groups, output_channels / groups, c_in, output_channels,
                    kernel.as_ptr(), bias.as_ptr(), min, max, 0, &mut handle,
                )
            })?;
            Setup::Deconvolution { input, output, adjustment }
        }
        Layer::MaxPool { input, window, relu } => {
            let (min, max) = clamp(relu);
            let (c, p) = (values[input.0].channels, window.padding);
            // SAFETY: plain parameters.
            check("max pooling create", unsafe {
                ffi::xnn_create_max_pooling2d_nhwc_f32(
                    u(p.top)?, u(p.right)?, u(p.bottom)?, u(p.left)?, u(window.kernel[0])?, u(window.kernel[1])?,
                    u(window.stride[0])?, u(window.stride[1])?, u(window.dilation[0])?, u(window.dilation[1])?,
                    c, c, c, min, max, 0, &mut handle,
                )
            })?;
            Setup::MaxPool { input, output }
        }
        Layer::Add { a, b, relu } => {
            let (min, max) = clamp(relu);
            // SAFETY: plain parameters.
            check("add create", unsafe { ffi::xnn_create_add_nd_f32(min, max, 0, &mut handle) })?;
            Setup::Add { a, b, output }
        }
        Layer::Relu { input } => {
            let c = values[input.0].channels;
            // SAFETY: plain parameters.
            check("clamp create", unsafe { ffi::xnn_create_clamp_nc_f32(c, c, c, 0.0, f32::INFINITY, 0, &mut handle) })?;
            Setup::Relu { input, output }
        }
        Layer::GlobalAveragePool { input, relu } => {
            let (min, max) = clamp(relu);
            let c = values[input.0].channels;
            // SAFETY: plain parameters.
            check("global average pooling create", unsafe { ffi::xnn_create_global_average_pooling_nwc_f32(c, c, c, min, max, 0, &mut handle) })?;
            Setup::GlobalAveragePool { input, output }
        }
        Layer::FullyConnected { input, outputs, kernel, bias, relu } => {
            let (min, max) = clamp(relu);
            let inputs = values[input.0].channels;
            // SAFETY: as for the convolution; the kernel is [inputs, outputs], hence the flag.
            check("fully-connected create", unsafe {
                ffi::xnn_create_fully_connected_nc_f32(inputs, outputs, inputs, outputs, kernel.as_ptr(), bias.as_ptr(), min, max, ffi::FLAG_TRANSPOSE_WEIGHTS, &mut handle)
            })?;
            Setup::FullyConnected { input, output }
        }
    };
    Ok(Operator { handle, setup })
}

#[cfg(xnnpack_linked)]
fn setup(operator: &Operator, values: &[Extent], batch: usize, at: &dyn Fn(ValueId) -> *mut f32, pool: ffi::ThreadPool) -> Result<()> {
    let handle = operator.handle;
    // Every call below passes the buffers `prepare` just sized for `batch` samples of each
    // value, which stay in place until the next `prepare`.
    match operator.setup {
        Setup::Convolution { input, output } => {
            let e = values[input.0];
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("convolution setup", unsafe { ffi::xnn_setup_convolution2d_nhwc_f32(handle, batch, e.height, e.width, at(input), at(output), pool) })
        }
        Setup::Deconvolution { input, output, adjustment } => {
            let e = values[input.0];
            let adjust = |a: usize| u32::try_from(a).map_err(|_| Error::Invalid(format!("adjustment {a} too large")));
            // SAFETY: buffers sized and pinned by `prepare` (above).
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("deconvolution setup", unsafe {
                ffi::xnn_setup_deconvolution2d_nhwc_f32(handle, batch, e.height, e.width, adjust(adjustment[0])?, adjust(adjustment[1])?, at(input), at(output), pool)
            })
        }
        Setup::MaxPool { input, output } => {
            let e = values[input.0];
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("max pooling setup", unsafe { ffi::xnn_setup_max_pooling2d_nhwc_f32(handle, batch, e.height, e.width, at(input), at(output), pool) })
        }
        Setup::Add { a, b, output } => {
            let shape = [batch * values[a.0].len()];
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("add setup", unsafe { ffi::xnn_setup_add_nd_f32(handle, 1, shape.as_ptr(), 1, shape.as_ptr(), at(a), at(b), at(output), pool) })
        }
        Setup::Relu { input, output } => {
            let e = values[input.0];
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("clamp setup", unsafe { ffi::xnn_setup_clamp_nc_f32(handle, batch * e.height * e.width, at(input), at(output), pool) })
        }
        Setup::GlobalAveragePool { input, output } => {
            let e = values[input.0];
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("global average pooling setup", unsafe { ffi::xnn_setup_global_average_pooling_nwc_f32(handle, batch, e.height * e.width, at(input), at(output), pool) })
        }
        Setup::FullyConnected { input, output } => {
            // SAFETY: buffers sized and pinned by `prepare` (above).
            check("fully-connected setup", unsafe { ffi::xnn_setup_fully_connected_nc_f32(handle, batch, at(input), at(output), pool) })
        }
    }
}
