/* Prints the oneDNN ABI facts that src/ffi.rs hand-declares. */
#include <stdio.h>
#include <stddef.h>
#include <dnnl.h>
#define V(x) printf("%-40s %lld\n", #x, (long long)(x))
int main(void) {
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_memory_desc_t", sizeof(dnnl_memory_desc_t), _Alignof(dnnl_memory_desc_t));
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_convolution_desc_t", sizeof(dnnl_convolution_desc_t), _Alignof(dnnl_convolution_desc_t));
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_exec_arg_t", sizeof(dnnl_exec_arg_t), _Alignof(dnnl_exec_arg_t));
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_deconvolution_desc_t", sizeof(dnnl_deconvolution_desc_t), _Alignof(dnnl_deconvolution_desc_t));
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_pooling_v2_desc_t", sizeof(dnnl_pooling_v2_desc_t), _Alignof(dnnl_pooling_v2_desc_t));
    printf("%-40s %zu %zu\n", "sizeof/align dnnl_inner_product_desc_t", sizeof(dnnl_inner_product_desc_t), _Alignof(dnnl_inner_product_desc_t));
    printf("%-40s %zu\n", "offsetof md.format_kind", offsetof(dnnl_memory_desc_t, format_kind));
    printf("%-40s %zu\n", "sizeof enum", sizeof(dnnl_format_tag_t));
    V(dnnl_success); V(dnnl_f32); V(dnnl_format_kind_any); V(dnnl_blocked);
    V(dnnl_format_tag_undef); V(dnnl_format_tag_any); V(dnnl_a); V(dnnl_x); V(dnnl_nchw); V(dnnl_oihw); V(dnnl_goihw); V(dnnl_nc); V(dnnl_iohw); V(dnnl_giohw); V(dnnl_nChw8c); V(dnnl_abcd); V(dnnl_abcde); V(dnnl_nhwc);
    V(dnnl_forward_training); V(dnnl_forward_inference); V(dnnl_backward_data); V(dnnl_backward_weights);
    V(dnnl_convolution_direct); V(dnnl_convolution_auto); V(dnnl_convolution_winograd);
    V(dnnl_deconvolution_direct); V(dnnl_eltwise_relu); V(dnnl_pooling_max); V(dnnl_pooling_avg_exclude_padding);
    V(dnnl_cpu); V(dnnl_stream_default_flags); V(dnnl_scratchpad_mode_library); V(dnnl_scratchpad_mode_user);
    V(dnnl_query_src_md); V(dnnl_query_diff_src_md); V(dnnl_query_weights_md); V(dnnl_query_diff_weights_md); V(dnnl_query_dst_md); V(dnnl_query_diff_dst_md); V(dnnl_query_scratchpad_md); V(dnnl_query_impl_info_str);
    V(DNNL_ARG_SRC); V(DNNL_ARG_DST); V(DNNL_ARG_WEIGHTS); V(DNNL_ARG_BIAS); V(DNNL_ARG_FROM); V(DNNL_ARG_TO); V(DNNL_ARG_SCRATCHPAD);
    V(DNNL_ARG_DIFF_SRC); V(DNNL_ARG_DIFF_DST); V(DNNL_ARG_DIFF_WEIGHTS); V(DNNL_ARG_DIFF_BIAS);
    V(DNNL_MAX_NDIMS);
    const dnnl_version_t *v = dnnl_version();
    printf("version %d.%d.%d cpu_runtime %u\n", v->major, v->minor, v->patch, v->cpu_runtime);
    return 0;
}
