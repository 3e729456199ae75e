//! [`Network`]: a [`NetworkBuilder`]'s layers as oneDNN inference primitives, each in the
//! memory format it chose (blocked, e.g. `nChw8c` with AVX2), with a reorder only where a
//! consumer chose another format than its producer, and at the two ends (plain NCHW).
//!
//! Invariants:
//! * every value lives in one memory in its producer's chosen format; a residual sum writes into
//!   a copy of the other operand, or into the operand itself where this layer is its last reader
//!   and the formats agree (never into the caller's input);
//! * weights are reordered into their chosen formats once, here; biases stay plain;
//! * a Winograd step (ours, `winograd_step.rs`) reads its source only after the stream has
//!   finished the primitives before it, and writes a destination buffer of its own;
//! * all primitives share one scratchpad buffer (they run one after another), so a network may
//!   run on any thread but not on two at once (`&mut self`);
//! * the caller's buffers are only borrowed during [`Network::run`], which waits for the stream.

use super::handles::*;
use super::winograd_step::WinogradStep;
use crate::ffi::*;
use crate::network::{ConvLayer, Layer, NetworkBuilder, ValueId, Window};
use crate::winograd::{Geometry, Scratch, Tile, WinogradConv};
use crate::{Error, Result};
use std::ffi::{c_int, c_void};
use std::ptr;

/// 64-byte aligned storage (oneDNN's preferred alignment) that never moves once made.
struct Aligned {
    lines: Vec<Line>,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

impl Aligned {
    fn zeroed(bytes: usize) -> Self {
        Self { lines: vec![Line([0; 64]); bytes.div_ceil(64).max(1)] }
    }

    fn from_f32(values: &[f32]) -> Self {
        let mut buffer = Self::zeroed(values.len() * 4);
        for (chunk, v) in buffer.lines.iter_mut().flat_map(|l| l.0.chunks_exact_mut(4)).zip(values) {
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        buffer
    }

    fn ptr(&mut self) -> *mut c_void {
        self.lines.as_mut_ptr().cast()
    }
}

/// One step of a run: a oneDNN primitive, or a Winograd layer of ours.
enum Step {
    Primitive(PrimitiveStep),
    Winograd(WinogradStep),
}

/// One primitive and its arguments, run in order.
struct PrimitiveStep {
    prim: Primitive,
    args: Vec<dnnl_exec_arg_t>,
    /// The scratchpad this primitive needs (bytes, and its md), bound after planning.
    scratch: Option<dnnl_memory_desc_t>,
}

/// A value's memory: its format and the memory object (owned by the network's `memories`).
#[derive(Clone, Copy)]
struct Placed {
    md: dnnl_memory_desc_t,
    memory: dnnl_memory_t,
    /// 2 after an inner product (`[n, k]`), else 4 (NCHW).
    rank: usize,
}

/// A planned inference network. See the module's invariants.
pub struct Network {
    threads: usize,
    input_len: usize,
    output_len: usize,
    output_dims: [usize; 4],
    summary: Vec<String>,
    /// One per thread, shared by the Winograd steps (which run one at a time).
    winograd_scratch: Vec<Scratch>,
    // Field order is drop order: primitives, then memories, then the storage behind them, the
    // stream, the engine last.
    steps: Vec<Step>,
    input: Memory,
    output: Memory,
    _memories: Vec<Memory>,
    _storage: Vec<Aligned>,
    stream: Stream,
    _engine: Engine,
}

// SAFETY: the network exclusively owns every oneDNN object and buffer it points at; the caller's
// buffers are attached only during `run` (`&mut self`) and detached before it returns. The
// scratchpad is user-managed (no thread-local library scratchpad), so the primitives do not
// depend on the creating thread; oneDNN CPU objects may be used from any thread one at a time.
unsafe impl Send for Network {}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("steps", &self.steps.len()).field("threads", &self.threads).field("output_dims", &self.output_dims).finish_non_exhaustive()
    }
}

