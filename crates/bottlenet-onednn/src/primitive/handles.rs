//! Owned oneDNN handles (engine, stream, attributes, memory, primitive descriptors and
//! primitives), each destroyed in `Drop`, and the staged execution of one primitive with its
//! reorders between plain buffers and the formats it chose.

use crate::ffi::*;
use crate::shape::Conv2dShape;
use crate::{Error, Result};
use std::ffi::{CStr, c_int, c_void};
use std::ptr;


pub(super) fn check(call: &'static str, status: dnnl_status_t) -> Result<()> {
    if status == dnnl_success { Ok(()) } else { Err(Error::Dnnl { call, status }) }
}

/// A CPU engine.
pub(super) struct Engine(pub(super) dnnl_engine_t);

impl Engine {
    pub(super) fn new() -> Result<Self> {
        let mut e = ptr::null_mut();
        // SAFETY: `e` is a valid out-pointer; index 0 is the only CPU engine.
        check("dnnl_engine_create", unsafe { dnnl_engine_create(&mut e, dnnl_cpu, 0) })?;
        Ok(Self(e))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_engine_create, destroyed once; every
        // object made on it is dropped before (field order of the owner).
        unsafe { dnnl_engine_destroy(self.0) };
    }
}

/// An in-order stream on an [`Engine`].
pub(super) struct Stream(pub(super) dnnl_stream_t);

impl Stream {
    pub(super) fn new(engine: &Engine) -> Result<Self> {
        let mut s = ptr::null_mut();
        // SAFETY: valid out-pointer and live engine.
        check("dnnl_stream_create", unsafe {
            dnnl_stream_create(&mut s, engine.0, dnnl_stream_default_flags)
        })?;
        Ok(Self(s))
    }

    pub(super) fn wait(&self) -> Result<()> {
        // SAFETY: live stream.
        check("dnnl_stream_wait", unsafe { dnnl_stream_wait(self.0) })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_stream_create, destroyed once, before its engine.
        unsafe { dnnl_stream_destroy(self.0) };
    }
}

/// Primitive attributes with a user-managed scratchpad.
///
/// The default (library) scratchpad mode in this build
/// (`DNNL_ENABLE_CONCURRENT_EXEC` off) shares one thread-local buffer
/// between all primitives, so a primitive must run on the thread that
/// created it. With a user scratchpad each [`Exec`] owns its buffer and
/// the kernels can be sent to another thread.
pub(super) struct Attr(pub(super) dnnl_primitive_attr_t);

impl Attr {
    pub(super) fn user_scratchpad() -> Result<Self> {
        let mut a = ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("dnnl_primitive_attr_create", unsafe { dnnl_primitive_attr_create(&mut a) })?;
        let attr = Self(a);
        // SAFETY: live attr; the mode value is from dnnl_types.h.
        check("dnnl_primitive_attr_set_scratchpad_mode", unsafe {
            dnnl_primitive_attr_set_scratchpad_mode(attr.0, dnnl_scratchpad_mode_user)
        })?;
        Ok(attr)
    }
}

impl Attr {
    /// A user scratchpad (as [`Attr::user_scratchpad`]) and the post-ops of a fused inference
    /// layer, in oneDNN's order: the sum into the destination's previous contents (a residual
    /// connection), then ReLU.
    pub(super) fn with_post_ops(sum: bool, relu: bool) -> Result<Self> {
        let attr = Self::user_scratchpad()?;
        if !(sum || relu) {
            return Ok(attr);
        }
        let mut p = ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("dnnl_post_ops_create", unsafe { dnnl_post_ops_create(&mut p) })?;
        let ops = PostOps(p);
        if sum {
            // SAFETY: live post-ops.
            check("dnnl_post_ops_append_sum", unsafe { dnnl_post_ops_append_sum(ops.0, 1.0) })?;
        }
        if relu {
            // SAFETY: live post-ops; relu with alpha 0 is max(x, 0).
            check("dnnl_post_ops_append_eltwise", unsafe { dnnl_post_ops_append_eltwise(ops.0, 1.0, dnnl_eltwise_relu, 0.0, 0.0) })?;
        }
        // SAFETY: live attr and post-ops; the attr keeps its own copy.
        check("dnnl_primitive_attr_set_post_ops", unsafe { dnnl_primitive_attr_set_post_ops(attr.0, ops.0) })?;
        Ok(attr)
    }
}

