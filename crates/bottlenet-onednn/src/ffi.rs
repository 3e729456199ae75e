//! Hand-declared FFI for the subset of the oneDNN 2.x C API this crate uses
//! (Debian 12 `libdnnl-dev` 2.6.3, headers under `/usr/include/oneapi/dnnl/`).
//!
//! Every constant and struct size here was checked against the headers and
//! with `tools/dnnl_abi.c`; the `abi` test re-runs that program (when `gcc`
//! and the headers exist) and compares.
//!
//! `dnnl_memory_desc_t` (696 bytes) and `dnnl_convolution_desc_t` (5976
//! bytes) are passed by pointer but allocated by the caller, so they are
//! declared as opaque byte arrays of the exact size and 8-byte alignment.
//! Nothing here reads their fields; comparisons go through
//! `dnnl_memory_desc_equal`.
#![allow(unsafe_code, non_camel_case_types, non_upper_case_globals, dead_code)]

use std::ffi::{c_char, c_int, c_void};

/// `dnnl_status_t`.
pub type dnnl_status_t = c_int;
/// `dnnl_data_type_t`.
pub type dnnl_data_type_t = c_int;
/// `dnnl_format_tag_t`.
pub type dnnl_format_tag_t = c_int;
/// `dnnl_prop_kind_t`.
pub type dnnl_prop_kind_t = c_int;
/// `dnnl_alg_kind_t`.
pub type dnnl_alg_kind_t = c_int;
/// `dnnl_engine_kind_t`.
pub type dnnl_engine_kind_t = c_int;
/// `dnnl_query_t`.
pub type dnnl_query_t = c_int;
/// `dnnl_scratchpad_mode_t`.
pub type dnnl_scratchpad_mode_t = c_int;
/// `dnnl_dim_t`.
pub type dnnl_dim_t = i64;
/// `dnnl_dims_t` (`DNNL_MAX_NDIMS` = 12).
pub type dnnl_dims_t = [dnnl_dim_t; DNNL_MAX_NDIMS];

pub const DNNL_MAX_NDIMS: usize = 12;