fn dim(v: usize) -> i64 {
    // Shapes were checked by the builder, so every count fits.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn dims_of(values: &[usize]) -> Vec<i64> {
    values.iter().map(|&v| dim(v)).collect()
}

/// A `dnnl_dims_t` holding `values` first.
fn dnnl_dims(values: &[usize]) -> dnnl_dims_t {
    let mut d = [0; DNNL_MAX_NDIMS];
    for (slot, &v) in d.iter_mut().zip(values) {
        *slot = dim(v);
    }
    d
}

/// Strides, oneDNN dilations (0 = dense), padding before and after of a window.
fn geometry(window: &Window, padding_after: [usize; 2]) -> [dnnl_dims_t; 4] {
    [
        dnnl_dims(&window.stride),
        dnnl_dims(&[window.dilation[0] - 1, window.dilation[1] - 1]),
        dnnl_dims(&[window.padding[0], window.padding[1]]),
        dnnl_dims(&padding_after),
    ]
}

/// The plain (row-major) format of a tensor of `ndims` dims.
fn plain_tag(ndims: usize) -> dnnl_format_tag_t {
    if ndims == 2 { dnnl_nc } else { dnnl_nchw }
}

struct Planner {
    /// Whether eligible convolutions may run as Winograd layers ([`NetworkBuilder::set_winograd`]).
    winograd: bool,
    engine: Engine,
    stream: Stream,
    steps: Vec<Step>,
    memories: Vec<Memory>,
    storage: Vec<Aligned>,
    summary: Vec<String>,
}

impl Planner {
    /// A library-allocated memory in `md`, owned by the planner.
    fn allocate(&mut self, md: &dnnl_memory_desc_t) -> Result<dnnl_memory_t> {
        let memory = Memory::new(md, &self.engine, DNNL_MEMORY_ALLOCATE)?;
        let raw = memory.0;
        self.memories.push(memory);
        Ok(raw)
    }

    /// A memory in plain `md` over a copy of `values` the planner keeps.
    fn constant(&mut self, md: &dnnl_memory_desc_t, values: &[f32]) -> Result<dnnl_memory_t> {
        let mut buffer = Aligned::from_f32(values);
        let memory = Memory::new(md, &self.engine, DNNL_MEMORY_NONE)?;
        memory.set_handle(buffer.ptr())?;
        let raw = memory.0;
        self.storage.push(buffer);
        self.memories.push(memory);
        Ok(raw)
    }

    fn step(&mut self, pd: &PrimitiveDesc, args: Vec<dnnl_exec_arg_t>) -> Result<()> {
        let scratch = pd.md(dnnl_query_scratchpad_md, 0)?;
        let scratch = (md_size(&scratch) > 0).then_some(scratch);
        self.steps.push(Step::Primitive(PrimitiveStep { prim: Primitive::new(pd)?, args, scratch }));
        Ok(())
    }

    /// A step copying `from` (in its format) into `to_md`/`to`.
    fn reorder_step(&mut self, from: Placed, to_md: &dnnl_memory_desc_t, to: dnnl_memory_t) -> Result<()> {
        let attr = Attr::user_scratchpad()?;
        let pd = PrimitiveDesc::reorder(&from.md, to_md, &attr, &self.engine)?;
        self.step(&pd, vec![dnnl_exec_arg_t { arg: DNNL_ARG_FROM, memory: from.memory }, dnnl_exec_arg_t { arg: DNNL_ARG_TO, memory: to }])
    }

    /// `value` in the format `wanted`: itself, or a reordered copy (a step).
    fn in_format(&mut self, value: Placed, wanted: &dnnl_memory_desc_t) -> Result<Placed> {
        if md_equal(&value.md, wanted) {
            return Ok(value);
        }
        let memory = self.allocate(wanted)?;
        self.reorder_step(value, wanted, memory)?;
        Ok(Placed { md: *wanted, memory, rank: value.rank })
    }

