//! The C API of Debian's XNNPACK (`/usr/include/xnnpack.h`, snapshot 2022-02-16) and pthreadpool,
//! declared for the operators [`crate::Network`] uses. Nothing here is called outside `network.rs`,
//! which upholds the one invariant XNNPACK asks for: every pointer given at setup stays valid,
//! and unmoved, until the operator is set up again or deleted.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// `xnn_operator_t`.
pub(crate) type Operator = *mut c_void;
/// `pthreadpool_t`; null runs every operator on the calling thread.
pub(crate) type ThreadPool = *mut c_void;
/// `enum xnn_status`: 0 is success.
pub(crate) type Status = i32;

/// `XNN_FLAG_TRANSPOSE_WEIGHTS`: a fully-connected kernel laid out `[inputs, outputs]`.
pub(crate) const FLAG_TRANSPOSE_WEIGHTS: u32 = 0x1;

#[link(name = "XNNPACK")]
unsafe extern "C" {
    pub(crate) fn xnn_initialize(allocator: *const c_void) -> Status;
    pub(crate) fn xnn_delete_operator(op: Operator) -> Status;
    pub(crate) fn xnn_run_operator(op: Operator, pool: ThreadPool) -> Status;

    pub(crate) fn xnn_create_convolution2d_nhwc_f32(
        pad_top: u32, pad_right: u32, pad_bottom: u32, pad_left: u32, kernel_h: u32, kernel_w: u32,
        stride_h: u32, stride_w: u32, dilation_h: u32, dilation_w: u32, groups: u32,
        group_in: usize, group_out: usize, in_stride: usize, out_stride: usize,
        kernel: *const f32, bias: *const f32, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> Status;
    pub(crate) fn xnn_setup_convolution2d_nhwc_f32(op: Operator, batch: usize, h: usize, w: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> Status;

    pub(crate) fn xnn_create_deconvolution2d_nhwc_f32(
        crop_top: u32, crop_right: u32, crop_bottom: u32, crop_left: u32, kernel_h: u32, kernel_w: u32,
        stride_h: u32, stride_w: u32, dilation_h: u32, dilation_w: u32, groups: u32,
        group_in: usize, group_out: usize, in_stride: usize, out_stride: usize,
        kernel: *const f32, bias: *const f32, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> Status;
    pub(crate) fn xnn_setup_deconvolution2d_nhwc_f32(
        op: Operator, batch: usize, h: usize, w: usize, adjustment_h: u32, adjustment_w: u32,
        input: *const f32, output: *mut f32, pool: ThreadPool,
    ) -> Status;

    pub(crate) fn xnn_create_max_pooling2d_nhwc_f32(
        pad_top: u32, pad_right: u32, pad_bottom: u32, pad_left: u32, pool_h: u32, pool_w: u32,
        stride_h: u32, stride_w: u32, dilation_h: u32, dilation_w: u32, channels: usize,
        in_stride: usize, out_stride: usize, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> Status;
    pub(crate) fn xnn_setup_max_pooling2d_nhwc_f32(op: Operator, batch: usize, h: usize, w: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> Status;

    pub(crate) fn xnn_create_add_nd_f32(out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> Status;
    pub(crate) fn xnn_setup_add_nd_f32(
        op: Operator, dims_a: usize, shape_a: *const usize, dims_b: usize, shape_b: *const usize,
        a: *const f32, b: *const f32, out: *mut f32, pool: ThreadPool,
    ) -> Status;

    pub(crate) fn xnn_create_clamp_nc_f32(channels: usize, in_stride: usize, out_stride: usize, out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> Status;
    pub(crate) fn xnn_setup_clamp_nc_f32(op: Operator, batch: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> Status;

    pub(crate) fn xnn_create_global_average_pooling_nwc_f32(channels: usize, in_stride: usize, out_stride: usize, out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> Status;
    pub(crate) fn xnn_setup_global_average_pooling_nwc_f32(op: Operator, batch: usize, width: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> Status;

    pub(crate) fn xnn_create_fully_connected_nc_f32(
        inputs: usize, outputs: usize, in_stride: usize, out_stride: usize,
        kernel: *const f32, bias: *const f32, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> Status;
    pub(crate) fn xnn_setup_fully_connected_nc_f32(op: Operator, batch: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> Status;
}

#[link(name = "pthreadpool")]
unsafe extern "C" {
    pub(crate) fn pthreadpool_create(threads: usize) -> ThreadPool;
}