// dnnl_status_t
pub const dnnl_success: dnnl_status_t = 0;
// dnnl_data_type_t
pub const dnnl_f32: dnnl_data_type_t = 3;
// dnnl_format_tag_t
pub const dnnl_format_tag_any: dnnl_format_tag_t = 1;
pub const dnnl_x: dnnl_format_tag_t = 2; // = dnnl_a
pub const dnnl_nchw: dnnl_format_tag_t = 5; // = dnnl_abcd
pub const dnnl_oihw: dnnl_format_tag_t = 5; // = dnnl_abcd
pub const dnnl_goihw: dnnl_format_tag_t = 7; // = dnnl_abcde
pub const dnnl_nc: dnnl_format_tag_t = 3; // = dnnl_ab
pub const dnnl_iohw: dnnl_format_tag_t = 24; // = dnnl_bacd
pub const dnnl_giohw: dnnl_format_tag_t = 18; // = dnnl_acbde
pub const dnnl_nChw8c: dnnl_format_tag_t = 93; // = dnnl_aBcd8b (oneDNN 2.6's dnnl_types.h)
// dnnl_prop_kind_t
pub const dnnl_forward_training: dnnl_prop_kind_t = 64;
pub const dnnl_forward_inference: dnnl_prop_kind_t = 96;
pub const dnnl_backward_data: dnnl_prop_kind_t = 160;
pub const dnnl_backward_weights: dnnl_prop_kind_t = 192;
// dnnl_alg_kind_t
pub const dnnl_convolution_direct: dnnl_alg_kind_t = 1;
pub const dnnl_convolution_winograd: dnnl_alg_kind_t = 2;
pub const dnnl_convolution_auto: dnnl_alg_kind_t = 3;
pub const dnnl_deconvolution_direct: dnnl_alg_kind_t = 10;
pub const dnnl_eltwise_relu: dnnl_alg_kind_t = 31;
pub const dnnl_pooling_max: dnnl_alg_kind_t = 511;
pub const dnnl_pooling_avg_exclude_padding: dnnl_alg_kind_t = 1023;
// dnnl_engine_kind_t
pub const dnnl_cpu: dnnl_engine_kind_t = 1;
// dnnl_stream_flags_t
pub const dnnl_stream_default_flags: u32 = 1;
// dnnl_scratchpad_mode_t
pub const dnnl_scratchpad_mode_library: dnnl_scratchpad_mode_t = 0;
pub const dnnl_scratchpad_mode_user: dnnl_scratchpad_mode_t = 1;
// dnnl_query_t
pub const dnnl_query_impl_info_str: dnnl_query_t = 8;
pub const dnnl_query_src_md: dnnl_query_t = 129;
pub const dnnl_query_diff_src_md: dnnl_query_t = 130;
pub const dnnl_query_weights_md: dnnl_query_t = 131;
pub const dnnl_query_diff_weights_md: dnnl_query_t = 132;
pub const dnnl_query_dst_md: dnnl_query_t = 133;
pub const dnnl_query_diff_dst_md: dnnl_query_t = 134;
pub const dnnl_query_scratchpad_md: dnnl_query_t = 136;
// DNNL_ARG_*
pub const DNNL_ARG_SRC: c_int = 1;
pub const DNNL_ARG_FROM: c_int = 1;
pub const DNNL_ARG_DST: c_int = 17;
pub const DNNL_ARG_TO: c_int = 17;
pub const DNNL_ARG_WEIGHTS: c_int = 33;
pub const DNNL_ARG_BIAS: c_int = 41;
pub const DNNL_ARG_SCRATCHPAD: c_int = 80;
pub const DNNL_ARG_DIFF_SRC: c_int = 129;
pub const DNNL_ARG_DIFF_DST: c_int = 145;
pub const DNNL_ARG_DIFF_WEIGHTS: c_int = 161;
pub const DNNL_ARG_DIFF_BIAS: c_int = 169;
// dnnl_memory_create handles
pub const DNNL_MEMORY_NONE: *mut c_void = std::ptr::null_mut();
pub const DNNL_MEMORY_ALLOCATE: *mut c_void = usize::MAX as *mut c_void;

pub const MEMORY_DESC_SIZE: usize = 696;
/// Also the size of `dnnl_deconvolution_desc_t`, a typedef of it.
pub const CONVOLUTION_DESC_SIZE: usize = 5976;
pub const POOLING_V2_DESC_SIZE: usize = 3288;
pub const INNER_PRODUCT_DESC_SIZE: usize = 5584;

/// `dnnl_memory_desc_t`: 696 bytes, 8-byte aligned (opaque here).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct dnnl_memory_desc_t {
    bytes: [u8; MEMORY_DESC_SIZE],
}

impl dnnl_memory_desc_t {
    /// An all-zero descriptor (what oneDNN calls a zero md), to be filled by
    /// an init function.
    pub const fn zeroed() -> Self {
        Self { bytes: [0; MEMORY_DESC_SIZE] }
    }
}

impl std::fmt::Debug for dnnl_memory_desc_t {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dnnl_memory_desc_t { .. }")
    }
}

/// `dnnl_convolution_desc_t`: 5976 bytes, 8-byte aligned (opaque here).
#[repr(C, align(8))]
pub struct dnnl_convolution_desc_t {
    bytes: [u8; CONVOLUTION_DESC_SIZE],
}

impl dnnl_convolution_desc_t {
    /// An all-zero descriptor, to be filled by an init function.
    pub fn zeroed_box() -> Box<Self> {
        Box::new(Self { bytes: [0; CONVOLUTION_DESC_SIZE] })
    }
}

impl std::fmt::Debug for dnnl_convolution_desc_t {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dnnl_convolution_desc_t { .. }")
    }
}