    /// Plain `weights` of `plain` format, reordered now into the format the primitive chose.
    fn weights(&mut self, plain: &dnnl_memory_desc_t, chosen: &dnnl_memory_desc_t, values: &[f32]) -> Result<dnnl_memory_t> {
        if md_equal(plain, chosen) {
            return self.constant(plain, values);
        }
        let mut buffer = Aligned::from_f32(values);
        let user = Memory::new(plain, &self.engine, DNNL_MEMORY_NONE)?;
        user.set_handle(buffer.ptr())?;
        let packed = Memory::new(chosen, &self.engine, DNNL_MEMORY_ALLOCATE)?;
        let attr = Attr::user_scratchpad()?;
        Reorder::new(plain, chosen, &attr, &self.engine)?.run(&self.stream, &user, &packed)?;
        self.stream.wait()?;
        drop(user);
        let raw = packed.0;
        self.memories.push(packed);
        Ok(raw)
    }

    fn convolution(&mut self, index: usize, made: ValueId, conv: &ConvLayer, dims: &[[usize; 4]], values: &mut [Option<Placed>], last_reader: &[usize]) -> Result<Placed> {
        let (src_dims, dst_dims) = (dims[conv.x.0], dims[made.0]);
        let [_, c, _, _] = src_dims;
        let o = dst_dims[1];
        let g = conv.groups;
        let [kh, kw] = conv.window.kernel;
        let (weight_dims, weight_tag) = match (conv.transposed.is_some(), g) {
            (false, 1) => (vec![o, c, kh, kw], dnnl_oihw),
            (false, _) => (vec![g, o / g, c / g, kh, kw], dnnl_goihw),
            (true, 1) => (vec![o, c, kh, kw], dnnl_iohw),
            (true, _) => (vec![g, o / g, c / g, kh, kw], dnnl_giohw),
        };
        let any = |d: &[usize]| init_md(&dims_of(d), dnnl_format_tag_any);
        let (src_any, weights_any, dst_any) = (any(&src_dims)?, any(&weight_dims)?, any(&dst_dims)?);
        let bias_md = init_md(&[dim(o)], dnnl_x)?;
        let after = match conv.transposed {
            None => [conv.window.padding[2], conv.window.padding[3]],
            Some([ah, aw]) => [conv.window.padding[2] - ah, conv.window.padding[3] - aw],
        };
        let [strides, dilates, pad_l, pad_r] = geometry(&conv.window, after);
        let mut desc = dnnl_convolution_desc_t::zeroed_box();
        // SAFETY: every md is initialised, the dims arrays hold the two spatial values first.
        let status = unsafe {
            if conv.transposed.is_some() {
                dnnl_dilated_deconvolution_forward_desc_init(&mut *desc, dnnl_forward_inference, dnnl_deconvolution_direct, &src_any, &weights_any, &bias_md, &dst_any, strides.as_ptr(), dilates.as_ptr(), pad_l.as_ptr(), pad_r.as_ptr())
            } else {
                dnnl_dilated_convolution_forward_desc_init(&mut *desc, dnnl_forward_inference, dnnl_convolution_direct, &src_any, &weights_any, &bias_md, &dst_any, strides.as_ptr(), dilates.as_ptr(), pad_l.as_ptr(), pad_r.as_ptr())
            }
        };
        check("dnnl_dilated_(de)convolution_forward_desc_init", status)?;
        let attr = Attr::with_post_ops(conv.residual.is_some(), conv.relu)?;
        let pd = PrimitiveDesc::operation(&*desc, &attr, &self.engine, None)?;
        if let Some(done) = self.winograd_convolution(conv, src_dims, dst_dims, &pd, values)? {
            return Ok(done);
        }
        let source = self.in_format(placed(values, conv.x)?, &pd.md(dnnl_query_src_md, 0)?)?;
        let plain_weights = init_md(&dims_of(&weight_dims), weight_tag)?;
        let weights = self.weights(&plain_weights, &pd.md(dnnl_query_weights_md, 0)?, &conv.weight)?;
        let bias = self.constant(&bias_md, &conv.bias)?;
        let dst_md = pd.md(dnnl_query_dst_md, 0)?;
        let dst = match conv.residual {
            // The sum post-op adds into the destination's contents: the residual operand itself
            // where nothing reads it later (and it is not the caller's input), else a copy.
            Some(r) => {
                let residual = placed(values, r)?;
                if r.0 != 0 && last_reader[r.0] == index && md_equal(&residual.md, &dst_md) {
                    residual.memory
                } else {
                    let memory = self.allocate(&dst_md)?;
                    self.reorder_step(residual, &dst_md, memory)?;
                    memory
                }
            }
            None => self.allocate(&dst_md)?,
        };
        self.summary.push(format!("{}{}: {}", if conv.transposed.is_some() { "deconvolution" } else { "convolution" }, if conv.residual.is_some() { " + sum" } else { "" }, pd.impl_info()));
        let args = vec![
            dnnl_exec_arg_t { arg: DNNL_ARG_SRC, memory: source.memory },
            dnnl_exec_arg_t { arg: DNNL_ARG_WEIGHTS, memory: weights },
            dnnl_exec_arg_t { arg: DNNL_ARG_BIAS, memory: bias },
            dnnl_exec_arg_t { arg: DNNL_ARG_DST, memory: dst },
        ];
        self.step(&pd, args)?;
        Ok(Placed { md: dst_md, memory: dst, rank: 4 })
    }

