//! [`Conv2dKernels`]: the three convolution passes of one shape on the handles of
//! `handles.rs`.

use super::{Algorithm, Format, check_backward_data, check_backward_weights, check_forward};
use crate::ffi::*;
use crate::shape::Conv2dShape;
use crate::Result;
use std::ptr;
use super::handles::*;

/// The plain memory descriptors and geometry of one shape.
#[derive(Debug)]
struct Descs {
    src: dnnl_memory_desc_t,
    weights: dnnl_memory_desc_t,
    bias: dnnl_memory_desc_t,
    dst: dnnl_memory_desc_t,
    strides: dnnl_dims_t,
    dilates: dnnl_dims_t,
    pad_l: dnnl_dims_t,
    pad_r: dnnl_dims_t,
}

/// Forward, backward-data and backward-weights convolution primitives
/// for one [`Conv2dShape`], on plain row-major `f32` buffers.
///
/// Created once per shape and reused: the primitives (one per bias
/// variant, built on first use), the reorders between the plain buffers
/// and the formats the primitives chose, the internal buffers and the
/// scratchpads all live here. Each call overwrites its output buffers
/// (gradients are not accumulated).
pub struct Conv2dKernels {
    shape: Conv2dShape,
    format: Format,
    algorithm: Algorithm,
    // Field order is drop order: primitives and memories first, then
    // the attributes, then the stream, the engine last.
    forward: [Option<Exec>; 2],
    backward_data: Option<Exec>,
    backward_weights: [Option<Exec>; 2],
    descs: Descs,
    attr: Attr,
    stream: Stream,
    engine: Engine,
}

// SAFETY: the kernels exclusively own every oneDNN object they point at
// (engine, stream, primitives, memories) and hold no borrowed buffers
// between calls (user handles are reset to null after each call). The
// scratchpads are user-managed and owned here rather than the library's
// thread-local one, so the primitives do not depend on the creating
// thread. oneDNN CPU objects may be used from any thread as long as one
// is not used concurrently, which `&mut self` on every execution
// guarantees. Not `Sync`: nothing needs shared access.
unsafe impl Send for Conv2dKernels {}

impl std::fmt::Debug for Conv2dKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv2dKernels")
            .field("shape", &self.shape)
            .field("format", &self.format)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn dim(v: usize) -> i64 {
    // Shapes are validated so every count fits in i64.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn dims2(a: usize, b: usize) -> dnnl_dims_t {
    let mut d = [0; DNNL_MAX_NDIMS];
    d[0] = dim(a);
    d[1] = dim(b);
    d
}

impl Conv2dKernels {
    /// Kernels with the measured-best options ([`Format::Any`],
    /// [`Algorithm::Direct`]).
    pub fn new(shape: Conv2dShape) -> Result<Self> {
        Self::with_options(shape, Format::default(), Algorithm::default())
    }

    /// Kernels with an explicit format and algorithm choice.
    pub fn with_options(shape: Conv2dShape, format: Format, algorithm: Algorithm) -> Result<Self> {
        shape.validate()?;
        let s = &shape;
        let [oh, ow] = s.output_hw_unchecked();
        let (act_tag, w_tag_plain) = (dnnl_nchw, if s.groups == 1 { dnnl_oihw } else { dnnl_goihw });
        let w_dims: Vec<i64> = if s.groups == 1 {
            vec![dim(s.out_channels), dim(s.in_channels), dim(s.kernel[0]), dim(s.kernel[1])]
        } else {
            vec![
                dim(s.groups),
                dim(s.out_channels / s.groups),
                dim(s.in_channels / s.groups),
                dim(s.kernel[0]),
                dim(s.kernel[1]),
            ]
        };
        let src_dims = [dim(s.batch), dim(s.in_channels), dim(s.in_height), dim(s.in_width)];
        let dst_dims = [dim(s.batch), dim(s.out_channels), dim(oh), dim(ow)];
        let descs = Descs {
            src: init_md(&src_dims, act_tag)?,
            weights: init_md(&w_dims, w_tag_plain)?,
            bias: init_md(&[dim(s.out_channels)], dnnl_x)?,
            dst: init_md(&dst_dims, act_tag)?,
            strides: dims2(s.stride[0], s.stride[1]),
            // oneDNN counts dilation from 0 (0 = none); PyTorch from 1.
            dilates: dims2(s.dilation[0] - 1, s.dilation[1] - 1),
            pad_l: dims2(s.padding[0], s.padding[1]),
            pad_r: dims2(s.padding[2], s.padding[3]),
        };
        let engine = Engine::new()?;
        let stream = Stream::new(&engine)?;
        let attr = Attr::user_scratchpad()?;
        let kernels = Self {
            shape,
            format,
            algorithm,
            forward: [None, None],
            backward_data: None,
            backward_weights: [None, None],
            descs,
            attr,
            stream,
            engine,
        };
        // Fail early on a shape oneDNN refuses.
        kernels.forward_pd(kernels.candidates().0, false)?;
        Ok(kernels)
    }