/// An operation descriptor of `N` bytes, 8-byte aligned (opaque here): `dnnl_pooling_v2_desc_t`
/// ([`POOLING_V2_DESC_SIZE`]) and `dnnl_inner_product_desc_t` ([`INNER_PRODUCT_DESC_SIZE`]),
/// allocated by the caller and filled by an init function.
#[repr(C, align(8))]
pub struct OpDesc<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> OpDesc<N> {
    /// An all-zero descriptor, to be filled by an init function.
    pub fn zeroed_box() -> Box<Self> {
        Box::new(Self { bytes: [0; N] })
    }
}

impl<const N: usize> std::fmt::Debug for OpDesc<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpDesc<{N}> {{ .. }}")
    }
}

pub type dnnl_pooling_v2_desc_t = OpDesc<POOLING_V2_DESC_SIZE>;
pub type dnnl_inner_product_desc_t = OpDesc<INNER_PRODUCT_DESC_SIZE>;

/// Opaque handle targets.
#[repr(C)]
pub struct dnnl_engine {
    _private: [u8; 0],
}
#[repr(C)]
pub struct dnnl_stream {
    _private: [u8; 0],
}
#[repr(C)]
pub struct dnnl_memory {
    _private: [u8; 0],
}
#[repr(C)]
pub struct dnnl_primitive_desc {
    _private: [u8; 0],
}
#[repr(C)]
pub struct dnnl_primitive {
    _private: [u8; 0],
}
#[repr(C)]
pub struct dnnl_primitive_attr {
    _private: [u8; 0],
}

pub type dnnl_engine_t = *mut dnnl_engine;
pub type dnnl_stream_t = *mut dnnl_stream;
pub type dnnl_memory_t = *mut dnnl_memory;
pub type dnnl_primitive_desc_t = *mut dnnl_primitive_desc;
pub type const_dnnl_primitive_desc_t = *const dnnl_primitive_desc;
pub type dnnl_primitive_t = *mut dnnl_primitive;
pub type const_dnnl_primitive_t = *const dnnl_primitive;
pub type dnnl_primitive_attr_t = *mut dnnl_primitive_attr;
#[repr(C)]
pub struct dnnl_post_ops {
    _private: [u8; 0],
}
pub type dnnl_post_ops_t = *mut dnnl_post_ops;
pub type const_dnnl_post_ops_t = *const dnnl_post_ops;
pub type const_dnnl_primitive_attr_t = *const dnnl_primitive_attr;
pub type const_dnnl_op_desc_t = *const c_void;

/// `dnnl_exec_arg_t`: 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct dnnl_exec_arg_t {
    pub arg: c_int,
    pub memory: dnnl_memory_t,
}