    /// `conv` as a Winograd layer (`winograd.rs`) where it is one that pays: 3×3, stride 1,
    /// padding 1, no groups, no residual sum, not on the caller's input, on a host with AVX2
    /// where oneDNN's own kernel (`direct`) keeps source and destination in `nChw8c`, and of a
    /// size [`Tile::for_layer`] takes. `None` leaves it to oneDNN.
    fn winograd_convolution(&mut self, conv: &ConvLayer, src_dims: [usize; 4], dst_dims: [usize; 4], direct: &PrimitiveDesc, values: &[Option<Placed>]) -> Result<Option<Placed>> {
        let window = &conv.window;
        let shaped = window.kernel == [3, 3] && window.stride == [1, 1] && window.dilation == [1, 1] && window.padding == [1; 4];
        if !self.winograd || !shaped || conv.transposed.is_some() || conv.groups != 1 || conv.residual.is_some() || conv.x.0 == 0 || !has_avx2_fma() {
            return Ok(None);
        }
        let [batch, in_channels, height, width] = src_dims;
        let geometry = Geometry { batch, in_channels, out_channels: dst_dims[1], height, width };
        let Some(tile) = Tile::for_layer(geometry) else { return Ok(None) };
        let (src_md, dst_md) = (init_md(&dims_of(&src_dims), dnnl_nChw8c)?, init_md(&dims_of(&dst_dims), dnnl_nChw8c)?);
        if !md_equal(&direct.md(dnnl_query_src_md, 0)?, &src_md) || !md_equal(&direct.md(dnnl_query_dst_md, 0)?, &dst_md) {
            return Ok(None);
        }
        let layer = WinogradConv::new(geometry, tile, &conv.weight, &conv.bias, conv.relu);
        let [source_len, destination_len] = layer.lens();
        let source = self.in_format(placed(values, conv.x)?, &src_md)?;
        if md_size(&src_md) != source_len * 4 || md_size(&dst_md) != destination_len * 4 {
            return Err(Error::Shape(format!("a Winograd layer's nChw8c buffers are padded ({} and {} bytes for {source_len} and {destination_len} values)", md_size(&src_md), md_size(&dst_md))));
        }
        let mut buffer = Aligned::zeroed(destination_len * 4);
        let destination = buffer.ptr();
        let memory = Memory::new(&dst_md, &self.engine, DNNL_MEMORY_NONE)?;
        memory.set_handle(destination)?;
        let raw = memory.0;
        self.storage.push(buffer);
        self.memories.push(memory);
        let source_buffer = data_handle(source.memory)?;
        self.summary.push(format!("convolution: {}", tile.name()));
        self.steps.push(Step::Winograd(WinogradStep::new(layer, source_buffer.cast_const().cast(), destination.cast())));
        Ok(Some(Placed { md: dst_md, memory: raw, rank: 4 }))
    }