    /// The shape these kernels were made for.
    pub fn shape(&self) -> &Conv2dShape {
        &self.shape
    }

    /// The oneDNN implementation behind each primitive built so far, and
    /// how many of its tensors are reordered, one line each.
    pub fn describe(&self) -> String {
        self.forward
            .iter()
            .chain(std::iter::once(&self.backward_data))
            .chain(&self.backward_weights)
            .flatten()
            .map(Exec::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn alg(&self) -> dnnl_alg_kind_t {
        match self.algorithm {
            Algorithm::Direct => dnnl_convolution_direct,
            Algorithm::Auto => dnnl_convolution_auto,
        }
    }

    /// The md handed to the op descriptor: the plain one, or `any`.
    fn op_md(format: Format, plain: &dnnl_memory_desc_t, dims: &[i64]) -> Result<dnnl_memory_desc_t> {
        match format {
            Format::Plain => Ok(*plain),
            Format::Any | Format::Tuned => init_md(dims, dnnl_format_tag_any),
        }
    }

    /// The concrete format to build, and for `Tuned` the one to time
    /// against it.
    fn candidates(&self) -> (Format, Option<Format>) {
        match self.format {
            Format::Any => (Format::Any, None),
            Format::Plain => (Format::Plain, None),
            Format::Tuned => (Format::Any, Some(Format::Plain)),
        }
    }

    /// Builds the exec for each candidate format; with several, times
    /// each with `run` and keeps the fastest.
    fn select(
        &self,
        build: impl Fn(Format) -> Result<Exec>,
        mut run: impl FnMut(&mut Exec, &Stream) -> Result<()>,
    ) -> Result<Exec> {
        let (first, second) = self.candidates();
        let first_exec = build(first)?;
        let Some(second) = second else { return Ok(first_exec) };
        let mut time = |exec: &mut Exec| -> Result<f64> {
            run(exec, &self.stream)?; // warm-up
            let mut t = f64::INFINITY;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                run(exec, &self.stream)?;
                t = t.min(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok(t)
        };
        let (mut a, mut b) = (first_exec, build(second)?);
        let (ta, tb) = (time(&mut a)?, time(&mut b)?);
        let note = format!("[tuned: {first:?} {} {ta:.3} ms vs {second:?} {} {tb:.3} ms]", a.impl_name, b.impl_name);
        let mut winner = if tb < ta { b } else { a };
        winner.impl_name = format!("{} {note}", winner.impl_name);
        Ok(winner)
    }

    fn op_mds(&self, format: Format) -> Result<[dnnl_memory_desc_t; 3]> {
        let s = &self.shape;
        let [oh, ow] = s.output_hw_unchecked();
        let w_dims: Vec<i64> = if s.groups == 1 {
            vec![dim(s.out_channels), dim(s.in_channels), dim(s.kernel[0]), dim(s.kernel[1])]
        } else {
            vec![
                dim(s.groups),
                dim(s.out_channels / s.groups),
                dim(s.in_channels / s.groups),
                dim(s.kernel[0]),
                dim(s.kernel[1]),
            ]
        };
        Ok([
            Self::op_md(format, &self.descs.src, &[dim(s.batch), dim(s.in_channels), dim(s.in_height), dim(s.in_width)])?,
            Self::op_md(format, &self.descs.weights, &w_dims)?,
            Self::op_md(format, &self.descs.dst, &[dim(s.batch), dim(s.out_channels), dim(oh), dim(ow)])?,
        ])
    }

    fn forward_pd(&self, format: Format, bias: bool) -> Result<PrimitiveDesc> {
        let [src, weights, dst] = self.op_mds(format)?;
        let d = &self.descs;
        let bias_md = if bias { ptr::from_ref(&d.bias) } else { ptr::null() };
        let mut op = dnnl_convolution_desc_t::zeroed_box();
        // SAFETY: `op` is a writable, correctly sized descriptor; all mds
        // are initialised; bias is an md or null (no bias); the dims
        // arrays hold DNNL_MAX_NDIMS entries.
        check("dnnl_dilated_convolution_forward_desc_init", unsafe {
            dnnl_dilated_convolution_forward_desc_init(
                &mut *op,
                dnnl_forward_training,
                self.alg(),
                &src,
                &weights,
                bias_md,
                &dst,
                d.strides.as_ptr(),
                d.dilates.as_ptr(),
                d.pad_l.as_ptr(),
                d.pad_r.as_ptr(),
            )
        })?;
        PrimitiveDesc::convolution(&op, &self.attr, &self.engine, None)
    }

    fn build_forward(&self, format: Format, bias: bool) -> Result<Exec> {
        let pd = self.forward_pd(format, bias)?;
        let d = &self.descs;
        let mut inputs: Vec<ArgSpec<'_>> = vec![
            (DNNL_ARG_SRC, dnnl_query_src_md, 0, &d.src),
            (DNNL_ARG_WEIGHTS, dnnl_query_weights_md, 0, &d.weights),
        ];
        if bias {
            inputs.push((DNNL_ARG_BIAS, dnnl_query_weights_md, 1, &d.bias));
        }
        let outputs = [(DNNL_ARG_DST, dnnl_query_dst_md, 0, &d.dst)];
        let name = if bias { "forward+bias" } else { "forward" };
        Exec::new(name, &pd, &inputs, &outputs, &self.attr, &self.engine)
    }

    fn build_backward_data(&self, format: Format) -> Result<Exec> {
        let [src, weights, dst] = self.op_mds(format)?;
        let d = &self.descs;
        let mut op = dnnl_convolution_desc_t::zeroed_box();
        // SAFETY: as in `forward_pd`.
        check("dnnl_dilated_convolution_backward_data_desc_init", unsafe {
            dnnl_dilated_convolution_backward_data_desc_init(
                &mut *op,
                self.alg(),
                &src,
                &weights,
                &dst,
                d.strides.as_ptr(),
                d.dilates.as_ptr(),
                d.pad_l.as_ptr(),
                d.pad_r.as_ptr(),
            )
        })?;
        let hint = self.forward_pd(format, false)?;
        let pd = PrimitiveDesc::convolution(&op, &self.attr, &self.engine, Some(&hint))?;
        let inputs = [
            (DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, 0, &d.dst),
            (DNNL_ARG_WEIGHTS, dnnl_query_weights_md, 0, &d.weights),
        ];
        let outputs = [(DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, 0, &d.src)];
        Exec::new("backward-data", &pd, &inputs, &outputs, &self.attr, &self.engine)
    }

    fn build_backward_weights(&self, format: Format, bias: bool) -> Result<Exec> {
        let [src, weights, dst] = self.op_mds(format)?;
        let d = &self.descs;
        let bias_md = if bias { ptr::from_ref(&d.bias) } else { ptr::null() };
        let mut op = dnnl_convolution_desc_t::zeroed_box();
        // SAFETY: as in `forward_pd`.
        check("dnnl_dilated_convolution_backward_weights_desc_init", unsafe {
            dnnl_dilated_convolution_backward_weights_desc_init(
                &mut *op,
                self.alg(),
                &src,
                &weights,
                bias_md,
                &dst,
                d.strides.as_ptr(),
                d.dilates.as_ptr(),
                d.pad_l.as_ptr(),
                d.pad_r.as_ptr(),
            )
        })?;
        let hint = self.forward_pd(format, false)?;
        let pd = PrimitiveDesc::convolution(&op, &self.attr, &self.engine, Some(&hint))?;
        let inputs = [
            (DNNL_ARG_SRC, dnnl_query_src_md, 0, &d.src),
            (DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, 0, &d.dst),
        ];
        let mut outputs: Vec<ArgSpec<'_>> =
            vec![(DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, 0, &d.weights)];
        if bias {
            outputs.push((DNNL_ARG_DIFF_BIAS, dnnl_query_diff_weights_md, 1, &d.bias));
        }
        let name = if bias { "backward-weights+bias" } else { "backward-weights" };
        Exec::new(name, &pd, &inputs, &outputs, &self.attr, &self.engine)
    }

    /// `output = conv(input, weight) + bias`.
    ///
    /// `input` NCHW, `weight` OIHW (`[out, in/groups, kh, kw]`), `bias`
    /// `[out]`, `output` NCHW; `output` is overwritten.
    pub fn forward(&mut self, input: &[f32], weight: &[f32], bias: Option<&[f32]>, output: &mut [f32]) -> Result<()> {
        check_forward(&self.shape, input.len(), weight.len(), bias.map(<[f32]>::len), output.len())?;
        let mut run = |exec: &mut Exec, stream: &Stream| match bias {
            Some(b) => exec.run(stream, &[input, weight, b], &mut [&mut *output]),
            None => exec.run(stream, &[input, weight], &mut [&mut *output]),
        };
        let i = usize::from(bias.is_some());
        let exec = match self.forward[i].take() {
            Some(exec) => exec,
            None => self.select(|f| self.build_forward(f, bias.is_some()), &mut run)?,
        };
        run(self.forward[i].insert(exec), &self.stream)
    }

    /// `grad_input = conv_transpose(grad_output, weight)`; overwrites
    /// `grad_input` (NCHW).
    pub fn backward_data(&mut self, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) -> Result<()> {
        check_backward_data(&self.shape, grad_output.len(), weight.len(), grad_input.len())?;
        let mut run =
            |exec: &mut Exec, stream: &Stream| exec.run(stream, &[grad_output, weight], &mut [&mut *grad_input]);
        let exec = match self.backward_data.take() {
            Some(exec) => exec,
            None => self.select(|f| self.build_backward_data(f), &mut run)?,
        };
        run(self.backward_data.insert(exec), &self.stream)
    }

    /// The weight (OIHW) and, if asked for, bias gradients; both are
    /// overwritten, not accumulated.
    pub fn backward_weights(
        &mut self,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
        grad_bias: Option<&mut [f32]>,
    ) -> Result<()> {
        check_backward_weights(
            &self.shape,
            input.len(),
            grad_output.len(),
            grad_weight.len(),
            grad_bias.as_deref().map(<[f32]>::len),
        )?;
        let has_bias = grad_bias.is_some();
        let mut grad_bias = grad_bias;
        let mut run = |exec: &mut Exec, stream: &Stream| match grad_bias.as_deref_mut() {
            Some(gb) => exec.run(stream, &[input, grad_output], &mut [&mut *grad_weight, gb]),
            None => exec.run(stream, &[input, grad_output], &mut [&mut *grad_weight]),
        };
        let i = usize::from(has_bias);
        let exec = match self.backward_weights[i].take() {
            Some(exec) => exec,
            None => self.select(|f| self.build_backward_weights(f, has_bias), &mut run)?,
        };
        run(self.backward_weights[i].insert(exec), &self.stream)
    }
}