/// A post-ops sequence, only alive until an [`Attr`] copied it.
struct PostOps(dnnl_post_ops_t);

impl Drop for PostOps {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_post_ops_create, destroyed once.
        unsafe { dnnl_post_ops_destroy(self.0) };
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_primitive_attr_create, destroyed once.
        unsafe { dnnl_primitive_attr_destroy(self.0) };
    }
}

/// A memory object. Either library-allocated or a user handle set per call.
pub(super) struct Memory(pub(super) dnnl_memory_t);

impl Memory {
    pub(super) fn new(md: &dnnl_memory_desc_t, engine: &Engine, handle: *mut c_void) -> Result<Self> {
        let mut m = ptr::null_mut();
        // SAFETY: valid out-pointer, initialised md, live engine; the
        // handle is DNNL_MEMORY_NONE or DNNL_MEMORY_ALLOCATE.
        check("dnnl_memory_create", unsafe { dnnl_memory_create(&mut m, md, engine.0, handle) })?;
        Ok(Self(m))
    }

    /// Points the memory at `ptr`; the caller keeps the buffer alive and
    /// unaliased for as long as a primitive may use it.
    pub(super) fn set_handle(&self, ptr: *mut c_void) -> Result<()> {
        // SAFETY: live memory object. Storing a pointer dereferences
        // nothing; plain formats have no padding to zero, so nothing is
        // written here.
        check("dnnl_memory_set_data_handle", unsafe { dnnl_memory_set_data_handle(self.0, ptr) })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_memory_create, destroyed once, before its engine.
        unsafe { dnnl_memory_destroy(self.0) };
    }
}

/// A primitive descriptor.
pub(super) struct PrimitiveDesc(pub(super) dnnl_primitive_desc_t);

/// An operation descriptor that `dnnl_primitive_desc_create` takes.
///
/// # Safety
/// Implemented only for the `#[repr(C)]` descriptor types of `ffi`, each of the exact size of
/// its C type, so that a pointer to one is a valid `const_dnnl_op_desc_t` once an init function
/// filled it.
pub(super) unsafe trait OpDescriptor {}
// SAFETY: the sizes are checked against the headers (ffi's `abi` test).
unsafe impl OpDescriptor for dnnl_convolution_desc_t {}
// SAFETY: as above; `OpDesc<N>` is only instantiated at the pooling and inner product sizes.
unsafe impl<const N: usize> OpDescriptor for OpDesc<N> {}

impl PrimitiveDesc {
    pub(super) fn convolution(
        desc: &dnnl_convolution_desc_t,
        attr: &Attr,
        engine: &Engine,
        hint: Option<&PrimitiveDesc>,
    ) -> Result<Self> {
        Self::operation(desc, attr, engine, hint)
    }

    /// The primitive descriptor of a filled operation descriptor (convolution, deconvolution,
    /// pooling, inner product).
    pub(super) fn operation<D: OpDescriptor>(desc: &D, attr: &Attr, engine: &Engine, hint: Option<&PrimitiveDesc>) -> Result<Self> {
        let mut pd = ptr::null_mut();
        let hint = hint.map_or(ptr::null(), |h| h.0.cast_const());
        // SAFETY: `desc` was filled by a dnnl_*_desc_init call (the callers check its status);
        // attr, engine and hint (or null) are live.
        check("dnnl_primitive_desc_create", unsafe {
            dnnl_primitive_desc_create(&mut pd, ptr::from_ref(desc).cast(), attr.0, engine.0, hint)
        })?;
        Ok(Self(pd))
    }