    fn pooling(&mut self, source: Placed, dst_dims: [usize; 4], window: &Window, algorithm: dnnl_alg_kind_t) -> Result<Placed> {
        let dst_any = init_md(&dims_of(&dst_dims), dnnl_format_tag_any)?;
        let [strides, dilation, pad_l, pad_r] = geometry(window, [window.padding[2], window.padding[3]]);
        let kernel = dnnl_dims(&window.kernel);
        let mut desc = dnnl_pooling_v2_desc_t::zeroed_box();
        // SAFETY: initialised mds; the dims arrays hold the two spatial values first.
        check("dnnl_pooling_v2_forward_desc_init", unsafe {
            dnnl_pooling_v2_forward_desc_init(&mut *desc, dnnl_forward_inference, algorithm, &source.md, &dst_any, strides.as_ptr(), kernel.as_ptr(), dilation.as_ptr(), pad_l.as_ptr(), pad_r.as_ptr())
        })?;
        let attr = Attr::user_scratchpad()?;
        let pd = PrimitiveDesc::operation(&*desc, &attr, &self.engine, None)?;
        let dst_md = pd.md(dnnl_query_dst_md, 0)?;
        let dst = self.allocate(&dst_md)?;
        self.summary.push(format!("pooling: {}", pd.impl_info()));
        self.step(&pd, vec![dnnl_exec_arg_t { arg: DNNL_ARG_SRC, memory: source.memory }, dnnl_exec_arg_t { arg: DNNL_ARG_DST, memory: dst }])?;
        Ok(Placed { md: dst_md, memory: dst, rank: 4 })
    }

    /// The inner product primitive descriptor for a source in `src_md`, if oneDNN has one.
    fn inner_product_desc(&self, src_md: &dnnl_memory_desc_t, src_dims: [usize; 4], outputs: usize, relu: bool) -> Result<PrimitiveDesc> {
        let [n, c, h, w] = src_dims;
        let weights_any = init_md(&dims_of(&[outputs, c, h, w]), dnnl_format_tag_any)?;
        let bias_md = init_md(&[dim(outputs)], dnnl_x)?;
        let dst_md = init_md(&dims_of(&[n, outputs]), dnnl_nc)?;
        let mut desc = dnnl_inner_product_desc_t::zeroed_box();
        // SAFETY: initialised mds.
        check("dnnl_inner_product_forward_desc_init", unsafe {
            dnnl_inner_product_forward_desc_init(&mut *desc, dnnl_forward_inference, src_md, &weights_any, &bias_md, &dst_md)
        })?;
        let attr = Attr::with_post_ops(false, relu)?;
        PrimitiveDesc::operation(&*desc, &attr, &self.engine, None)
    }

    fn fully_connected(&mut self, source: Placed, src_dims: [usize; 4], outputs: usize, weight: &[f32], bias: &[f32], relu: bool) -> Result<Placed> {
        // A 4-D source in the producer's (blocked) format where oneDNN takes it, else plain.
        let (pd, source) = match self.inner_product_desc(&source.md, src_dims, outputs, relu) {
            Ok(pd) if source.rank == 4 => (pd, source),
            Ok(_) => return Err(Error::Shape("a fully-connected layer after another is not supported".into())),
            Err(_) => {
                let plain = init_md(&dims_of(&src_dims), dnnl_nchw)?;
                (self.inner_product_desc(&plain, src_dims, outputs, relu)?, self.in_format(source, &plain)?)
            }
        };
        let [_, c, h, w] = src_dims;
        let plain_weights = init_md(&dims_of(&[outputs, c, h, w]), dnnl_oihw)?;
        let weights = self.weights(&plain_weights, &pd.md(dnnl_query_weights_md, 0)?, weight)?;
        let bias = self.constant(&init_md(&[dim(outputs)], dnnl_x)?, bias)?;
        let dst_md = pd.md(dnnl_query_dst_md, 0)?;
        let dst = self.allocate(&dst_md)?;
        self.summary.push(format!("inner product: {}", pd.impl_info()));
        let args = vec![
            dnnl_exec_arg_t { arg: DNNL_ARG_SRC, memory: source.memory },
            dnnl_exec_arg_t { arg: DNNL_ARG_WEIGHTS, memory: weights },
            dnnl_exec_arg_t { arg: DNNL_ARG_BIAS, memory: bias },
            dnnl_exec_arg_t { arg: DNNL_ARG_DST, memory: dst },
        ];
        self.step(&pd, args)?;
        Ok(Placed { md: dst_md, memory: dst, rank: 2 })
    }
}