#[cfg(onednn_linked)]
unsafe extern "C" {
    pub fn dnnl_engine_create(
        engine: *mut dnnl_engine_t,
        kind: dnnl_engine_kind_t,
        index: usize,
    ) -> dnnl_status_t;
    pub fn dnnl_engine_destroy(engine: dnnl_engine_t) -> dnnl_status_t;

    pub fn dnnl_stream_create(
        stream: *mut dnnl_stream_t,
        engine: dnnl_engine_t,
        flags: u32,
    ) -> dnnl_status_t;
    pub fn dnnl_stream_wait(stream: dnnl_stream_t) -> dnnl_status_t;
    pub fn dnnl_stream_destroy(stream: dnnl_stream_t) -> dnnl_status_t;

    pub fn dnnl_memory_desc_init_by_tag(
        memory_desc: *mut dnnl_memory_desc_t,
        ndims: c_int,
        dims: *const dnnl_dim_t,
        data_type: dnnl_data_type_t,
        tag: dnnl_format_tag_t,
    ) -> dnnl_status_t;
    pub fn dnnl_memory_desc_equal(
        lhs: *const dnnl_memory_desc_t,
        rhs: *const dnnl_memory_desc_t,
    ) -> c_int;
    pub fn dnnl_memory_desc_get_size(memory_desc: *const dnnl_memory_desc_t) -> usize;

    pub fn dnnl_memory_create(
        memory: *mut dnnl_memory_t,
        memory_desc: *const dnnl_memory_desc_t,
        engine: dnnl_engine_t,
        handle: *mut c_void,
    ) -> dnnl_status_t;
    pub fn dnnl_memory_set_data_handle(memory: dnnl_memory_t, handle: *mut c_void)
    -> dnnl_status_t;
    pub fn dnnl_memory_get_data_handle(memory: *const dnnl_memory, handle: *mut *mut c_void) -> dnnl_status_t;
    pub fn dnnl_memory_destroy(memory: dnnl_memory_t) -> dnnl_status_t;

    pub fn dnnl_dilated_convolution_forward_desc_init(
        conv_desc: *mut dnnl_convolution_desc_t,
        prop_kind: dnnl_prop_kind_t,
        alg_kind: dnnl_alg_kind_t,
        src_desc: *const dnnl_memory_desc_t,
        weights_desc: *const dnnl_memory_desc_t,
        bias_desc: *const dnnl_memory_desc_t,
        dst_desc: *const dnnl_memory_desc_t,
        strides: *const dnnl_dim_t,
        dilates: *const dnnl_dim_t,
        padding_l: *const dnnl_dim_t,
        padding_r: *const dnnl_dim_t,
    ) -> dnnl_status_t;
    pub fn dnnl_dilated_convolution_backward_data_desc_init(
        conv_desc: *mut dnnl_convolution_desc_t,
        alg_kind: dnnl_alg_kind_t,
        diff_src_desc: *const dnnl_memory_desc_t,
        weights_desc: *const dnnl_memory_desc_t,
        diff_dst_desc: *const dnnl_memory_desc_t,
        strides: *const dnnl_dim_t,
        dilates: *const dnnl_dim_t,
        padding_l: *const dnnl_dim_t,
        padding_r: *const dnnl_dim_t,
    ) -> dnnl_status_t;
    pub fn dnnl_dilated_convolution_backward_weights_desc_init(
        conv_desc: *mut dnnl_convolution_desc_t,
        alg_kind: dnnl_alg_kind_t,
        src_desc: *const dnnl_memory_desc_t,
        diff_weights_desc: *const dnnl_memory_desc_t,
        diff_bias_desc: *const dnnl_memory_desc_t,
        diff_dst_desc: *const dnnl_memory_desc_t,
        strides: *const dnnl_dim_t,
        dilates: *const dnnl_dim_t,
        padding_l: *const dnnl_dim_t,
        padding_r: *const dnnl_dim_t,
    ) -> dnnl_status_t;

    pub fn dnnl_dilated_deconvolution_forward_desc_init(
        deconv_desc: *mut dnnl_convolution_desc_t,
        prop_kind: dnnl_prop_kind_t,
        alg_kind: dnnl_alg_kind_t,
        src_desc: *const dnnl_memory_desc_t,
        weights_desc: *const dnnl_memory_desc_t,
        bias_desc: *const dnnl_memory_desc_t,
        dst_desc: *const dnnl_memory_desc_t,
        strides: *const dnnl_dim_t,
        dilates: *const dnnl_dim_t,
        padding_l: *const dnnl_dim_t,
        padding_r: *const dnnl_dim_t,
    ) -> dnnl_status_t;
    pub fn dnnl_pooling_v2_forward_desc_init(
        pool_desc: *mut dnnl_pooling_v2_desc_t,
        prop_kind: dnnl_prop_kind_t,
        alg_kind: dnnl_alg_kind_t,
        src_desc: *const dnnl_memory_desc_t,
        dst_desc: *const dnnl_memory_desc_t,
        strides: *const dnnl_dim_t,
        kernel: *const dnnl_dim_t,
        dilation: *const dnnl_dim_t,
        padding_l: *const dnnl_dim_t,
        padding_r: *const dnnl_dim_t,
    ) -> dnnl_status_t;
    pub fn dnnl_inner_product_forward_desc_init(
        ip_desc: *mut dnnl_inner_product_desc_t,
        prop_kind: dnnl_prop_kind_t,
        src_desc: *const dnnl_memory_desc_t,
        weights_desc: *const dnnl_memory_desc_t,
        bias_desc: *const dnnl_memory_desc_t,
        dst_desc: *const dnnl_memory_desc_t,
    ) -> dnnl_status_t;

    pub fn dnnl_post_ops_create(post_ops: *mut dnnl_post_ops_t) -> dnnl_status_t;
    pub fn dnnl_post_ops_destroy(post_ops: dnnl_post_ops_t) -> dnnl_status_t;
    pub fn dnnl_post_ops_append_sum(post_ops: dnnl_post_ops_t, scale: f32) -> dnnl_status_t;
    pub fn dnnl_post_ops_append_eltwise(
        post_ops: dnnl_post_ops_t,
        scale: f32,
        alg_kind: dnnl_alg_kind_t,
        alpha: f32,
        beta: f32,
    ) -> dnnl_status_t;
    pub fn dnnl_primitive_attr_set_post_ops(
        attr: dnnl_primitive_attr_t,
        post_ops: const_dnnl_post_ops_t,
    ) -> dnnl_status_t;

    pub fn dnnl_primitive_attr_create(attr: *mut dnnl_primitive_attr_t) -> dnnl_status_t;
    pub fn dnnl_primitive_attr_destroy(attr: dnnl_primitive_attr_t) -> dnnl_status_t;
    pub fn dnnl_primitive_attr_set_scratchpad_mode(
        attr: dnnl_primitive_attr_t,
        mode: dnnl_scratchpad_mode_t,
    ) -> dnnl_status_t;

    pub fn dnnl_primitive_desc_create(
        primitive_desc: *mut dnnl_primitive_desc_t,
        op_desc: const_dnnl_op_desc_t,
        attr: const_dnnl_primitive_attr_t,
        engine: dnnl_engine_t,
        hint_forward_primitive_desc: const_dnnl_primitive_desc_t,
    ) -> dnnl_status_t;
    pub fn dnnl_reorder_primitive_desc_create(
        reorder_primitive_desc: *mut dnnl_primitive_desc_t,
        src_desc: *const dnnl_memory_desc_t,
        src_engine: dnnl_engine_t,
        dst_desc: *const dnnl_memory_desc_t,
        dst_engine: dnnl_engine_t,
        attr: const_dnnl_primitive_attr_t,
    ) -> dnnl_status_t;
    pub fn dnnl_primitive_desc_query(
        primitive_desc: const_dnnl_primitive_desc_t,
        what: dnnl_query_t,
        index: c_int,
        result: *mut c_void,
    ) -> dnnl_status_t;
    pub fn dnnl_primitive_desc_query_md(
        primitive_desc: const_dnnl_primitive_desc_t,
        what: dnnl_query_t,
        index: c_int,
    ) -> *const dnnl_memory_desc_t;
    pub fn dnnl_primitive_desc_destroy(primitive_desc: dnnl_primitive_desc_t) -> dnnl_status_t;

    pub fn dnnl_primitive_create(
        primitive: *mut dnnl_primitive_t,
        primitive_desc: const_dnnl_primitive_desc_t,
    ) -> dnnl_status_t;
    pub fn dnnl_primitive_execute(
        primitive: const_dnnl_primitive_t,
        stream: dnnl_stream_t,
        nargs: c_int,
        args: *const dnnl_exec_arg_t,
    ) -> dnnl_status_t;
    pub fn dnnl_primitive_destroy(primitive: dnnl_primitive_t) -> dnnl_status_t;
    /// Row-major `C = alpha·op(A)·op(B) + beta·C` (`transa`/`transb`: `b'N'` or `b'T'`).
    pub fn dnnl_sgemm(
        transa: c_char,
        transb: c_char,
        m: dnnl_dim_t,
        n: dnnl_dim_t,
        k: dnnl_dim_t,
        alpha: f32,
        a: *const f32,
        lda: dnnl_dim_t,
        b: *const f32,
        ldb: dnnl_dim_t,
        beta: f32,
        c: *mut f32,
        ldc: dnnl_dim_t,
    ) -> dnnl_status_t;
}