    pub(super) fn reorder(src: &dnnl_memory_desc_t, dst: &dnnl_memory_desc_t, attr: &Attr, engine: &Engine) -> Result<Self> {
        let mut pd = ptr::null_mut();
        // SAFETY: initialised mds, live attr and engine.
        check("dnnl_reorder_primitive_desc_create", unsafe {
            dnnl_reorder_primitive_desc_create(&mut pd, src, engine.0, dst, engine.0, attr.0)
        })?;
        Ok(Self(pd))
    }

    /// A copy of the memory descriptor for `what`/`index`.
    pub(super) fn md(&self, what: dnnl_query_t, index: c_int) -> Result<dnnl_memory_desc_t> {
        // SAFETY: live pd; the result is null or points at an md owned
        // by the pd, which we copy out before the pd can go away.
        let p = unsafe { dnnl_primitive_desc_query_md(self.0, what, index) };
        if p.is_null() {
            return Err(Error::Dnnl { call: "dnnl_primitive_desc_query_md", status: 2 });
        }
        // SAFETY: non-null, aligned, points at a full dnnl_memory_desc_t.
        Ok(unsafe { *p })
    }

    /// The implementation's name, e.g. `jit:avx512_core`.
    pub(super) fn impl_info(&self) -> String {
        let mut s: impl_info_str = ptr::null();
        // SAFETY: live pd; the query writes a `const char *` into `s`.
        let status = unsafe {
            dnnl_primitive_desc_query(self.0, dnnl_query_impl_info_str, 0, ptr::from_mut(&mut s).cast())
        };
        if status != dnnl_success || s.is_null() {
            return "?".into();
        }
        // SAFETY: a NUL-terminated string owned by the live pd.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}

impl Drop for PrimitiveDesc {
    fn drop(&mut self) {
        // SAFETY: created by a dnnl_*primitive_desc_create, destroyed once.
        unsafe { dnnl_primitive_desc_destroy(self.0) };
    }
}

/// A primitive.
pub(super) struct Primitive(pub(super) dnnl_primitive_t);

impl Primitive {
    pub(super) fn new(pd: &PrimitiveDesc) -> Result<Self> {
        let mut p = ptr::null_mut();
        // SAFETY: valid out-pointer, live pd.
        check("dnnl_primitive_create", unsafe { dnnl_primitive_create(&mut p, pd.0) })?;
        Ok(Self(p))
    }

    /// Executes on `stream`; every memory in `args` must be live and,
    /// for user memories, point at a buffer of the md's size.
    pub(super) fn execute(&self, stream: &Stream, args: &[dnnl_exec_arg_t]) -> Result<()> {
        let n = c_int::try_from(args.len()).map_err(|_| Error::Shape("too many arguments".into()))?;
        // SAFETY: live primitive and stream; `args` holds `n` entries of
        // live memory objects whose buffers the callers (Exec::run,
        // Staged) have checked and keep alive until the stream waits.
        check("dnnl_primitive_execute", unsafe { dnnl_primitive_execute(self.0, stream.0, n, args.as_ptr()) })
    }
}

impl Drop for Primitive {
    fn drop(&mut self) {
        // SAFETY: created by dnnl_primitive_create, destroyed once, before its engine.
        unsafe { dnnl_primitive_destroy(self.0) };
    }
}

pub(super) fn init_md(dims: &[i64], tag: dnnl_format_tag_t) -> Result<dnnl_memory_desc_t> {
    let mut md = dnnl_memory_desc_t::zeroed();
    let ndims = c_int::try_from(dims.len()).map_err(|_| Error::Shape("too many dims".into()))?;
    // SAFETY: `md` is a writable md; `dims` holds `ndims` (<= 5) entries.
    check("dnnl_memory_desc_init_by_tag", unsafe {
        dnnl_memory_desc_init_by_tag(&mut md, ndims, dims.as_ptr(), dnnl_f32, tag)
    })?;
    Ok(md)
}

/// The buffer behind `memory` (library-allocated, or the handle last set).
pub(super) fn data_handle(memory: dnnl_memory_t) -> Result<*mut c_void> {
    let mut handle = ptr::null_mut();
    // SAFETY: a live memory object and a valid out-pointer; nothing is dereferenced.
    check("dnnl_memory_get_data_handle", unsafe { dnnl_memory_get_data_handle(memory, &mut handle) })?;
    Ok(handle)
}

pub(super) fn md_equal(a: &dnnl_memory_desc_t, b: &dnnl_memory_desc_t) -> bool {
    // SAFETY: both are initialised mds.
    unsafe { dnnl_memory_desc_equal(a, b) != 0 }
}

pub(super) fn md_size(md: &dnnl_memory_desc_t) -> usize {
    // SAFETY: an initialised md.
    unsafe { dnnl_memory_desc_get_size(md) }
}

/// A library-allocated scratchpad for `pd`, if it needs one.
pub(super) fn scratchpad(pd: &PrimitiveDesc, engine: &Engine) -> Result<Option<Memory>> {
    let md = pd.md(dnnl_query_scratchpad_md, 0)?;
    if md_size(&md) == 0 {
        return Ok(None);
    }
    Memory::new(&md, engine, DNNL_MEMORY_ALLOCATE).map(Some)
}

/// A cached reorder primitive with its own scratchpad.
pub(super) struct Reorder {
    prim: Primitive,
    scratch: Option<Memory>,
}

impl Reorder {
    pub(super) fn new(src: &dnnl_memory_desc_t, dst: &dnnl_memory_desc_t, attr: &Attr, engine: &Engine) -> Result<Self> {
        let pd = PrimitiveDesc::reorder(src, dst, attr, engine)?;
        Ok(Self { prim: Primitive::new(&pd)?, scratch: scratchpad(&pd, engine)? })
    }

    pub(super) fn run(&self, stream: &Stream, from: &Memory, to: &Memory) -> Result<()> {
        let mut args = [
            dnnl_exec_arg_t { arg: DNNL_ARG_FROM, memory: from.0 },
            dnnl_exec_arg_t { arg: DNNL_ARG_TO, memory: to.0 },
            dnnl_exec_arg_t { arg: DNNL_ARG_SCRATCHPAD, memory: ptr::null_mut() },
        ];
        let n = match &self.scratch {
            Some(s) => {
                args[2].memory = s.0;
                3
            }
            None => 2,
        };
        self.prim.execute(stream, &args[..n])
    }
}

/// One tensor argument of a convolution: a memory on the caller's plain
/// buffer and, when the primitive chose another format, an internal
/// buffer in that format plus the reorder between them.
pub(super) struct Staged {
    len: usize,
    user: Memory,
    internal: Option<(Memory, Reorder)>,
}

impl Staged {
    pub(super) fn new(
        plain: &dnnl_memory_desc_t,
        chosen: &dnnl_memory_desc_t,
        is_input: bool,
        attr: &Attr,
        engine: &Engine,
    ) -> Result<Self> {
        let len = md_size(plain) / size_of::<f32>();
        let user = Memory::new(plain, engine, DNNL_MEMORY_NONE)?;
        let internal = if md_equal(plain, chosen) {
            None
        } else {
            let mem = Memory::new(chosen, engine, DNNL_MEMORY_ALLOCATE)?;
            let reorder = if is_input {
                Reorder::new(plain, chosen, attr, engine)?
            } else {
                Reorder::new(chosen, plain, attr, engine)?
            };
            Some((mem, reorder))
        };
        Ok(Self { len, user, internal })
    }

    /// The memory the convolution itself reads or writes.
    pub(super) fn conv_memory(&self) -> dnnl_memory_t {
        self.internal.as_ref().map_or(self.user.0, |(m, _)| m.0)
    }
}

/// One created convolution primitive with its staged arguments.
pub(super) struct Exec {
    name: &'static str,
    pub(super) impl_name: String,
    // Field order = drop order: the primitive first, then the memories.
    prim: Primitive,
    args: Vec<dnnl_exec_arg_t>,
    inputs: Vec<Staged>,
    outputs: Vec<Staged>,
    /// Kept alive for `args`, which points at it.
    _scratch: Option<Memory>,
    scratch_bytes: usize,
}

/// `(DNNL_ARG_*, query, index, plain md)` of one argument.
pub(super) type ArgSpec<'a> = (c_int, dnnl_query_t, c_int, &'a dnnl_memory_desc_t);

impl Exec {
    pub(super) fn new(
        name: &'static str,
        pd: &PrimitiveDesc,
        inputs: &[ArgSpec<'_>],
        outputs: &[ArgSpec<'_>],
        attr: &Attr,
        engine: &Engine,
    ) -> Result<Self> {
        let prim = Primitive::new(pd)?;
        let mut args = Vec::new();
        let mut stage = |specs: &[ArgSpec<'_>], is_input: bool| -> Result<Vec<Staged>> {
            let mut staged = Vec::new();
            for &(arg, query, index, plain) in specs {
                let chosen = pd.md(query, index)?;
                let s = Staged::new(plain, &chosen, is_input, attr, engine)?;
                args.push(dnnl_exec_arg_t { arg, memory: s.conv_memory() });
                staged.push(s);
            }
            Ok(staged)
        };
        let inputs = stage(inputs, true)?;
        let outputs = stage(outputs, false)?;
        let scratch = scratchpad(pd, engine)?;
        let scratch_bytes = md_size(&pd.md(dnnl_query_scratchpad_md, 0)?);
        if let Some(s) = &scratch {
            args.push(dnnl_exec_arg_t { arg: DNNL_ARG_SCRATCHPAD, memory: s.0 });
        }
        Ok(Self { name, impl_name: pd.impl_info(), prim, args, inputs, outputs, _scratch: scratch, scratch_bytes })
    }

    /// Reorders `inputs` in, runs the convolution, reorders into
    /// `outputs`, and waits for the stream.
    pub(super) fn run(&mut self, stream: &Stream, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) -> Result<()> {
        if inputs.len() != self.inputs.len() || outputs.len() != self.outputs.len() {
            return Err(Error::Shape(format!("{}: wrong number of buffers", self.name)));
        }
        for (s, buf) in self.inputs.iter().zip(inputs) {
            Conv2dShape::check_len(self.name, buf.len(), s.len)?;
        }
        for (s, buf) in self.outputs.iter().zip(outputs.iter()) {
            Conv2dShape::check_len(self.name, buf.len(), s.len)?;
        }
        // Inputs are only read through DNNL_ARG_SRC/WEIGHTS/BIAS/
        // DIFF_DST/FROM, never written, so the const-to-mut cast is sound.
        for (s, buf) in self.inputs.iter().zip(inputs) {
            s.user.set_handle(buf.as_ptr().cast_mut().cast())?;
            if let Some((mem, reorder)) = &s.internal {
                reorder.run(stream, &s.user, mem)?;
            }
        }
        for (s, buf) in self.outputs.iter().zip(outputs.iter_mut()) {
            s.user.set_handle(buf.as_mut_ptr().cast())?;
        }
        self.prim.execute(stream, &self.args)?;
        for s in &self.outputs {
            if let Some((mem, reorder)) = &s.internal {
                reorder.run(stream, mem, &s.user)?;
            }
        }
        // The borrows of `inputs`/`outputs` end when we return, so the
        // stream must be idle by then.
        stream.wait()?;
        for s in self.inputs.iter().chain(&self.outputs) {
            s.user.set_handle(ptr::null_mut())?;
        }
        Ok(())
    }

    pub(super) fn describe(&self) -> String {
        let reordered = self.inputs.iter().chain(&self.outputs).filter(|s| s.internal.is_some()).count();
        format!(
            "{}: {} ({} of {} tensors reordered, scratchpad {} B)",
            self.name,
            self.impl_name,
            reordered,
            self.inputs.len() + self.outputs.len(),
            self.scratch_bytes,
        )
    }
}