/// The calling thread's OpenMP thread count set to `threads` until dropped, then restored.
/// oneDNN's jit primitives fix their thread count when created (`omp_get_max_threads()` then),
/// so planning and running both hold one (measured: a plan made at 2 threads ran on 2 even with
/// 1 set at run time, ResNet-50 48 ms against 92 ms made at 1).
struct OmpThreads(c_int);

impl OmpThreads {
    fn set(threads: usize) -> Self {
        // SAFETY: plain OpenMP calls; they set the calling thread's next parallel regions.
        let previous = unsafe { omp_get_max_threads() };
        // SAFETY: as above.
        unsafe { omp_set_num_threads(c_int::try_from(threads.max(1)).unwrap_or(1)) };
        Self(previous)
    }
}

impl Drop for OmpThreads {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { omp_set_num_threads(self.0) };
    }
}

/// Whether the transforms of `winograd.rs` run as AVX2 code here (pulp's `V3`).
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn placed(values: &[Option<Placed>], v: ValueId) -> Result<Placed> {
    values.get(v.0).copied().flatten().ok_or_else(|| Error::Shape(format!("value {} is read before it is made", v.0)))
}

impl Network {
    /// Plans `builder`'s layers up to `output` as oneDNN primitives that run on `threads`
    /// OpenMP threads (1: the calling thread alone).
    pub(crate) fn plan(builder: NetworkBuilder, output: ValueId, threads: usize) -> Result<Self> {
        let dims = builder.dims.clone();
        let output_dims = builder.dims(output)?;
        let mut last_reader = vec![0usize; dims.len()];
        for (index, (layer, _)) in builder.layers.iter().enumerate() {
            for v in layer.reads() {
                last_reader[v.0] = index;
            }
        }
        last_reader[output.0] = usize::MAX;
        let _threads = OmpThreads::set(threads);
        let engine = Engine::new()?;
        let stream = Stream::new(&engine)?;
        let mut planner = Planner { winograd: builder.winograd, engine, stream, steps: Vec::new(), memories: Vec::new(), storage: Vec::new(), summary: Vec::new() };
        let input_md = init_md(&dims_of(&dims[0]), dnnl_nchw)?;
        let input = Memory::new(&input_md, &planner.engine, DNNL_MEMORY_NONE)?;
        let mut values: Vec<Option<Placed>> = vec![None; dims.len()];
        values[0] = Some(Placed { md: input_md, memory: input.0, rank: 4 });
        let layers = builder.layers.iter().take_while(|(_, made)| made.0 <= output.0);
        for (index, (layer, made)) in layers.enumerate() {
            let result = match layer {
                Layer::Conv(conv) => planner.convolution(index, *made, conv, &dims, &mut values, &last_reader),
                Layer::MaxPool { x, window } => planner.pooling(placed(&values, *x)?, dims[made.0], window, dnnl_pooling_max),
                Layer::GlobalAveragePool { x } => {
                    let [_, _, h, w] = dims[x.0];
                    let window = Window { kernel: [h, w], stride: [1, 1], dilation: [1, 1], padding: [0; 4] };
                    planner.pooling(placed(&values, *x)?, dims[made.0], &window, dnnl_pooling_avg_exclude_padding)
                }
                Layer::FullyConnected { x, weight, bias, relu } => {
                    planner.fully_connected(placed(&values, *x)?, dims[x.0], dims[made.0][1], weight, bias, *relu)
                }
            };
            values[made.0] = Some(result.map_err(|e| Error::Shape(format!("layer {index}: {e}")))?);
        }
        let result = placed(&values, output)?;
        let output_md = init_md(&dims_of(&output_dims[..result.rank]), plain_tag(result.rank))?;
        let output_memory = Memory::new(&output_md, &planner.engine, DNNL_MEMORY_NONE)?;
        planner.reorder_step(result, &output_md, output_memory.0)?;
        // One scratchpad for all steps, as large as the largest needs.
        let primitive_scratch = |s: &Step| if let Step::Primitive(p) = s { p.scratch } else { None };
        let scratch_bytes = planner.steps.iter().filter_map(primitive_scratch).map(|md| md_size(&md)).max().unwrap_or(0);
        if scratch_bytes > 0 {
            let mut shared = Aligned::zeroed(scratch_bytes);
            let base = shared.ptr();
            for step in &mut planner.steps {
                if let Step::Primitive(PrimitiveStep { scratch: Some(md), args, .. }) = step {
                    let memory = Memory::new(md, &planner.engine, DNNL_MEMORY_NONE)?;
                    memory.set_handle(base)?;
                    args.push(dnnl_exec_arg_t { arg: DNNL_ARG_SCRATCHPAD, memory: memory.0 });
                    planner.memories.push(memory);
                }
            }
            planner.storage.push(shared);
        }
        let Planner { engine, stream, steps, memories, storage, summary, .. } = planner;
        Ok(Self {
            threads: threads.max(1),
            input_len: dims[0].iter().product(),
            output_len: output_dims.iter().product(),
            output_dims,
            summary,
            winograd_scratch: (0..threads.max(1)).map(|_| Scratch::default()).collect(),
            steps,
            input,
            output: output_memory,
            _memories: memories,
            _storage: storage,
            stream,
            _engine: engine,
        })
    }