// OpenMP, oneDNN's thread runtime in Debian's build (`DNNL_CPU_RUNTIME` = OMP): the number of
// threads the calling thread's next parallel regions use.
#[cfg(onednn_linked)]
unsafe extern "C" {
    pub fn omp_set_num_threads(threads: c_int);
    pub fn omp_get_max_threads() -> c_int;
    // Inside a parallel region: the calling thread's index in its team, and the team's size.
    pub fn omp_get_thread_num() -> c_int;
    pub fn omp_get_num_threads() -> c_int;
    /// libgomp's `#pragma omp parallel`: `body(data)` on every thread of a team of
    /// `num_threads` (0: the calling thread's setting), returning once all have returned.
    pub fn GOMP_parallel(body: extern "C" fn(*mut c_void), data: *mut c_void, num_threads: std::ffi::c_uint, flags: std::ffi::c_uint);
}

/// Result type of the `dnnl_query_impl_info_str` query.
pub type impl_info_str = *const c_char;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn struct_sizes() {
        assert_eq!(std::mem::size_of::<dnnl_memory_desc_t>(), 696);
        assert_eq!(std::mem::align_of::<dnnl_memory_desc_t>(), 8);
        assert_eq!(std::mem::size_of::<dnnl_convolution_desc_t>(), 5976);
        assert_eq!(std::mem::align_of::<dnnl_convolution_desc_t>(), 8);
        assert_eq!(std::mem::size_of::<dnnl_exec_arg_t>(), 16);
        assert_eq!(std::mem::size_of::<dnnl_pooling_v2_desc_t>(), 3288);
        assert_eq!(std::mem::size_of::<dnnl_inner_product_desc_t>(), 5584);
        assert_eq!(std::mem::align_of::<dnnl_exec_arg_t>(), 8);
    }

    /// Compiles and runs `tools/dnnl_abi.c` against the installed headers and
    /// compares every value with the declarations above. Skipped (with a
    /// note) where gcc or the headers are missing, unless `CI` is set.
    #[test]
    fn abi_matches_headers() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let src = format!("{dir}/tools/dnnl_abi.c");
        let exe = std::env::temp_dir().join(format!("bottlenet_dnnl_abi_{}", std::process::id()));
        let have_headers = std::path::Path::new("/usr/include/oneapi/dnnl/dnnl.h").exists();
        let built = have_headers
            && cfg!(onednn_linked)
            && std::process::Command::new("gcc")
                .args([src.as_str(), "-o"])
                .arg(&exe)
                .arg("-ldnnl")
                .status()
                .is_ok_and(|s| s.success());
        if !built {
            assert!(std::env::var_os("CI").is_none(), "CI: could not build tools/dnnl_abi.c");
            eprintln!("abi_matches_headers: gcc/oneDNN headers unavailable, skipped");
            return;
        }
        let out = std::process::Command::new(&exe).output().expect("run dnnl_abi");
        let _ = std::fs::remove_file(&exe);
        let text = String::from_utf8(out.stdout).expect("utf8");
        let mut values = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(name), Some(v)) = (parts.next(), parts.next())
                && let Ok(v) = v.parse::<i64>()
            {
                values.insert(name.to_string(), v);
            }
        }
        let sizes: Vec<&str> = text.lines().filter(|l| l.starts_with("sizeof/align")).collect();
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_memory_desc_t          696 8")), "{text}");
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_convolution_desc_t     5976 8")), "{text}");
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_exec_arg_t             16 8")), "{text}");
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_deconvolution_desc_t   5976 8")), "{text}");
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_pooling_v2_desc_t      3288 8")), "{text}");
        assert!(sizes.iter().any(|l| l.ends_with("dnnl_inner_product_desc_t   5584 8")), "{text}");
        let expect: &[(&str, i64)] = &[
            ("dnnl_success", dnnl_success.into()),
            ("dnnl_f32", dnnl_f32.into()),
            ("dnnl_format_tag_any", dnnl_format_tag_any.into()),
            ("dnnl_x", dnnl_x.into()),
            ("dnnl_nchw", dnnl_nchw.into()),
            ("dnnl_oihw", dnnl_oihw.into()),
            ("dnnl_goihw", dnnl_goihw.into()),
            ("dnnl_nc", dnnl_nc.into()),
            ("dnnl_iohw", dnnl_iohw.into()),
            ("dnnl_giohw", dnnl_giohw.into()),
            ("dnnl_nChw8c", dnnl_nChw8c.into()),
            ("dnnl_deconvolution_direct", dnnl_deconvolution_direct.into()),
            ("dnnl_eltwise_relu", dnnl_eltwise_relu.into()),
            ("dnnl_pooling_max", dnnl_pooling_max.into()),
            ("dnnl_pooling_avg_exclude_padding", dnnl_pooling_avg_exclude_padding.into()),
            ("dnnl_forward_training", dnnl_forward_training.into()),
            ("dnnl_forward_inference", dnnl_forward_inference.into()),
            ("dnnl_backward_data", dnnl_backward_data.into()),
            ("dnnl_backward_weights", dnnl_backward_weights.into()),
            ("dnnl_convolution_direct", dnnl_convolution_direct.into()),
            ("dnnl_convolution_auto", dnnl_convolution_auto.into()),
            ("dnnl_convolution_winograd", dnnl_convolution_winograd.into()),
            ("dnnl_cpu", dnnl_cpu.into()),
            ("dnnl_stream_default_flags", dnnl_stream_default_flags.into()),
            ("dnnl_scratchpad_mode_library", dnnl_scratchpad_mode_library.into()),
            ("dnnl_scratchpad_mode_user", dnnl_scratchpad_mode_user.into()),
            ("dnnl_query_impl_info_str", dnnl_query_impl_info_str.into()),
            ("dnnl_query_src_md", dnnl_query_src_md.into()),
            ("dnnl_query_diff_src_md", dnnl_query_diff_src_md.into()),
            ("dnnl_query_weights_md", dnnl_query_weights_md.into()),
            ("dnnl_query_diff_weights_md", dnnl_query_diff_weights_md.into()),
            ("dnnl_query_dst_md", dnnl_query_dst_md.into()),
            ("dnnl_query_diff_dst_md", dnnl_query_diff_dst_md.into()),
            ("dnnl_query_scratchpad_md", dnnl_query_scratchpad_md.into()),
            ("DNNL_ARG_SRC", DNNL_ARG_SRC.into()),
            ("DNNL_ARG_DST", DNNL_ARG_DST.into()),
            ("DNNL_ARG_WEIGHTS", DNNL_ARG_WEIGHTS.into()),
            ("DNNL_ARG_BIAS", DNNL_ARG_BIAS.into()),
            ("DNNL_ARG_FROM", DNNL_ARG_FROM.into()),
            ("DNNL_ARG_TO", DNNL_ARG_TO.into()),
            ("DNNL_ARG_SCRATCHPAD", DNNL_ARG_SCRATCHPAD.into()),
            ("DNNL_ARG_DIFF_SRC", DNNL_ARG_DIFF_SRC.into()),
            ("DNNL_ARG_DIFF_DST", DNNL_ARG_DIFF_DST.into()),
            ("DNNL_ARG_DIFF_WEIGHTS", DNNL_ARG_DIFF_WEIGHTS.into()),
            ("DNNL_ARG_DIFF_BIAS", DNNL_ARG_DIFF_BIAS.into()),
            ("DNNL_MAX_NDIMS", DNNL_MAX_NDIMS as i64),
        ];
        for (name, ours) in expect {
            assert_eq!(values.get(*name), Some(ours), "{name} differs from the header");
        }
    }
}