    /// The output's NCHW dims (`[n, k, 1, 1]` after a fully-connected layer).
    pub fn output_dims(&self) -> [usize; 4] {
        self.output_dims
    }

    /// The threads a run uses.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Each layer's implementation as oneDNN names it, e.g. `convolution: jit:avx2`.
    pub fn describe(&self) -> &[String] {
        &self.summary
    }

    /// Runs the network on `input` (NCHW, the builder's batch) into `output` (NCHW, or `[n, k]`
    /// after a fully-connected layer).
    pub fn run(&mut self, input: &[f32], output: &mut [f32]) -> Result<()> {
        crate::Conv2dShape::check_len("network input", input.len(), self.input_len)?;
        crate::Conv2dShape::check_len("network output", output.len(), self.output_len)?;
        // The input is only ever read (a residual sum never writes into it), so the
        // const-to-mut cast is sound.
        self.input.set_handle(input.as_ptr().cast_mut().cast())?;
        self.output.set_handle(output.as_mut_ptr().cast())?;
        let threads = OmpThreads::set(self.threads);
        let scratch = &mut self.winograd_scratch;
        let stream = &self.stream;
        let ran = self
            .steps
            .iter_mut()
            .try_for_each(|step| match step {
                Step::Primitive(p) => p.prim.execute(stream, &p.args),
                // The primitives before it have finished writing its source.
                Step::Winograd(w) => stream.wait().and_then(|()| w.run(scratch)),
            })
            .and_then(|()| self.stream.wait());
        // The stream is idle (or the run failed before queueing more), so the borrows may end.
        let _ = self.stream.wait();
        drop(threads);
        self.input.set_handle(ptr::null_mut())?;
        self.output.set_handle(ptr::null_mut())?;
        ran
    }
}
